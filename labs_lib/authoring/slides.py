"""Slide types, so that an instructor can present any notebook as slides with RISE.

RISE (``jupyterlab-rise`` in JupyterLab) builds a slideshow from each cell's
``metadata.slideshow.slide_type``: ``slide`` starts a new slide, ``subslide`` a slide below the
current one (reveal.js's vertical stack), ``fragment`` appears on the next click within the current
slide, ``-`` continues the current slide, ``skip`` leaves the cell out (outputs included) and
``notes`` makes it speaker notes.

Every solution cell carries a slide type. ``python -m labs_lib.authoring --slides`` gives one to
each cell that has none, and never changes a type that is already there, so an instructor's
choices survive. The rule, :func:`suggested_slide_type`:

* the two Colab front-matter cells, and empty cells: ``skip``;
* a markdown cell opening with a ``#`` or ``##`` heading: ``slide``; with ``###``: ``subslide``;
* a check cell (its code starts with ``check_``): ``fragment``, so the verdict comes on a click;
* a code cell longer than :data:`LONG_CODE_LINES` lines that shows no figure, HTML or widget:
  ``skip`` (a long measurement loop is not worth a slide; a skipped cell's outputs vanish from the
  slideshow too, hence the exception for cells whose picture is the point);
* every other cell: ``-``.

A heading that sits in the middle of a markdown cell cannot start a slide (slides begin at cells):
``--slides`` names such cells so that they can be split at the heading.

Every solution also carries the RISE settings :data:`SLIDESHOW_SETTINGS` in its notebook metadata
(``metadata.rise``): a slide taller than the window (a long code cell above its figure) then scrolls,
where RISE's default cuts it off at the window's edge with no way to reach the rest.
"""

from __future__ import annotations

import re

import nbformat

from .front_matter import front_matter_tag

SLIDE_TYPES = ("slide", "subslide", "fragment", "-", "skip", "notes")
# Longer code cells without a visual output are left out of the slideshow by default.
LONG_CODE_LINES = 25
# Outputs that a slideshow shows as a picture or an interactive view, not as text.
_VISUAL_MIMETYPES = ("text/html", "text/latex", "application/vnd.jupyter.widget-view+json")
# RISE options (notebook metadata "rise") every solution carries; an instructor may add others.
SLIDESHOW_SETTINGS: dict[str, object] = {"scroll": True}
_SLIDE_HEADING = re.compile(r"^#{1,2}\s")
_SUBSLIDE_HEADING = re.compile(r"^###\s")
_ANY_HEADING = re.compile(r"^#{1,3}\s")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SOLUTION_MARKER = re.compile(r"^\s*<!--\s*(BEGIN|END) SOLUTION\s*-->\s*$")


def slide_type(cell: nbformat.NotebookNode) -> str | None:
    """The slide type stored in ``cell``, or None when it has none."""
    return cell.get("metadata", {}).get("slideshow", {}).get("slide_type")


def has_visual_output(cell: nbformat.NotebookNode) -> bool:
    """Whether a code cell shows an image, HTML, LaTeX or a widget (what a slide would lose if skipped)."""
    for output in cell.get("outputs", []):
        for mimetype in output.get("data", {}):
            if mimetype.startswith("image/") or mimetype in _VISUAL_MIMETYPES:
                return True
    return False


def has_image_output(cell: nbformat.NotebookNode) -> bool:
    """Whether a code cell stores an ``image/*`` output."""
    return any(m.startswith("image/") for o in cell.get("outputs", []) for m in o.get("data", {}))


def suggested_slide_type(cell: nbformat.NotebookNode) -> str:
    """The slide type the module's rule gives ``cell`` (see the module docstring)."""
    source = cell.source.strip()
    if front_matter_tag(cell) is not None or not source:
        return "skip"
    if cell.cell_type == "markdown":
        first = source.splitlines()[0]
        if _SLIDE_HEADING.match(first):
            return "slide"
        if _SUBSLIDE_HEADING.match(first):
            return "subslide"
        return "-"
    if cell.cell_type == "code":
        if source.startswith("check_"):
            return "fragment"
        if len(source.splitlines()) > LONG_CODE_LINES and not has_visual_output(cell):
            return "skip"
    return "-"


def fill_slide_types(nb: nbformat.NotebookNode) -> list[int]:
    """Give every cell of ``nb`` without a slide type the suggested one, in place.

    Returns the indices of the cells that got one. Cells that already have a slide type, valid or
    not, are left alone: the instructor chose it (an invalid one is reported by :func:`slide_problems`).
    """
    filled = []
    for index, cell in enumerate(nb.cells):
        if slide_type(cell) is None:
            cell.metadata.setdefault("slideshow", {})["slide_type"] = suggested_slide_type(cell)
            filled.append(index)
    return filled


def fill_slideshow_settings(nb: nbformat.NotebookNode) -> bool:
    """Set each of :data:`SLIDESHOW_SETTINGS` that ``nb``'s RISE metadata lacks, in place (an
    instructor's other RISE options, and a value they set, are kept). Returns whether it changed."""
    rise = nb.metadata.setdefault("rise", {})
    missing = {key: value for key, value in SLIDESHOW_SETTINGS.items() if key not in rise}
    rise.update(missing)
    return bool(missing)


def slide_problems(nb: nbformat.NotebookNode) -> list[str]:
    """Cells without a valid slide type, skipped cells whose image would vanish, and RISE settings
    other than :data:`SLIDESHOW_SETTINGS`; empty when fine."""
    problems = []
    rise = nb.metadata.get("rise", {})
    for key, value in SLIDESHOW_SETTINGS.items():
        if rise.get(key) != value:
            problems.append(f"the notebook's RISE setting {key!r} is {rise.get(key)!r}, not {value!r} "
                            "(metadata.rise)")
    for index, cell in enumerate(nb.cells):
        kind = slide_type(cell)
        if kind is None:
            problems.append(f"cell {index} has no slide type")
        elif kind not in SLIDE_TYPES:
            problems.append(f"cell {index} has the slide type {kind!r}, not one of {', '.join(SLIDE_TYPES)}")
        elif kind == "skip" and has_image_output(cell):
            problems.append(f"cell {index} is skipped in the slideshow but draws a figure")
    return problems


def inner_headings(cell: nbformat.NotebookNode) -> list[int]:
    """Line numbers (from 1) of ``#``–``###`` headings below the first line of a markdown cell.

    Lines inside code fences, ``$$`` display math or a solution region do not count: the cell
    cannot be split there.
    """
    if cell.cell_type != "markdown":
        return []
    found = []
    in_fence = in_math = in_solution = False
    for number, line in enumerate(cell.source.splitlines(), start=1):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif _SOLUTION_MARKER.match(line):
            in_solution = "BEGIN" in line
        elif not in_fence:
            if line.count("$$") % 2 == 1:
                in_math = not in_math
            elif number > 1 and not in_math and not in_solution and _ANY_HEADING.match(line):
                found.append(number)
    return found
