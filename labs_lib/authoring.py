"""The student-notebook generator: ``solutions/`` → ``notebooks/``.

Run ``python -m labs_lib.authoring`` after changing a solution notebook. For each
``solutions/NN_topic.ipynb`` it writes ``notebooks/NN_topic.ipynb`` where

* every code region between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes a stub,
  indented like the marker, that raises ``NotImplementedError`` naming the exercise
  (``### BEGIN SOLUTION: Euler step`` names it explicitly; otherwise the enclosing
  ``def``/``class`` gives the name);
* every markdown region between ``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->``
  (the markers are invisible when rendered) becomes a "Your answer:" prompt;
* outputs, execution counts, execution timings and widget state are cleared.

``--check`` writes nothing and exits with status 1 when ``notebooks/`` is stale, or when a
solution's Colab front matter is missing or out of date (``make test`` runs it).
``--execute-solutions`` first re-runs every solution notebook and stores its outputs (the
solutions are committed executed), printing each notebook's run time.
``--front-matter`` inserts or refreshes, at the top of every solution notebook, the Colab badge
and the Colab-only setup cell (templates in :mod:`labs_lib.front_matter`), leaving other cells alone.
``--slides`` gives every solution cell that has no RISE slide type the one suggested by
:mod:`labs_lib.slides` (headings start slides, check cells are fragments, ...) and never changes
a slide type already set. Both then regenerate ``notebooks/``; the generator carries the front
matter and the slide types over unchanged.
``--figures`` writes each lab's course-map picture, ``docs/figures/NN_topic.png``, from the
solution's cell tagged ``course-map`` (see :mod:`labs_lib.course_map`).
A student notebook edited by hand after it was generated is never overwritten silently:
the generator stops and asks for ``--force``. (It recognises its own output by a hash of
the cells that it records in the notebook's metadata.)
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from . import slides as slide_types
from .course_map import FIGURES, write_figures
from .front_matter import FRONT_MATTER_FIX, front_matter_problems, refresh_front_matter
from .notebook_files import NOTEBOOK_NAME, AuthoringError

CODE_BEGIN = re.compile(r"^(?P<indent>[ \t]*)###\s*BEGIN SOLUTION\b:?\s*(?P<name>.*?)\s*$")
CODE_END = re.compile(r"^[ \t]*###\s*END SOLUTION\b")
MD_BEGIN = re.compile(r"^\s*<!--\s*BEGIN SOLUTION\s*-->\s*$")
MD_END = re.compile(r"^\s*<!--\s*END SOLUTION\s*-->\s*$")
ENCLOSING = re.compile(r"^\s*(?:async\s+)?(def|class)\s+(\w+)")
ANSWER_PROMPT = "**Your answer:** *double-click this cell and write your answer here.*"
METADATA_KEY = "labs_lib"


def _stub(indent: str, exercise: str) -> list[str]:
    return [f"{indent}# YOUR CODE HERE\n",
            f"{indent}raise NotImplementedError({('Exercise: ' + exercise)!r})\n"]


def _exercise_name(lines: list[str], begin: int, explicit: str) -> str:
    if explicit:
        return explicit
    names = []
    indent = len(lines[begin]) - len(lines[begin].lstrip())
    for line in reversed(lines[:begin]):
        m = ENCLOSING.match(line)
        line_indent = len(line) - len(line.lstrip())
        if m and line_indent < indent:
            names.append(m.group(2))
            indent = line_indent
    return ".".join(reversed(names)) or "solution"


def _strip_regions(source: str, begin: re.Pattern, end: re.Pattern, replace, where: str) -> tuple[str, int]:
    """Replace each begin/end region of ``source``; returns the new text and the region count."""
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    open_at: int | None = None
    count = 0
    for i, line in enumerate(lines):
        if begin.match(line):
            if open_at is not None:
                raise AuthoringError(f"{where}: nested BEGIN SOLUTION at line {i + 1} "
                                     f"(the region opened at line {open_at + 1} is not closed).")
            open_at = i
        elif end.match(line):
            if open_at is None:
                raise AuthoringError(f"{where}: END SOLUTION at line {i + 1} has no BEGIN SOLUTION.")
            out.extend(replace(lines, open_at))
            open_at = None
            count += 1
        elif open_at is None:
            out.append(line)
    if open_at is not None:
        raise AuthoringError(f"{where}: BEGIN SOLUTION at line {open_at + 1} has no END SOLUTION.")
    text = "".join(out)
    return (text[:-1] if text.endswith("\n") and not source.endswith("\n") else text), count


def _code_replacement(lines: list[str], begin: int) -> list[str]:
    m = CODE_BEGIN.match(lines[begin])
    return _stub(m.group("indent"), _exercise_name(lines, begin, m.group("name")))


def _md_replacement(lines: list[str], begin: int) -> list[str]:
    return [ANSWER_PROMPT + "\n"]


def cells_hash(nb: nbformat.NotebookNode) -> str:
    """A hash of a notebook's cells (sources, outputs, metadata), independent of formatting."""
    return hashlib.sha256(json.dumps(nb["cells"], sort_keys=True).encode()).hexdigest()


