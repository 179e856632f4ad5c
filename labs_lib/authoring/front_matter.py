"""The Colab front matter that opens every notebook: an "Open in Colab" badge and a setup cell.

Every solution notebook, and so every student notebook generated from it, opens with its title cell
(a markdown cell whose first line is a ``# `` heading), so that the lab's name and aims are the first
thing a reader sees; right after it come two cells written from the templates below (edit the
templates, never the cells; a notebook without a title cell gets them at the top):

1. a markdown cell tagged ``colab-badge``: a one-line link that opens the *student* version of
   the same notebook, ``notebooks/NN_topic.ipynb``, on Google Colab, from the course's GitHub
   repository. It is plain text, not Colab's badge image, which shows as a broken image offline.
   In a **solution** notebook it starts with a bold "This is the solution notebook" and a link to
   the student notebook: both files have the same name, so a JupyterLab tab cannot tell them apart,
   and the first screen must (the generator writes the student form into the student notebook);
2. a code cell tagged ``colab-setup`` and ``nbval-skip``: on Colab it installs ``labs_lib`` from
   that repository and switches on Colab's widget manager (for the sliders); anywhere else it does
   nothing. The tests skip it (nbval honours ``nbval-skip``; the student-notebook test drops it).
   Its input must stay expanded: in JupyterLab 4.6, a notebook whose code cell has a collapsed
   input (``jupyter.source_hidden``) runs nothing on "Run All Cells" (measured in the browser), so
   ``--check`` reports a collapsed setup cell as out of date.

Both cells have the slide type ``skip``: they are plumbing, not part of a lecture.

``python -m labs_lib.authoring --front-matter`` inserts the two cells, or rewrites or moves them where
they differ from the templates or their place, and leaves every other cell alone; ``--check`` fails
while a solution's front matter is missing, out of date or out of place.
"""

from __future__ import annotations

import re
import uuid

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell

# The GitHub repository ("owner/name") the course is published from: the badges and the install
# command of every notebook are built from it. This is a placeholder until the course has a public
# repository. When it is published, set the real one here, then run
# `python -m labs_lib.authoring --front-matter` and commit the refreshed notebooks.
COURSE_REPOSITORY = "flow-matching-labs/flow-matching-labs"
# The branch that badges open and that Colab installs labs_lib from.
COURSE_BRANCH = "main"

BADGE_TAG = "colab-badge"
SETUP_TAG = "colab-setup"
SKIP_TESTS_TAG = "nbval-skip"
FRONT_MATTER_TAGS = (BADGE_TAG, SETUP_TAG)
FRONT_MATTER_FIX = ("Run `python -m labs_lib.authoring --front-matter` to add or refresh the Colab "
                    "front matter, then commit the updated notebooks.")

_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")

# Kept as plain Python (no `!pip` magic) so that the cell is also valid code for linters, for
# nbval and for anyone who pastes it into a script.
_SETUP_TEMPLATE = '''\
# Colab only: install the course library and turn on Colab's widget manager (the sliders need it).
# Anywhere else this cell does nothing: `make lab` has already installed labs_lib.
import sys

if "google.colab" in sys.modules:
    import importlib
    import subprocess

    # Colab ships PyTorch, NumPy, SciPy, Matplotlib, ipywidgets, ...: --no-deps keeps its versions
    # instead of replacing them with the ones pinned for a local install.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "{requirement}"], check=True)
    importlib.invalidate_caches()  # so that this running kernel finds the new package

    from google.colab import output

    output.enable_custom_widget_manager()'''


def _repository(repository: str | None) -> str:
    repo = COURSE_REPOSITORY if repository is None else repository
    if not _REPOSITORY.match(repo):
        raise ValueError(f"the course repository must be a GitHub 'owner/name', got {repo!r} "
                         "(see COURSE_REPOSITORY in labs_lib/authoring/front_matter.py).")
    return repo


def colab_url(name: str, repository: str | None = None) -> str:
    """The Colab address that opens the student notebook ``notebooks/<name>`` of the course."""
    return (f"https://colab.research.google.com/github/{_repository(repository)}/blob/{COURSE_BRANCH}"
            f"/notebooks/{name}")


def install_requirement(repository: str | None = None) -> str:
    """The pip requirement that installs ``labs_lib`` straight from the course's repository."""
    return f"labs_lib @ git+https://github.com/{_repository(repository)}@{COURSE_BRANCH}"


def badge_source(name: str, repository: str | None = None, solution: bool = False) -> str:
    """The markdown of the badge cell for the notebook file ``name``; ``solution`` leads it with a line that
    says so and links to the student notebook of the same name."""
    lead = (f"**This is the solution notebook:** the exercises are filled in and the outputs kept. To work "
            f"through the lab yourself, open the student version, [notebooks/{name}](../notebooks/{name}).\n\n"
            if solution else "")
    return (f"{lead}[Open this lab in Google Colab ↗]({colab_url(name, repository)}) · *on Colab, run the "
            "setup cell below first; on your own machine it does nothing.*")


def setup_source(repository: str | None = None) -> str:
    """The Python source of the setup cell."""
    return _SETUP_TEMPLATE.replace("{requirement}", install_requirement(repository))


