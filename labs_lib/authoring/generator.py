"""The student-notebook generator: ``solutions/NN_topic.ipynb`` → ``notebooks/NN_topic.ipynb``.

* every code region between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes a stub,
  indented like the marker, that raises ``NotImplementedError`` naming the exercise
  (``### BEGIN SOLUTION: Euler step`` names it explicitly; otherwise the enclosing
  ``def``/``class`` gives the name);
* every markdown region between ``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->``
  (the markers are invisible when rendered) becomes a "Your answer:" prompt;
* the Colab badge cell loses the solution's "This is the solution notebook" line;
* outputs, execution counts, execution timings and widget state are cleared; the setup cell and
  slide types are carried over unchanged.

A student notebook edited by hand after it was generated is never overwritten silently:
:func:`generate` stops and asks for ``force``. (It recognises its own output by a hash of
the cells that it records in the notebook's metadata.)
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .front_matter import BADGE_TAG, badge_source, front_matter_tag
from .notebooks import AuthoringError, course_notebooks, read_notebook

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
        elif front_matter_tag(cell) == BADGE_TAG:
            cell.source, n = badge_source(source_name), 0  # the student form: no "this is the solution" line
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
    """What :func:`generate` would write for the solutions in ``solutions``, and the orphans of ``notebooks``."""
    writes = {}
    for src in course_notebooks(solutions):
        student = make_student_notebook(read_notebook(src), src.name)
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
