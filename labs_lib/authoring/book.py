"""The course as a static website: the solution notebooks, with their stored outputs, as HTML pages.

``make book`` (``python -m labs_lib.authoring --book``) builds ``build/book/html/``; open its
``index.html`` in a browser. Nothing is executed and nothing is downloaded: the pages show the outputs
committed in ``solutions/`` (the same ones nbval compares), and everything the pages load, MathJax
included, is a file of the site.

The tool is Sphinx with MyST-NB and the Sphinx Book Theme, all from PyPI (the ``book`` extra);
``book/conf.py`` holds their settings and says why each is there. Jupyter Book 2 was ruled out
because it fetches its page theme from the web at build time; MyST-NB reads notebooks without running
them and Sphinx fails the build on a broken internal link (``-W``), which the browser test then checks
again in the rendered pages.

The sources are prepared in ``build/book/src/`` first, because a page cannot show everything a
notebook in JupyterLab shows:

- the home page, ``index.md``, is the course map of ``README.md`` (between its ``COURSE MAP``
  markers), with each lab linked to its page and its figure taken from ``docs/figures/``;
- the instructor guide, ``docs/INSTRUCTOR_GUIDE.md``, is a page, its links to notebooks leading to their pages;
- each lab page is its solution notebook with the Colab front matter replaced by a note of what the
  page is and where to do the exercises, with the student notebook to download (the Colab-only setup
  cell does nothing outside Colab);
- a widget cannot run without a kernel, so each widget output becomes a **static stand-in** drawn from
  the widget state the notebook stored: a progress bar as it stood at the end, a slider at its value
  with a note that it moves in JupyterLab, and the picture it showed (see :func:`widget_html`).

The download menu of a lab's page (the theme's ``.ipynb`` button) gives the solution notebook as it is
in ``solutions/``, not the page's prepared source.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_markdown_cell, new_output

from .front_matter import BADGE_TAG, colab_url, front_matter_tag
from .notebooks import WIDGET_STATE, AuthoringError, course_notebooks, read_notebook
from .run_times import GUIDE, MAP_BEGIN, MAP_END, README

BOOK = Path("build/book")
CONFIG = Path("book")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
GUIDE_PAGE = "instructor_guide.md"
# The student notebooks, offered for download on each lab's page: a folder of the sources that Sphinx
# does not render as pages (book/conf.py excludes it).
STUDENT_DOWNLOADS = "student_notebooks"


class BookError(AuthoringError):
    """The site cannot be built from the course as it is (the message says why and what to do)."""


# --- widgets: a static picture of what the stored widget state shows ------------------------------------------

def _slider_html(state: dict, value_text: str) -> str:
    label = html.escape(state.get("description", ""))
    low, high, value = state.get("min", 0), state.get("max", 100), state.get("value", 0)
    return (f'<label class="labs-widget-slider">{label} '
            f'<input type="range" min="{low}" max="{high}" step="{state.get("step", 1)}" value="{value}" disabled> '
            f"<output>{html.escape(value_text)}</output></label>")


def _output_html(output: dict) -> str:
    """One stored output of an Output widget: an image or text (the only kinds the labs' widgets show)."""
    data = output.get("data", {})
    if "image/png" in data:
        png = "".join(data["image/png"]) if isinstance(data["image/png"], list) else data["image/png"]
        return f'<img alt="figure" src="data:image/png;base64,{png.strip()}">'
    if "text/html" in data:
        return "".join(data["text/html"]) if isinstance(data["text/html"], list) else data["text/html"]
    text = output.get("text") or data.get("text/plain", "")
    text = "".join(text) if isinstance(text, list) else text
    return f"<pre>{html.escape(text)}</pre>"


def widget_html(model_id: str, models: dict[str, dict], where: str) -> str:
    """HTML that shows what the widget ``model_id`` showed when the notebook was saved.

    ``models`` is the notebook's stored widget state (model id → ``{"model_name", "state"}``); ``where``
    names the cell, for the error message. Controls are drawn disabled, at their stored values.
    """
    if model_id not in models:
        raise BookError(f"{where}: its widget {model_id} has no stored state, so the page cannot show it. Re-execute "
                        "the solutions (`make solutions`): they are saved with their widget state.")
    model = models[model_id]
    name, state = model["model_name"], model["state"]

    def children() -> str:
        return "".join(widget_html(child.removeprefix("IPY_MODEL_"), models, where)
                       for child in state.get("children", []))

    if name in ("HBoxModel", "VBoxModel"):
        direction = "row" if name == "HBoxModel" else "column"
        return f'<div class="labs-widget-box" style="flex-direction: {direction}">{children()}</div>'
    if name in ("HTMLModel", "LabelModel"):
        value = state.get("value", "")
        return f'<span class="labs-widget-text">{value if name == "HTMLModel" else html.escape(value)}</span>'
    if name in ("FloatProgressModel", "IntProgressModel"):
        style = {"success": "done", "danger": "failed"}.get(state.get("bar_style", ""), "")
        return (f'<progress class="labs-widget-progress {style}" value="{state.get("value", 0)}" '
                f'max="{state.get("max", 100)}"></progress>')
    if name == "IntSliderModel":
        return _slider_html(state, str(state.get("value", 0)))
    if name == "FloatSliderModel":
        return _slider_html(state, f'{state.get("value", 0):.{_decimals(state.get("readout_format", ".2f"))}f}')
    if name == "FloatLogSliderModel":
        base, exponent = state.get("base", 10), state.get("value", 1)
        return _slider_html({**state, "value": exponent}, f"{base ** exponent:.3g}")
    if name == "ToggleButtonsModel":
        labels, chosen = state.get("_options_labels", []), state.get("index")
        buttons = "".join(f'<button disabled{" class=chosen" if i == chosen else ""}>{html.escape(label)}</button>'
                          for i, label in enumerate(labels))
        return f'<span class="labs-widget-toggle">{html.escape(state.get("description", ""))} {buttons}</span>'
    if name == "OutputModel":
        return "".join(_output_html(output) for output in state.get("outputs", []))
    raise BookError(f"{where}: a widget of kind {name} has no static stand-in in the site yet. Add one to "
                    "labs_lib.authoring.book.widget_html (what it shows when the notebook is saved).")


def _decimals(readout_format: str) -> int:
    match = re.search(r"\.(\d+)f", readout_format)
    return int(match.group(1)) if match else 2


def _is_control(model_id: str, models: dict[str, dict]) -> bool:
    """Whether the widget is or holds something a reader would move (a slider, a toggle)."""
    model = models.get(model_id, {})
    if model.get("model_name", "").endswith(("SliderModel", "ToggleButtonsModel")):
        return True
    return any(_is_control(child.removeprefix("IPY_MODEL_"), models)
               for child in model.get("state", {}).get("children", []))


_INTERACTIVE_NOTE = ('<p class="labs-widget-note">In JupyterLab the controls above move and the figure follows; '
                     "here they are shown as they were when the notebook was saved.</p>")


def static_widget_outputs(nb: nbformat.NotebookNode, name: str) -> int:
    """Replace every widget output of ``nb`` by an HTML stand-in (in place); returns how many were replaced."""
    models = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    replaced = 0
    for index, cell in enumerate(nb.cells):
        for position, output in enumerate(cell.get("outputs", [])):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                continue
            model_id = view["model_id"]
            body = widget_html(model_id, models, f"{name}, cell {index}")
            note = _INTERACTIVE_NOTE if _is_control(model_id, models) else ""
            cell.outputs[position] = new_output(
                "display_data", data={"text/html": f'<div class="labs-widget">{body}{note}</div>'})
            replaced += 1
    nb.metadata.pop("widgets", None)  # nothing left for a widget manager to render
    return replaced


# --- the sources: a home page and the lab pages ----------------------------------------------------------------

def _about_page(name: str) -> nbformat.NotebookNode:
    """What replaces the Colab front matter on a lab's page."""
    return new_markdown_cell(
        f"*This page is the solution notebook `solutions/{name}` with the outputs it stored when it was last "
        f"executed; nothing was re-run to draw it. To do the exercises, open the student notebook `notebooks/{name}` "
        f"in JupyterLab (`make lab`), {{download}}`download it <{STUDENT_DOWNLOADS}/{name}>`, or open it "
        f"[on Google Colab]({colab_url(name)}).*")


def lab_page(source: Path) -> nbformat.NotebookNode:
    """The solution notebook ``source`` as the site shows it (see the module docstring)."""
    nb = read_notebook(source, BookError)
    cells = []
    for cell in nb.cells:
        tag = front_matter_tag(cell)
        if tag == BADGE_TAG:
            cells.append(_about_page(source.name))
        elif tag is None:
            cells.append(cell)
    nb.cells = cells
    static_widget_outputs(nb, source.name)
    return nb


def home_page(readme: Path, labs: list[Path]) -> str:
    """``index.md``: README's opening paragraph and course map, with links to the lab pages."""
    text = readme.read_text(encoding="utf-8")
    if MAP_BEGIN not in text or MAP_END not in text:
        raise BookError(f"{readme} has no course map between `{MAP_BEGIN}` and `{MAP_END}`; the home page is made "
                        "from it. Restore the markers around the course-map table.")
    title, _, rest = text.partition("\n")
    intro = rest.split("\n## ", 1)[0].strip()
    table = text.split(MAP_BEGIN, 1)[1].split(MAP_END, 1)[0].strip()
    footnote = text.split(MAP_END, 1)[1].strip().split("\n\n", 1)[0]
    for lab in labs:
        table = table.replace(f"](notebooks/{lab.name}) · [solution](solutions/{lab.name})", f"]({lab.name})")
        table = table.replace(f'src="docs/figures/{lab.stem}.png"', f'src="figures/{lab.stem}.png" '
                                                                     f'alt="Lab {lab.stem[:2]}"')
    intro = intro.replace(f"]({GUIDE.as_posix()})", f"]({GUIDE_PAGE})")
    # Other files of the repository that the intro links to are not pages of the site: keep their text only.
    intro = re.sub(r"\[([^\]]+)\]\((?!https?://|" + re.escape(GUIDE_PAGE) + r")[^)]+\)", r"\1", intro)
    leftover = re.findall(r"\]\((?:notebooks|solutions)/[^)]+\)", table)
    if leftover:
        raise BookError(f"the course map in {readme} links to {', '.join(leftover)}, which has no page; each row "
                        "must link `[title](notebooks/NN_topic.ipynb) · [solution](solutions/NN_topic.ipynb)`.")
    pages = "\n".join(lab.stem for lab in labs)
    return (f"{title}\n\n{intro}\n\n## Course map\n\n{table}\n\n{footnote}\n\n"
            "Each lab's page is its solution notebook with the outputs stored when it was last executed. The "
            "student notebooks, with the exercises to fill in, are in the course's `notebooks/` folder: "
            "`make lab` opens them in JupyterLab.\n\n"
            f"```{{toctree}}\n:hidden:\n:caption: Labs\n\n{pages}\n```\n\n"
            f"```{{toctree}}\n:hidden:\n:caption: Teaching\n\n{GUIDE_PAGE.removesuffix('.md')}\n```\n")


def guide_page(guide: Path) -> str:
    """The instructor guide as a page: its links to the solution notebooks lead to their pages instead."""
    text = guide.read_text(encoding="utf-8")
    return re.sub(r"\]\(\.\./(?:solutions|notebooks)/(\d\d_[\w-]+\.ipynb)\)", r"](\1)", text)


def write_sources(root: Path, src: Path) -> list[Path]:
    """Write the site's sources for the course in ``root`` into ``src`` (emptied first); returns the lab pages."""
    labs = course_notebooks(root / "solutions", BookError)
    if not labs:
        raise BookError(f"no solution notebooks in {root / 'solutions'}.")
    shutil.rmtree(src, ignore_errors=True)
    (src / "figures").mkdir(parents=True)
    (src / "index.md").write_text(home_page(root / README, labs), encoding="utf-8")
    (src / GUIDE_PAGE).write_text(guide_page(root / GUIDE), encoding="utf-8")
    (src / STUDENT_DOWNLOADS).mkdir()
    for lab in labs:
        student = root / "notebooks" / lab.name
        if not student.is_file():
            raise BookError(f"{student} is missing; each lab's page offers it for download. Run "
                            "`python -m labs_lib.authoring` to generate the student notebooks.")
        shutil.copy2(student, src / STUDENT_DOWNLOADS / lab.name)
        figure = root / "docs" / "figures" / f"{lab.stem}.png"
        if not figure.is_file():
            raise BookError(f"{figure} is missing; the home page shows it. Run `make figures`.")
        shutil.copy2(figure, src / "figures" / figure.name)
        nbformat.write(lab_page(lab), src / lab.name)
    return [src / lab.name for lab in labs]


def build_book(root: Path = Path("."), out: Path | None = None, config: Path | None = None) -> Path:
    """Build the site of the course in ``root`` into ``out`` (default ``build/book/html``); returns ``index.html``.

    ``config`` is the folder of Sphinx's ``conf.py`` (default ``root/book``).

    Sphinx runs with ``-W``: a warning (a broken internal link, a page outside the table of contents,
    a LaTeX or MyST syntax error) fails the build and is printed.
    """
    book = root / BOOK
    out = out or book / "html"
    pages = write_sources(root, book / "src")
    shutil.rmtree(out, ignore_errors=True)
    # A subprocess, not sphinx.cmd.build.main in this process: Sphinx keeps global state between builds.
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(config or root / CONFIG), "-W", "--keep-going",
               "-q", "-d", str(book / "doctrees"), str(book / "src"), str(out)]
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise BookError(f"Sphinx could not build the site (exit status {result.returncode}); its warnings are above.")
    # The theme's download menu offers a page's source, which for a lab is the page as prepared above
    # (no Colab set-up, widgets replaced by pictures): hand out the solution notebook itself instead.
    for page in pages:
        shutil.copyfile(root / "solutions" / page.name, out / "_sources" / page.name)
    return out / "index.html"