def _metadata(*tags: str) -> dict:
    return {"slideshow": {"slide_type": "skip"}, "tags": list(tags)}


def front_matter(name: str, repository: str | None = None, solution: bool = False) -> list[nbformat.NotebookNode]:
    """Fresh copies of the two front-matter cells, in order, for the notebook file ``name`` (a solution's
    with ``solution``)."""
    badge = new_markdown_cell(badge_source(name, repository, solution), metadata=_metadata(BADGE_TAG))
    setup = new_code_cell(setup_source(repository), metadata=_metadata(SKIP_TESTS_TAG, SETUP_TAG))
    # Stable, readable ids where the notebook format has them (4.5 and later); they are only
    # used for cells inserted fresh, a refreshed cell keeps its own id.
    badge.id, setup.id = BADGE_TAG, SETUP_TAG
    return [badge, setup]


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def front_matter_tag(cell: nbformat.NotebookNode) -> str | None:
    """``colab-badge`` or ``colab-setup`` when ``cell`` is one of the front-matter cells, else None."""
    return next((tag for tag in FRONT_MATTER_TAGS if tag in _tags(cell)), None)


def _differences(cell: nbformat.NotebookNode, template: nbformat.NotebookNode) -> list[str]:
    """What in ``cell`` differs from ``template`` (outputs and execution data do not count)."""
    out = []
    if cell.cell_type != template.cell_type:
        out.append(f"it is a {cell.cell_type} cell, not a {template.cell_type} cell")
    if cell.source != template.source:
        out.append("its text differs from the template")
    if _tags(cell) != _tags(template):
        out.append(f"its tags are {_tags(cell)}, not {_tags(template)}")
    if cell.get("metadata", {}).get("slideshow") != template.metadata.slideshow:
        out.append("its slide type is not 'skip'")
    if cell.get("metadata", {}).get("jupyter", {}).get("source_hidden"):
        out.append("its input is collapsed (then JupyterLab's Run All Cells runs nothing)")
    return out


def is_title_cell(cell: nbformat.NotebookNode) -> bool:
    """Whether ``cell`` is a lab's title cell: markdown whose first line is a level-1 heading (``# ...``)."""
    return cell.cell_type == "markdown" and cell.source.lstrip().startswith("# ")


def _front_matter_start(cells: list[nbformat.NotebookNode]) -> int:
    """Where the front matter belongs among the other ``cells``: after the title cell when they start with one."""
    return 1 if cells and is_title_cell(cells[0]) else 0


def front_matter_problems(nb: nbformat.NotebookNode, name: str, repository: str | None = None,
                          solution: bool = False) -> list[str]:
    """Why the front matter of ``nb`` (the notebook file ``name``; a solution's with ``solution``) is not
    current; empty when it is."""
    problems = []
    templates = front_matter(name, repository, solution)
    start = _front_matter_start([cell for cell in nb.cells if front_matter_tag(cell) is None])
    for position, template in enumerate(templates, start=start):
        tag = front_matter_tag(template)
        what = "Colab badge cell" if tag == BADGE_TAG else "Colab setup cell"
        tagged = [i for i, cell in enumerate(nb.cells) if tag in _tags(cell)]
        if not tagged:
            problems.append(f"the {what} (tag `{tag}`) is missing")
            continue
        if len(tagged) > 1:
            problems.append(f"cells {tagged} are all tagged `{tag}`; only cell {position} should be")
        if tagged[0] != position:
            problems.append(f"the {what} is cell {tagged[0]}; it must be cell {position}")
        diff = _differences(nb.cells[tagged[0]], template)
        if diff:
            problems.append(f"the {what} is out of date: " + "; ".join(diff))
    return problems


def refresh_front_matter(nb: nbformat.NotebookNode, name: str, repository: str | None = None,
                         solution: bool = False) -> bool:
    """Put the current front matter (a solution's with ``solution``) in its place in ``nb`` (after the title
    cell, else at the top), in place; return whether anything changed.

    A front-matter cell that already matches its template is kept as it is, outputs and
    execution count included, so that refreshing an executed notebook twice changes nothing.
    Any other cell keeps its content and order.
    """
    existing: dict[str, nbformat.NotebookNode] = {}
    rest = []
    for cell in nb.cells:
        tag = front_matter_tag(cell)
        if tag is None:
            rest.append(cell)
        else:
            existing.setdefault(tag, cell)  # a duplicate is dropped
    taken = {cell.get("id") for cell in rest}
    head = []
    for template in front_matter(name, repository, solution):
        old = existing.get(front_matter_tag(template))
        if old is not None and not _differences(old, template):
            head.append(old)
            continue
        if (nb.nbformat, nb.nbformat_minor) < (4, 5):
            template.pop("id", None)  # this notebook format has no cell ids
        elif old is not None and old.get("id"):
            template.id = old.id  # keep the id, so a diff shows an edited cell, not a new one
        elif template.id in taken:
            template.id = uuid.uuid4().hex[:8]
        head.append(template)
    start = _front_matter_start(rest)
    cells = rest[:start] + head + rest[start:]
    changed = len(cells) != len(nb.cells) or any(a is not b for a, b in zip(cells, nb.cells))
    nb.cells = cells
    return changed

