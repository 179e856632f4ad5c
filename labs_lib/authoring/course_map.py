"""Course-map figures: one picture per lab, cut from the solution notebook's own output.

Each ``solutions/NN_topic.ipynb`` marks exactly one code cell with the cell tag ``course-map``:
a cell that draws the figure that best sums up the lab. :func:`write_figures` takes the first
``image/png`` output of that cell and stores it as ``docs/figures/NN_topic.png``, which the
README's course map shows. The pictures are never drawn by hand or by a separate script, so they
always show what the committed notebook computed; ``make solutions`` re-executes the notebooks
and then calls ``python -m labs_lib.authoring --figures`` to refresh them.

A file is only rewritten when its bytes change, so an unchanged notebook leaves ``docs/figures``
(and git) untouched.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import nbformat

from .notebooks import AuthoringError, course_notebooks, read_notebook

TAG = "course-map"
FIGURES = Path("docs/figures")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_HOW_TO_TAG = (f"Tag one code cell that draws the lab's figure with the cell tag `{TAG}` (in JupyterLab: "
               "select the cell, open the property inspector, add the tag under Cell Tags), then run "
               "`make figures` (`make solutions` instead if that cell's output is not stored yet).")


class CourseMapError(AuthoringError):
    """A solution notebook does not provide its course-map figure (the message says why and what to do)."""


def tagged_png(nb: nbformat.NotebookNode, name: str) -> bytes:
    """The PNG bytes of the first image output of the one code cell of ``nb`` tagged ``course-map``.

    ``name`` is the notebook's file name, used in error messages. Raises :class:`CourseMapError`
    when no cell or several cells carry the tag, or when the tagged cell has no PNG output.
    """
    tagged = [i for i, cell in enumerate(nb.cells) if TAG in cell.get("metadata", {}).get("tags", [])]
    if not tagged:
        raise CourseMapError(f"{name}: no cell is tagged `{TAG}`. {_HOW_TO_TAG}")
    if len(tagged) > 1:
        raise CourseMapError(f"{name}: cells {', '.join(map(str, tagged))} are all tagged `{TAG}`; the course map "
                             "shows one figure per lab. Keep the tag on one of them only, then run `make figures`.")
    index = tagged[0]
    cell = nb.cells[index]
    if cell.cell_type != "code":
        raise CourseMapError(f"{name}: cell {index} is tagged `{TAG}` but is a {cell.cell_type} cell; only a code "
                             f"cell's output can be the figure. {_HOW_TO_TAG}")
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if "image/png" not in data:
            continue
        encoded = data["image/png"]
        # nbformat stores the image as base64 text, sometimes split into lines.
        text = "".join(encoded) if isinstance(encoded, list) else encoded
        try:
            png = base64.b64decode(text, validate=False)
        except (binascii.Error, ValueError) as err:
            raise CourseMapError(f"{name}: the image/png output of cell {index} is not valid base64 ({err}); "
                                 "re-execute the notebook (`make solutions`).") from None
        if not png.startswith(PNG_SIGNATURE):
            raise CourseMapError(f"{name}: the image/png output of cell {index} does not decode to a PNG file; "
                                 "re-execute the notebook (`make solutions`).")
        return png
    raise CourseMapError(f"{name}: cell {index} is tagged `{TAG}` but has no image/png output: either the notebook "
                         "was saved without executing that cell, or the cell does not draw a figure (a widget or "
                         "an animation stores no PNG). Tag a cell that draws a matplotlib figure and re-execute "
                         "the notebook (`make solutions`).")


def plan_figures(solutions: Path, figures: Path = FIGURES) -> dict[Path, bytes]:
    """``figures/NN_topic.png → PNG bytes`` for every ``solutions/NN_topic.ipynb``; writes nothing.

    Every notebook is read before anything is returned, so one broken notebook stops the whole
    run instead of leaving a half-updated figures folder.
    """
    plan: dict[Path, bytes] = {}
    for src in course_notebooks(solutions, CourseMapError):
        nb = read_notebook(src, CourseMapError)
        plan[figures / f"{src.stem}.png"] = tagged_png(nb, src.name)
    if not plan:
        raise CourseMapError(f"no notebooks in {solutions}.")
    return plan


def stale_figures(solutions: Path, figures: Path = FIGURES) -> list[str]:
    """Human-readable reasons why ``figures`` does not match the tagged outputs (empty when fresh)."""
    reasons = []
    for target, png in plan_figures(solutions, figures).items():
        if not target.exists():
            reasons.append(f"{target} is missing")
        elif target.read_bytes() != png:
            reasons.append(f"{target} differs from the `{TAG}` output of its solution notebook")
    return reasons


def write_figures(solutions: Path, figures: Path = FIGURES) -> list[Path]:
    """Write ``figures/NN_topic.png`` from each solution's ``course-map`` cell; returns the files written.

    A file whose bytes are already right is left alone (not even its modification time changes).
    """
    plan = plan_figures(solutions, figures)
    figures.mkdir(parents=True, exist_ok=True)
    written = []
    for target, png in plan.items():
        if not target.exists() or target.read_bytes() != png:
            target.write_bytes(png)
            written.append(target)
    return written
