"""What the tooling does to the solution notebooks themselves: execute them, refresh their front
matter, fill in their slide types, and report what is out of date in them."""

from __future__ import annotations

from pathlib import Path

import nbformat

from . import slides as slide_types
from .front_matter import front_matter_problems, refresh_front_matter
from .notebooks import course_notebooks, read_notebook


def execute_solutions(solutions: Path) -> dict[str, float]:
    """Run every solution notebook top to bottom and store its outputs; returns seconds per notebook."""
    from .execution import execute_file  # only instructors need it (nbclient): import it here

    timings = {}
    for src in course_notebooks(solutions):
        nb, run = execute_file(src)
        timings[src.name] = run.seconds
        nbformat.write(nb, src)
        print(f"executed {src} in {timings[src.name]:.1f} s")
    return timings


def front_matter_report(solutions: Path) -> list[str]:
    """``"path: problem"`` for every solution whose Colab front matter is missing or out of date."""
    return [f"{src}: {problem}" for src in course_notebooks(solutions)
            for problem in front_matter_problems(read_notebook(src), src.name, solution=True)]


def update_solutions(solutions: Path, front_matter: bool = False, slides: bool = False) -> list[str]:
    """Refresh the front matter and/or fill in missing slide types of every solution notebook.

    A notebook is rewritten only when something changed. Returns one line per notebook written,
    plus a hint for each markdown cell with a heading in its middle (it cannot start a slide there).
    """
    report = []
    for src in course_notebooks(solutions):
        nb = read_notebook(src)
        changes, hints = [], []
        if front_matter and refresh_front_matter(nb, src.name, solution=True):
            changes.append("front matter refreshed")
        if slides:
            filled = slide_types.fill_slide_types(nb)
            if filled:
                changes.append(f"slide types given to {len(filled)} cells")
            if slide_types.fill_slideshow_settings(nb):
                changes.append("RISE settings added")
            for index, cell in enumerate(nb.cells):
                for line in slide_types.inner_headings(cell):
                    hints.append(f"hint: {src}, cell {index}: the heading on line {line} cannot start a slide; "
                                  "split the cell there")
        if changes:
            nbformat.write(nb, src)
            report.append(f"updated {src}: {', '.join(changes)}")
        report += hints
    return report


def slides_report(solutions: Path) -> list[str]:
    """``"path: problem"`` for every solution cell without a valid slide type, or skipped with a figure."""
    return [f"{src}: {problem}" for src in course_notebooks(solutions)
            for problem in slide_types.slide_problems(read_notebook(src))]