def make_student_notebook(solution: nbformat.NotebookNode, source_name: str) -> nbformat.NotebookNode:
    """Return the student version of a solution notebook (the input is not modified)."""
    nb = copy.deepcopy(solution)
    regions = 0
    for index, cell in enumerate(nb.cells):
        where = f"{source_name}, cell {index}"
        if cell.cell_type == "code":
            cell.source, n = _strip_regions(cell.source, CODE_BEGIN, CODE_END, _code_replacement, where)
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            cell.source, n = _strip_regions(cell.source, MD_BEGIN, MD_END, _md_replacement, where)
        else:
            n = 0
        regions += n
        for key in ("execution", "ExecuteTime", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
    nb.metadata.pop("widgets", None)
    nb.metadata[METADATA_KEY] = {"generated_from": f"solutions/{source_name}",
                                 "note": "Generated by `python -m labs_lib.authoring`; edit the solution instead.",
                                 "exercises": regions}
    nb.metadata[METADATA_KEY]["cells_sha256"] = cells_hash(nb)
    return nb


def _was_edited(path: Path) -> bool:
    """Whether a student notebook on disk differs from what the generator last wrote there."""
    nb = nbformat.read(path, as_version=4)
    recorded = nb.metadata.get(METADATA_KEY, {}).get("cells_sha256")
    return recorded != cells_hash(nb)


@dataclass
class Plan:
    """What a run of the generator would write: ``target → text`` and stale extras."""

    writes: dict[Path, str]
    orphans: list[Path]


def plan(solutions: Path, notebooks: Path) -> Plan:
    if not solutions.is_dir():
        raise AuthoringError(f"no solutions folder at {solutions}.")
    writes = {}
    for src in sorted(solutions.glob("*.ipynb")):
        if not NOTEBOOK_NAME.match(src.name):
            raise AuthoringError(f"{src.name}: notebooks are named NN_topic.ipynb (two digits, an underscore).")
        try:
            solution = nbformat.read(src, as_version=4)
        except Exception as err:
            raise AuthoringError(f"{src} is not a readable notebook: {err}") from err
        student = make_student_notebook(solution, src.name)
        writes[notebooks / src.name] = nbformat.writes(student) + "\n"
    orphans = [p for p in sorted(notebooks.glob("*.ipynb")) if p not in writes] if notebooks.is_dir() else []
    return Plan(writes, orphans)


def stale(p: Plan) -> list[str]:
    """Human-readable reasons why ``notebooks/`` does not match ``solutions/``."""
    reasons = []
    for target, text in p.writes.items():
        if not target.exists():
            reasons.append(f"{target} is missing")
        elif target.read_text(encoding="utf-8") != text:
            reasons.append(f"{target} is out of date with its solution")
    reasons += [f"{o} has no source in the solutions folder" for o in p.orphans]
    return reasons


def generate(solutions: Path, notebooks: Path, force: bool = False) -> list[Path]:
    """Write the student notebooks; returns the paths written (unchanged ones are skipped)."""
    p = plan(solutions, notebooks)
    edited = [t for t, text in p.writes.items()
              if t.exists() and t.read_text(encoding="utf-8") != text and _was_edited(t)]
    if edited and not force:
        names = ", ".join(str(t) for t in edited)
        raise AuthoringError(f"{names} changed by hand since it was generated; regenerating would lose "
                             "those edits. Save them elsewhere, then rerun with --force.")
    notebooks.mkdir(parents=True, exist_ok=True)
    written = []
    for target, text in p.writes.items():
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            written.append(target)
    return written


def execute_solutions(solutions: Path) -> dict[str, float]:
    """Run every solution notebook top to bottom and store its outputs; returns seconds per notebook."""
    from .execution import execute_file  # only instructors need it: import it here

    timings = {}
    for src in sorted(solutions.glob("*.ipynb")):
        nb, run = execute_file(src)
        timings[src.name] = run.seconds
        nbformat.write(nb, src)
        print(f"executed {src} in {timings[src.name]:.1f} s")
    return timings


def _solution_files(solutions: Path) -> list[Path]:
    if not solutions.is_dir():
        raise AuthoringError(f"no solutions folder at {solutions}.")
    files = sorted(solutions.glob("*.ipynb"))
    for src in files:
        if not NOTEBOOK_NAME.match(src.name):
            raise AuthoringError(f"{src.name}: notebooks are named NN_topic.ipynb (two digits, an underscore).")
    return files


def _read_solution(src: Path) -> nbformat.NotebookNode:
    try:
        return nbformat.read(src, as_version=4)
    except Exception as err:
        raise AuthoringError(f"{src} is not a readable notebook: {err}") from err


def front_matter_report(solutions: Path) -> list[str]:
    """``"path: problem"`` for every solution whose Colab front matter is missing or out of date."""
    return [f"{src}: {problem}" for src in _solution_files(solutions)
            for problem in front_matter_problems(_read_solution(src), src.name)]


def update_solutions(solutions: Path, front_matter: bool = False, slides: bool = False) -> list[str]:
    """Refresh the front matter and/or fill in missing slide types of every solution notebook.

    A notebook is rewritten only when something changed. Returns one line per notebook written,
    plus a hint for each markdown cell with a heading in its middle (it cannot start a slide there).
    """
    report = []
    for src in _solution_files(solutions):
        nb = _read_solution(src)
        changes, hints = [], []
        if front_matter and refresh_front_matter(nb, src.name):
            changes.append("front matter refreshed")
        if slides:
            filled = slide_types.fill_slide_types(nb)
            if filled:
                changes.append(f"slide types given to {len(filled)} cells")
            for index, cell in enumerate(nb.cells):
                for line in slide_types.inner_headings(cell):
                    hints.append(f"hint: {src}, cell {index}: the heading on line {line} cannot start a slide; "
                                  "split the cell there")
        if changes:
            nbformat.write(nb, src)
            report.append(f"updated {src}: {', '.join(changes)}")
        report += hints
    return report


def main(argv: list[str] | None = None) -> int:
    # The module docstring is the manual: show all of it, line breaks kept, under --help.
    parser = argparse.ArgumentParser(prog="python -m labs_lib.authoring", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--solutions", type=Path, default=Path("solutions"),
                        help="folder of the solution notebooks (default: solutions)")
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"),
                        help="folder of the student notebooks (default: notebooks)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if notebooks/ is stale or a solution's front matter is not current")
    parser.add_argument("--force", action="store_true", help="overwrite student notebooks edited by hand")
    parser.add_argument("--execute-solutions", action="store_true",
                        help="re-run the solution notebooks and store their outputs (no regeneration)")
    parser.add_argument("--figures", action="store_true",
                        help="write docs/figures/NN_topic.png from each solution's cell tagged course-map")
    parser.add_argument("--front-matter", action="store_true",
                        help="insert or refresh the Colab badge and setup cells at the top of every solution "
                             "notebook, then regenerate notebooks/")
    parser.add_argument("--slides", action="store_true",
                        help="give every solution cell without a RISE slide type the suggested one (headings "
                             "start slides, check cells are fragments; see labs_lib.slides), never changing one "
                             "already set, then regenerate notebooks/")
    args = parser.parse_args(argv)
    if args.check and (args.front_matter or args.slides):
        parser.error("--check writes nothing; run --front-matter or --slides without it")
    try:
        if args.execute_solutions:
            execute_solutions(args.solutions)
            return 0
        if args.figures:
            figures = write_figures(args.solutions, FIGURES)
            print("\n".join(f"wrote {f}" for f in figures) or f"nothing to do: {FIGURES}/ is up to date")
            return 0
        if args.front_matter or args.slides:
            for line in update_solutions(args.solutions, front_matter=args.front_matter, slides=args.slides):
                print(line)
        if args.check:
            reasons = stale(plan(args.solutions, args.notebooks))
            for r in reasons:
                print(f"stale: {r}")
            problems = front_matter_report(args.solutions)
            for problem in problems:
                print(f"front matter: {problem}")
            if problems:
                print(FRONT_MATTER_FIX)
            if reasons:
                print("Run `python -m labs_lib.authoring` to regenerate the student notebooks.")
            if reasons or problems:
                return 1
            print(f"student notebooks are up to date with {args.solutions}/")
            return 0
        written = generate(args.solutions, args.notebooks, force=args.force)
    except AuthoringError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for w in written:
        print(f"wrote {w}")
    if not written:
        print("nothing to do: student notebooks are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
