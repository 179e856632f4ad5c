"""The course's website: its sources made from a small course, every real solution's widgets, and a build.

The pages as a reader sees them (equations typeset, images loaded, links resolved, nothing fetched
from the web) are checked in a real browser by browser_tests/test_book.py; here the builder's own
steps are checked, and that Sphinx fails the build on a broken link.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest
from course_files import PNG_A, image_output, write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from labs_lib.authoring.book import (WIDGET_VIEW, BookError, build_book, home_page, lab_page, static_widget_outputs,
                                     widget_html, write_sources)
from labs_lib.authoring.front_matter import front_matter
from labs_lib.authoring.notebooks import WIDGET_STATE

ROOT = Path(__file__).resolve().parents[1]
HAS_SPHINX = all(importlib.util.find_spec(name) for name in ("sphinx", "myst_nb", "sphinx_book_theme"))


def model(name: str, **state) -> dict:
    return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}


# What tqdm.auto draws at the end of a loop, and what ipywidgets.interact draws for one slider.
PROGRESS = {
    "bar": model("HBoxModel", children=["IPY_MODEL_label", "IPY_MODEL_progress", "IPY_MODEL_count"]),
    "label": model("HTMLModel", value="training: 100%"),
    "progress": model("FloatProgressModel", value=300.0, max=300.0, bar_style="success"),
    "count": model("HTMLModel", value=" 300/300 [00:02&lt;00:00]"),
}
SLIDER = {
    "ui": model("VBoxModel", children=["IPY_MODEL_slider", "IPY_MODEL_out"], _dom_classes=["widget-interact"]),
    "slider": model("FloatSliderModel", value=0.25, min=0.0, max=1.0, step=0.05, description="t",
                    readout_format=".2f"),
    "out": model("OutputModel", outputs=[image_output(PNG_A)]),
}


def widget_output(model_id: str) -> nbformat.NotebookNode:
    return new_output("display_data", data={WIDGET_VIEW: {"model_id": model_id, "version_major": 2,
                                                          "version_minor": 0},
                                            "text/plain": "HBox(children=(...))"})


def small_course(root: Path, guide_extra: str = "") -> Path:
    """A course of one lab (title, front matter, math, a progress bar, a slider, a figure) in ``root``."""
    name = "01_demo.ipynb"
    cells = [new_markdown_cell("# Lab 01 · Demo\n\nThe flow $\\phi_t(x)$ solves $\\frac{d}{dt}\\phi_t = u_t$."),
             *front_matter(name, solution=True),
             new_markdown_cell("## Training\n\n$$\\mathcal{L} = \\mathbb{E}\\,\\|u_t - v\\|^2$$"),
             new_code_cell("train()"), new_code_cell("interact(show)"), new_code_cell("plot()")]
    cells[-3].outputs = [widget_output("bar"), new_output("stream", name="stdout", text="loss 0.12\n")]
    cells[-2].outputs = [widget_output("ui")]
    cells[-1].outputs = [image_output(PNG_A)]
    nb = new_notebook(cells=cells, metadata={"language_info": {"name": "python"}})
    nb.metadata["widgets"] = {WIDGET_STATE: {"state": {**PROGRESS, **SLIDER}, "version_major": 2, "version_minor": 0}}
    write_notebook(root / "solutions" / name, nb)
    write_notebook(root / "notebooks" / name, new_notebook(cells=[new_markdown_cell("# Lab 01 · Demo")]))
    (root / "docs" / "figures").mkdir(parents=True)
    (root / "docs" / "figures" / "01_demo.png").write_bytes(PNG_A)
    (root / "README.md").write_text(
        "# Demo course\n\nA course. Teaching it? Read the [instructor guide](docs/INSTRUCTOR_GUIDE.md).\n\n"
        "## Course map\n\n<!-- BEGIN COURSE MAP -->\n| # | lab | figure |\n|---|---|---|\n"
        "| 01 | [Demo](notebooks/01_demo.ipynb) · [solution](solutions/01_demo.ipynb) | "
        '<img src="docs/figures/01_demo.png" width="200"> |\n<!-- END COURSE MAP -->\n\n'
        "\\* Run times on a 2-core CPU.\n\n## Two commands\n\n`make lab`\n", encoding="utf-8")
    (root / "docs" / "INSTRUCTOR_GUIDE.md").write_text(
        "# Instructor guide\n\n## Lab 01 · Demo\n\nThe [solution](../solutions/01_demo.ipynb) trains once. "
        f"See [below](#lab-01--demo).\n{guide_extra}", encoding="utf-8")
    return root


# --- widgets -------------------------------------------------------------------------------------------------


def test_a_progress_bar_stands_as_it_ended():
    html = widget_html("bar", PROGRESS, "cell 3")
    assert '<progress class="labs-widget-progress done" value="300.0" max="300.0">' in html
    assert "training: 100%" in html and "300/300" in html


def test_a_slider_is_drawn_disabled_at_its_value_with_its_figure():
    html = widget_html("ui", SLIDER, "cell 4")
    assert re.search(r'<input type="range" min="0.0" max="1.0" step="0.05" value="0.25" disabled>', html)
    assert "<output>0.25</output>" in html and 'src="data:image/png;base64,' in html


def test_an_unknown_widget_or_missing_state_is_named():
    with pytest.raises(BookError, match=r"lab.ipynb, cell 7: a widget of kind ColorPickerModel has no static"):
        widget_html("c", {"c": model("ColorPickerModel", value="#fff")}, "lab.ipynb, cell 7")
    with pytest.raises(BookError, match=r"cell 2: its widget gone has no stored state.*make solutions"):
        widget_html("gone", PROGRESS, "cell 2")


def test_widget_outputs_become_html_and_the_widget_state_goes(tmp_path):
    nb = nbformat.read(small_course(tmp_path) / "solutions" / "01_demo.ipynb", as_version=4)
    assert static_widget_outputs(nb, "01_demo.ipynb") == 2
    outputs = [o for cell in nb.cells for o in cell.get("outputs", [])]
    assert not any(WIDGET_VIEW in o.get("data", {}) for o in outputs) and "widgets" not in nb.metadata
    notes = [o for o in outputs if "moves in JupyterLab" in str(o) or "controls above move" in str(o)]
    assert len(notes) == 1  # the slider gets the note that it moves in JupyterLab; the progress bar does not


@pytest.mark.parametrize("solution", sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.name[:2])
def test_every_solution_becomes_a_page_without_widgets_or_colab_cells(solution):
    source = nbformat.read(solution, as_version=4)
    n_widgets = sum(WIDGET_VIEW in o.get("data", {}) for cell in source.cells for o in cell.get("outputs", []))
    page = lab_page(solution)
    html = [o["data"]["text/html"] for cell in page.cells for o in cell.get("outputs", [])
            if 'class="labs-widget"' in str(o.get("data", {}).get("text/html", ""))]
    assert len(html) == n_widgets > 0
    assert not any(WIDGET_VIEW in o.get("data", {}) for cell in page.cells for o in cell.get("outputs", []))
    assert not any("colab-setup" in cell.get("metadata", {}).get("tags", []) for cell in page.cells)
    assert len(page.cells) == len(source.cells) - 1  # badge → the page's note, setup cell dropped
    assert "nothing was re-run" in page.cells[1].source


# --- the home page and the guide -----------------------------------------------------------------------------


def test_the_home_page_is_the_course_map_with_links_to_pages(tmp_path):
    root = small_course(tmp_path)
    text = home_page(root / "README.md", [root / "solutions" / "01_demo.ipynb"])
    assert text.startswith("# Demo course\n")
    assert "[Demo](01_demo.ipynb)" in text and "notebooks/" not in text.split("## Course map")[1].split("\n\n")[1]
    assert 'src="figures/01_demo.png"' in text and "[instructor guide](instructor_guide.md)" in text
    assert "Run times on a 2-core CPU" in text and "Two commands" not in text
    assert "```{toctree}" in text and "\n01_demo\n" in text


def test_a_readme_without_a_course_map_is_named(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# A course\n\nNo map.\n")
    with pytest.raises(BookError, match=r"README.md has no course map between `<!-- BEGIN COURSE MAP -->`"):
        home_page(readme, [])


def test_the_sources_hold_pages_figures_and_the_guide(tmp_path):
    root = small_course(tmp_path)
    write_sources(root, tmp_path / "src")
    names = sorted(p.relative_to(tmp_path / "src").as_posix() for p in (tmp_path / "src").rglob("*") if p.is_file())
    assert names == ["01_demo.ipynb", "figures/01_demo.png", "index.md", "instructor_guide.md",
                     "student_notebooks/01_demo.ipynb"]
    guide = (tmp_path / "src" / "instructor_guide.md").read_text()
    assert "[solution](01_demo.ipynb)" in guide


# --- Sphinx: the build and its failure on a broken link ------------------------------------------------------


@pytest.mark.skipif(not HAS_SPHINX, reason="the `book` extra (Sphinx, MyST-NB) is not installed: `make book`")
def test_a_small_course_builds_and_a_broken_link_fails_the_build(tmp_path, capfd):
    root = small_course(tmp_path / "good")
    index = build_book(root, config=ROOT / "book")
    pages = {p.name for p in index.parent.glob("*.html")}
    assert {"index.html", "01_demo.html", "instructor_guide.html"} <= pages
    lab = (index.parent / "01_demo.html").read_text()
    assert '<progress class="labs-widget-progress done"' in lab and 'class="math notranslate' in lab
    download = re.search(r'href="(_downloads/[0-9a-f]+/01_demo\.ipynb)"', lab)
    assert download, "the lab's page offers no student notebook to download"
    assert nbformat.read(index.parent / download.group(1), as_version=4).cells[0].source == "# Lab 01 · Demo"
    assert "student_notebooks" not in {p.name for p in index.parent.iterdir()}  # a download, not a page
    # the theme's .ipynb download is the solution notebook itself, not the page's prepared source
    assert 'href="_sources/01_demo.ipynb"' in lab
    offered = index.parent / "_sources" / "01_demo.ipynb"
    assert offered.read_bytes() == (root / "solutions" / "01_demo.ipynb").read_bytes()
    assert "mathjax/tex-chtml.js" in lab and (index.parent / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert not re.search(r'<(script|link)[^>]+(src|href)="https?://', lab)  # nothing from the web

    broken = small_course(tmp_path / "broken", guide_extra="\nSee [the missing section](#no-such-section).\n")
    with pytest.raises(BookError, match="Sphinx could not build the site"):
        build_book(broken, config=ROOT / "book")
    assert "no-such-section" in capfd.readouterr().err
