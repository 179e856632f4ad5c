"""The course tooling's command line: ``python -m labs_lib.authoring``.

Run it after changing a solution notebook: for each ``solutions/NN_topic.ipynb`` it writes the
student version ``notebooks/NN_topic.ipynb`` (solution regions become stubs that raise
``NotImplementedError`` naming the exercise, outputs are cleared; see
:mod:`labs_lib.authoring.generator`). A student notebook edited by hand is never overwritten
silently: the generator stops and asks for ``--force``.

``--check`` writes nothing and exits with status 1 when anything generated from the solutions is
out of date: ``notebooks/``, a solution's Colab front matter, a cell's slide type, a course-map
figure in ``docs/figures`` or a run time, or when a solution's stored run time is over its lab's
time budget (``make test`` runs it).
``--execute-solutions`` re-runs every solution notebook and stores its outputs (the solutions are
committed executed), printing each notebook's run time.
``--front-matter`` inserts or refreshes, at the top of every solution notebook, the Colab badge
and the Colab-only setup cell (templates in :mod:`labs_lib.authoring.front_matter`), leaving other
cells alone.
``--slides`` gives every solution cell that has no RISE slide type the one suggested by
:mod:`labs_lib.authoring.slides` (headings start slides, check cells are fragments, ...) and never
changes a slide type already set; it also adds the RISE settings every solution carries (a tall
slide scrolls). Both then regenerate ``notebooks/``.
``--figures`` writes each lab's course-map picture, ``docs/figures/NN_topic.png``, from the
solution's cell tagged ``course-map`` (see :mod:`labs_lib.authoring.course_map`).
``--run-times`` writes the solutions' run times, read from their stored execution timestamps, into
the README's course map and the instructor guide's table (see :mod:`labs_lib.authoring.run_times`).
``--book`` builds the course's website in ``build/book/html/`` from the solutions' stored outputs, the
README's course map and the instructor guide (see :mod:`labs_lib.authoring.book`; needs the ``book``
extra, which ``make book`` installs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .course_map import FIGURES, stale_figures, write_figures
from .front_matter import FRONT_MATTER_FIX
from .generator import generate, plan, stale
from .notebooks import AuthoringError
from .run_times import GUIDE, README, over_budget, stale_run_times, write_run_times
from .solutions import execute_solutions, front_matter_report, slides_report, update_solutions


def _run_time_files(solutions: Path) -> tuple[Path, Path] | None:
    """The README and instructor guide of the course whose solutions are in ``solutions``, if it has both."""
    readme, guide = solutions.parent / README, solutions.parent / GUIDE
    return (readme, guide) if readme.is_file() and guide.is_file() else None


def report_stale(solutions: Path, notebooks: Path, figures: Path = FIGURES) -> int:
    """Print everything out of date and how to fix it; 0 when all is current, else 1."""
    found = False
    documents = _run_time_files(solutions)
    for title, problems, fix in (
            ("stale", stale(plan(solutions, notebooks)),
             "Run `python -m labs_lib.authoring` to regenerate the student notebooks."),
            ("front matter", front_matter_report(solutions), FRONT_MATTER_FIX),
            ("slides", slides_report(solutions),
             "Run `python -m labs_lib.authoring --slides` to give every cell a slide type, or fix the one named."),
            ("figures", stale_figures(solutions, figures),
             "Run `python -m labs_lib.authoring --figures` (`make solutions` if the outputs are not stored)."),
            ("run times", stale_run_times(solutions, *documents) if documents else [],
             "Run `python -m labs_lib.authoring --run-times` (`make solutions` does)."),
            ("over budget", over_budget(solutions),
             "Make the lab faster (fewer or cheaper training steps, fewer samplers), then `make solutions`; "
             "the budgets are in labs_lib/authoring/run_times.py.")):
        for problem in problems:
            print(f"{title}: {problem}")
        if problems:
            print(fix)
            found = True
    if not found:
        print(f"student notebooks, front matter, slide types, figures and run times are up to date with {solutions}/")
    return int(found)


def main(argv: list[str] | None = None) -> int:
    # The module docstring is the manual: show all of it, line breaks kept, under --help.
    parser = argparse.ArgumentParser(prog="python -m labs_lib.authoring", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--solutions", type=Path, default=Path("solutions"),
                        help="folder of the solution notebooks (default: solutions)")
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"),
                        help="folder of the student notebooks (default: notebooks)")
    parser.add_argument("--figures-dir", type=Path, default=FIGURES,
                        help=f"folder of the course-map figures (default: {FIGURES})")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if notebooks/, front matter, slide types or figures are stale")
    parser.add_argument("--force", action="store_true", help="overwrite student notebooks edited by hand")
    parser.add_argument("--execute-solutions", action="store_true",
                        help="re-run the solution notebooks and store their outputs (no regeneration)")
    parser.add_argument("--figures", action="store_true",
                        help="write docs/figures/NN_topic.png from each solution's cell tagged course-map")
    parser.add_argument("--run-times", action="store_true",
                        help="write the solutions' stored run times into README.md's course map and the guide")
    parser.add_argument("--book", action="store_true",
                        help="build the course's website, build/book/html/, from the solutions' stored outputs")
    parser.add_argument("--front-matter", action="store_true",
                        help="insert or refresh the Colab badge and setup cells at the top of every solution "
                             "notebook, then regenerate notebooks/")
    parser.add_argument("--slides", action="store_true",
                        help="give every solution cell without a RISE slide type the suggested one (headings "
                             "start slides, check cells are fragments; see labs_lib.authoring.slides), never "
                             "changing one already set, then regenerate notebooks/")
    args = parser.parse_args(argv)
    if args.check and (args.front_matter or args.slides):
        parser.error("--check writes nothing; run --front-matter or --slides without it")
    try:
        if args.execute_solutions:
            execute_solutions(args.solutions)
            return 0
        if args.figures:
            figures = write_figures(args.solutions, args.figures_dir)
            print("\n".join(f"wrote {f}" for f in figures) or f"nothing to do: {args.figures_dir}/ is up to date")
            return 0
        if args.book:
            from .book import build_book  # Sphinx is an optional extra: imported only here

            print(f"wrote {build_book(args.solutions.parent)}")
            return 0
        if args.run_times:
            documents = _run_time_files(args.solutions)
            if documents is None:
                raise AuthoringError(f"no {README} and {GUIDE} beside {args.solutions} to write run times into.")
            written = write_run_times(args.solutions, *documents)
            print("\n".join(f"wrote {f}" for f in written) or "nothing to do: the run times are up to date")
            return 0
        if args.front_matter or args.slides:
            for line in update_solutions(args.solutions, front_matter=args.front_matter, slides=args.slides):
                print(line)
        if args.check:
            return report_stale(args.solutions, args.notebooks, args.figures_dir)
        written = generate(args.solutions, args.notebooks, force=args.force)
    except AuthoringError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for w in written:
        print(f"wrote {w}")
    if not written:
        print("nothing to do: student notebooks are up to date")
    return 0
