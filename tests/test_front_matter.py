"""The Colab front matter, the RISE slide types and the course-map tags of the notebooks.

Two kinds of tests: on the committed notebooks (front matter current, every cell with a slide
type, one course-map figure per lab), and on small notebooks built in a temporary folder (what
``--front-matter``, ``--slides`` and ``--check`` do, and what the setup cell runs on and off Colab).
"""

from __future__ import annotations

import re
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
from course_files import finish_course
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from labs_lib.authoring import front_matter as fm
from labs_lib.authoring import generate, slides
from labs_lib.authoring.cli import main

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
STUDENT = sorted((ROOT / "notebooks").glob("*.ipynb"))
COURSE_MAP_TAG = "course-map"
BADGE_LINK = re.compile(r"\[Open this lab in Google Colab ↗\]\((?P<url>[^)]+)\)")


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def png_output(cell: nbformat.NotebookNode) -> bool:
    return any("image/png" in o.get("data", {}) for o in cell.get("outputs", []))


# --- the committed notebooks ----------------------------------------------------------------------


def test_there_are_notebooks_of_both_kinds():
    assert len(SOLUTIONS) >= 7 and [p.name for p in SOLUTIONS] == [p.name for p in STUDENT]


@pytest.mark.parametrize("path", SOLUTIONS + STUDENT, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_front_matter_is_present_and_current(path: Path):
    nb = read(path)
    solution = path.parent.name == "solutions"
    problems = fm.front_matter_problems(nb, path.name, solution=solution)
    assert problems == [], f"{path.parent.name}/{path.name}: {problems}. {fm.FRONT_MATTER_FIX}"
    # The lab's title comes first, so that it is the first thing a reader sees; then the front matter.
    assert fm.is_title_cell(nb.cells[0]) and nb.cells[0].source.startswith("# Lab "), f"{path.name}: no title first"
    badge, setup = nb.cells[1], nb.cells[2]
    link = BADGE_LINK.search(badge.source)
    assert link, f"{path.name}: no Colab link in the cell after the title"
    assert "![" not in badge.source, "no image: an external badge image is broken offline"
    # Students open the student version of the notebook they are reading, from the main branch.
    assert link["url"] == (f"https://colab.research.google.com/github/{fm.COURSE_REPOSITORY}/blob/main/"
                           f"notebooks/{path.name}")
    # The two files share one name (a tab shows only that), so the solution says what it is on its first
    # screen and links to the student notebook; the student notebook does not claim to be a solution.
    says_solution = badge.source.startswith("**This is the solution notebook:**")
    assert says_solution == solution, (f"{path.parent.name}/{path.name}: the badge cell's first line: "
                                       f"{badge.source[:80]!r}")
    if solution:
        assert f"[notebooks/{path.name}](../notebooks/{path.name})" in badge.source
        assert (path.parent / f"../notebooks/{path.name}").resolve().is_file()
    assert setup.cell_type == "code" and "nbval-skip" in setup.metadata.tags
    # a collapsed input would make JupyterLab's Run All Cells run nothing (seen in the browser)
    assert not setup.metadata.get("jupyter", {}).get("source_hidden"), "the setup cell's input is collapsed"
    assert "!" not in "".join(line.split("#")[0] for line in setup.source.splitlines()), "no shell magics"
    compile(setup.source, f"{path.name}, setup cell", "exec")  # plain Python


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_every_cell_has_a_valid_slide_type_and_figures_are_never_skipped(path: Path):
    nb = read(path)
    kinds = [slides.slide_type(c) for c in nb.cells]
    assert all(k in slides.SLIDE_TYPES for k in kinds), (
        f"{path.name}: {slides.slide_problems(nb)}; run `python -m labs_lib.authoring --slides`")
    skipped_figures = [i for i, c in enumerate(nb.cells) if slides.slide_type(c) == "skip" and png_output(c)]
    assert not skipped_figures, f"{path.name}: cells {skipped_figures} draw a figure that the slideshow would hide"
    assert slides.slide_problems(nb) == []
    assert kinds.count("slide") >= 5, f"{path.name}: only {kinds.count('slide')} slides"
    assert kinds[0] == "slide", "the lab's title opens the slideshow"
    assert kinds[1] == kinds[2] == "skip", "the front matter is not part of the slideshow"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_student_notebooks_carry_the_slide_types_and_tags_unchanged(path: Path):
    solution, student = read(path), read(ROOT / "notebooks" / path.name)
    assert [slides.slide_type(c) for c in student.cells] == [slides.slide_type(c) for c in solution.cells]
    assert [c.metadata.get("tags", []) for c in student.cells] == [c.metadata.get("tags", []) for c in solution.cells]


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_exactly_one_course_map_figure(path: Path):
    tagged = [c for c in read(path).cells if COURSE_MAP_TAG in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged {COURSE_MAP_TAG}, expected one"
    assert tagged[0].cell_type == "code" and png_output(tagged[0]), (
        f"{path.name}: the cell tagged {COURSE_MAP_TAG} has no image/png output")
    assert slides.slide_type(tagged[0]) != "skip"


# --- the setup cell, run off and on Colab ---------------------------------------------------------------


@pytest.fixture
def pip_calls(monkeypatch) -> list[tuple[tuple, dict]]:
    """Replace subprocess.run by a recorder: nothing is installed, every call is kept."""
    calls: list[tuple[tuple, dict]] = []
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: calls.append((args, kwargs)))
    return calls


def run_setup_cell() -> None:
    source = read(SOLUTIONS[0]).cells[2].source  # the cell students actually run
    assert source == fm.setup_source()
    exec(compile(source, "<setup cell>", "exec"), {"__name__": "__main__"})


def test_setup_cell_does_nothing_outside_colab(monkeypatch, pip_calls):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    run_setup_cell()  # an unconditional `from google.colab import ...` would raise here
    assert pip_calls == []


def test_setup_cell_installs_labs_lib_without_dependencies_on_colab(monkeypatch, pip_calls):
    widget_manager = []
    colab = types.ModuleType("google.colab")
    colab.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: widget_manager.append(True))
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    run_setup_cell()
    assert len(pip_calls) == 1
    (command,), kwargs = pip_calls[0]
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    assert "--no-deps" in command
    assert command[-1] == f"labs_lib @ git+https://github.com/{fm.COURSE_REPOSITORY}@main"
    assert kwargs == {"check": True}  # a failed install stops the notebook at once
    assert widget_manager == [True]


def test_repository_must_look_like_owner_and_name():
    assert fm.colab_url("01_x.ipynb", "me/my-course") == (
        "https://colab.research.google.com/github/me/my-course/blob/main/notebooks/01_x.ipynb")
    assert "git+https://github.com/me/my-course@main" in fm.setup_source("me/my-course")
    for bad in ("my-course", "https://github.com/me/my-course", "me/my course", ""):
        with pytest.raises(ValueError, match="owner/name"):
            fm.badge_source("01_x.ipynb", bad)


# --- --front-matter and --check on a temporary course -------------------------------------------------------


def write(path: Path, nb: nbformat.NotebookNode) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def bare_course(tmp_path):
    """Two solution notebooks without front matter, and their student versions."""
    sol, nbs = tmp_path / "solutions", tmp_path / "notebooks"
    write(sol / "01_first.ipynb", new_notebook(cells=[new_markdown_cell("# First"), new_code_cell("x = 1")]))
    write(sol / "02_second.ipynb",
          new_notebook(cells=[new_code_cell("### BEGIN SOLUTION: y\ny = 2\n### END SOLUTION")]))
    finish_course(sol, tmp_path / "figures")
    generate(sol, nbs)
    return sol, nbs


def cli(*args: str, course) -> int:
    sol, nbs = course
    return main([*args, "--solutions", str(sol), "--notebooks", str(nbs), "--figures-dir", str(sol.parent / "figures")])


def test_check_fails_while_front_matter_is_missing_and_names_the_notebook(bare_course, capsys):
    assert cli("--check", course=bare_course) == 1
    out = capsys.readouterr().out
    assert "stale: " not in out  # the student notebooks themselves are up to date
    for name in ("01_first.ipynb", "02_second.ipynb"):
        assert f"front matter: {bare_course[0] / name}: the Colab badge cell (tag `colab-badge`) is missing" in out
        assert f"front matter: {bare_course[0] / name}: the Colab setup cell (tag `colab-setup`) is missing" in out
    assert "--front-matter" in out


def test_front_matter_is_inserted_carried_to_students_and_idempotent(bare_course, capsys):
    sol, nbs = bare_course
    before = read(sol / "01_first.ipynb")
    assert cli("--front-matter", course=bare_course) == 0
    out = capsys.readouterr().out
    assert f"updated {sol / '01_first.ipynb'}: front matter refreshed" in out and "wrote " in out
    after = read(sol / "01_first.ipynb")
    rest = [c for c in after.cells if fm.front_matter_tag(c) is None]
    assert [c.source for c in rest] == [c.source for c in before.cells]  # the rest untouched
    assert [c.id for c in rest] == [c.id for c in before.cells]
    # after the title "# First"; the second notebook has no title cell, so its front matter opens it
    assert [c.id for c in after.cells[1:3]] == ["colab-badge", "colab-setup"]
    assert "notebooks/01_first.ipynb" in after.cells[1].source
    assert ([fm.front_matter_tag(c) for c in read(sol / "02_second.ipynb").cells][:3]
            == ["colab-badge", "colab-setup", None])
    for folder in (sol, nbs):
        for name in ("01_first.ipynb", "02_second.ipynb"):
            assert fm.front_matter_problems(read(folder / name), name, solution=folder == sol) == []
    assert cli("--check", course=bare_course) == 0
    files = {p: p.read_bytes() for p in sorted(sol.glob("*")) + sorted(nbs.glob("*"))}
    capsys.readouterr()
    assert cli("--front-matter", course=bare_course) == 0  # a second run changes nothing
    assert "updated" not in capsys.readouterr().out
    assert {p: p.read_bytes() for p in files} == files


def test_outdated_or_misplaced_front_matter_fails_check_and_is_refreshed(bare_course, capsys, monkeypatch):
    sol, _ = bare_course
    cli("--front-matter", course=bare_course)
    # The course gets its real repository: every badge and setup cell is out of date.
    monkeypatch.setattr(fm, "COURSE_REPOSITORY", "someone/real-course")
    capsys.readouterr()
    assert cli("--check", course=bare_course) == 1
    out = capsys.readouterr().out
    assert f"{sol / '01_first.ipynb'}: the Colab badge cell is out of date: its text differs" in out
    assert f"{sol / '02_second.ipynb'}: the Colab setup cell is out of date: its text differs" in out
    assert cli("--front-matter", course=bare_course) == 0
    nb = read(sol / "01_first.ipynb")
    assert "github/someone/real-course/blob/main/notebooks/01_first.ipynb" in nb.cells[1].source
    assert [c.id for c in nb.cells[1:3]] == ["colab-badge", "colab-setup"]  # refreshed in place
    assert cli("--check", course=bare_course) == 0
    # A front-matter cell moved down the notebook is reported, then moved back.
    nb.cells.insert(3, nb.cells.pop(1))
    write(sol / "01_first.ipynb", nb)
    capsys.readouterr()
    assert cli("--check", course=bare_course) == 1
    assert "the Colab badge cell is cell 3; it must be cell 1" in capsys.readouterr().out
    cli("--front-matter", course=bare_course)
    assert ([fm.front_matter_tag(c) for c in read(sol / "01_first.ipynb").cells][:4]
            == [None, "colab-badge", "colab-setup", None])
    # So is front matter above the title: the title must come first.
    nb = read(sol / "01_first.ipynb")
    nb.cells.insert(0, nb.cells.pop(0 + 1))
    write(sol / "01_first.ipynb", nb)
    capsys.readouterr()
    assert cli("--check", course=bare_course) == 1
    assert "the Colab badge cell is cell 0; it must be cell 1" in capsys.readouterr().out


def test_a_changed_slide_type_or_tag_makes_the_front_matter_outdated():
    nb = new_notebook(cells=[new_markdown_cell("# T")])
    fm.refresh_front_matter(nb, "01_t.ipynb")
    nb.cells[2].metadata.slideshow.slide_type = "slide"  # the setup cell, after the title and the badge
    nb.cells[1].metadata.tags.append("extra")
    problems = fm.front_matter_problems(nb, "01_t.ipynb")
    assert any("setup cell is out of date: its slide type is not 'skip'" in p for p in problems)
    assert any("badge cell is out of date: its tags are" in p for p in problems)


def test_a_collapsed_front_matter_cell_is_outdated():
    # In JupyterLab 4.6 a notebook with a collapsed code input runs nothing on Run All Cells.
    nb = new_notebook(cells=[new_markdown_cell("# T")])
    fm.refresh_front_matter(nb, "01_t.ipynb")
    nb.cells[2].metadata["jupyter"] = {"source_hidden": True}
    problems = fm.front_matter_problems(nb, "01_t.ipynb")
    assert any("setup cell is out of date: its input is collapsed" in p for p in problems), problems
    assert fm.refresh_front_matter(nb, "01_t.ipynb") is True
    assert fm.front_matter_problems(nb, "01_t.ipynb") == [] and "jupyter" not in nb.cells[2].metadata


def test_an_executed_setup_cell_is_current_and_kept_as_it_is():
    nb = new_notebook(cells=[new_markdown_cell("# T")])
    fm.refresh_front_matter(nb, "01_t.ipynb")
    setup = nb.cells[2]
    setup.execution_count = 1
    setup.outputs = [new_output("stream", name="stdout", text="")]
    setup.metadata["execution"] = {"iopub.status.idle": "2026-01-01T00:00:00Z"}
    assert fm.front_matter_problems(nb, "01_t.ipynb") == []
    assert fm.refresh_front_matter(nb, "01_t.ipynb") is False
    assert nb.cells[2] is setup and setup.execution_count == 1


def test_duplicate_front_matter_is_reported_and_dropped():
    nb = new_notebook(cells=[new_markdown_cell("# T")])
    fm.refresh_front_matter(nb, "01_t.ipynb")
    nb.cells.append(fm.front_matter("01_t.ipynb")[0])
    assert any("are all tagged `colab-badge`" in p for p in fm.front_matter_problems(nb, "01_t.ipynb"))
    assert fm.refresh_front_matter(nb, "01_t.ipynb") is True
    assert len(nb.cells) == 3 and fm.front_matter_problems(nb, "01_t.ipynb") == []


def test_notebooks_without_cell_ids_get_front_matter_without_ids():
    nb = new_notebook()
    nb.nbformat_minor = 4  # cell ids came with format 4.5
    title = new_markdown_cell("# T")
    del title["id"]
    nb.cells.append(title)
    assert fm.refresh_front_matter(nb, "01_t.ipynb")
    assert all("id" not in c for c in nb.cells)
    nbformat.validate(nb)


def test_check_and_writing_flags_do_not_mix(bare_course, capsys):
    with pytest.raises(SystemExit):
        cli("--check", "--front-matter", course=bare_course)
    assert "--check writes nothing" in capsys.readouterr().err


# --- slide types -------------------------------------------------------------------------------------------


def code(source: str, *mimetypes: str) -> nbformat.NotebookNode:
    outputs = [new_output("display_data", data={m: "x" for m in mimetypes})] if mimetypes else []
    return new_code_cell(source, outputs=outputs)


LONG = "\n".join(f"x{i} = {i}" for i in range(slides.LONG_CODE_LINES + 1))


@pytest.mark.parametrize("cell, expected", [
    (new_markdown_cell("# Lab 01"), "slide"),
    (new_markdown_cell("\n## 2. Euler's method\n\ntext"), "slide"),
    (new_markdown_cell("### Exercise 1"), "subslide"),
    (new_markdown_cell("#### A small heading"), "-"),
    (new_markdown_cell("Some text.\n\n## A heading further down"), "-"),
    (new_markdown_cell("#hashtag, not a heading"), "-"),
    (new_markdown_cell("  "), "skip"),
    (code("check_euler_step(MyEuler)"), "fragment"),
    (code("x = 1", "image/png"), "-"),
    (code(LONG), "skip"),
    (code(LONG, "text/plain"), "skip"),
    (code(LONG, "image/png", "text/plain"), "-"),
    (code(LONG, "text/html"), "-"),
    (code(LONG, "application/vnd.jupyter.widget-view+json"), "-"),
    (code(LONG.split("\n", 1)[1]), "-"),  # exactly LONG_CODE_LINES lines: still shown
    (code(""), "skip"),
    (fm.front_matter("01_x.ipynb")[0], "skip"),
    (fm.front_matter("01_x.ipynb")[1], "skip"),
])
def test_suggested_slide_types(cell, expected):
    assert slides.suggested_slide_type(cell) == expected


def test_slides_never_overwrites_a_slide_type(tmp_path, capsys):
    sol, nbs = tmp_path / "solutions", tmp_path / "notebooks"
    chosen = [new_markdown_cell("# Title"), new_markdown_cell("## Section"), code("check_x(X)"),
              code(LONG, "image/png")]
    for cell, kind in zip(chosen, ["subslide", "notes", "-", "skip"]):  # all different from the rule
        cell.metadata["slideshow"] = {"slide_type": kind}
    fresh = [new_markdown_cell("### Sub"), code("check_y(Y)"), new_markdown_cell("text")]
    write(sol / "01_deck.ipynb", new_notebook(cells=chosen + fresh))
    assert main(["--slides", "--solutions", str(sol), "--notebooks", str(nbs)]) == 0
    assert f"updated {sol / '01_deck.ipynb'}: slide types given to 3 cells" in capsys.readouterr().out
    kinds = [slides.slide_type(c) for c in read(sol / "01_deck.ipynb").cells]
    assert kinds == ["subslide", "notes", "-", "skip", "subslide", "fragment", "-"]
    assert [slides.slide_type(c) for c in read(nbs / "01_deck.ipynb").cells] == kinds
    # The skipped figure is kept (the instructor chose it) but reported.
    assert slides.slide_problems(read(sol / "01_deck.ipynb")) == [
        "cell 3 is skipped in the slideshow but draws a figure"]
    # An instructor's change survives the next run.
    nb = read(sol / "01_deck.ipynb")
    nb.cells[6].metadata.slideshow.slide_type = "fragment"
    write(sol / "01_deck.ipynb", nb)
    before = (sol / "01_deck.ipynb").read_bytes()
    assert main(["--slides", "--solutions", str(sol), "--notebooks", str(nbs)]) == 0
    assert (sol / "01_deck.ipynb").read_bytes() == before


def test_slide_problems_names_missing_and_invalid_types():
    nb = new_notebook(cells=[new_markdown_cell("# T"), new_markdown_cell("text")])
    nb.cells[1].metadata["slideshow"] = {"slide_type": "title"}
    assert slides.slide_problems(nb) == [
        "the notebook's RISE setting 'scroll' is None, not True (metadata.rise)",
        "cell 0 has no slide type",
        "cell 1 has the slide type 'title', not one of slide, subslide, fragment, -, skip, notes"]
    assert slides.fill_slide_types(nb) == [0]  # the invalid one is the instructor's to fix


def test_every_solution_slideshow_scrolls_and_instructors_settings_are_kept():
    nb = new_notebook(cells=[new_markdown_cell("# T")])
    nb.metadata["rise"] = {"theme": "serif"}
    assert slides.fill_slideshow_settings(nb) is True
    assert nb.metadata["rise"] == {"theme": "serif", "scroll": True}
    assert slides.fill_slideshow_settings(nb) is False  # nothing left to add
    nb.metadata["rise"]["scroll"] = False  # an instructor's choice is kept, and reported
    assert slides.fill_slideshow_settings(nb) is False
    assert slides.slide_problems(nb)[0] == "the notebook's RISE setting 'scroll' is False, not True (metadata.rise)"


def test_inner_headings_are_found_outside_code_math_and_solutions():
    source = ("Intro.\n\n## A section\n\n```python\n# a comment, not a heading\n```\n"
              "$$\n# not a heading either\n$$\n<!-- BEGIN SOLUTION -->\n### hidden\n<!-- END SOLUTION -->\n"
              "### Exercise\n")
    assert slides.inner_headings(new_markdown_cell(source)) == [3, 14]
    assert slides.inner_headings(new_markdown_cell("## Only at the top\n\ntext")) == []
    assert slides.inner_headings(new_code_cell("x = 1\n# comment")) == []


def test_slides_hints_at_headings_inside_a_cell(tmp_path, capsys):
    sol, nbs = tmp_path / "solutions", tmp_path / "notebooks"
    write(sol / "01_deck.ipynb", new_notebook(cells=[new_markdown_cell("# T\n\ntext\n\n## Section 1\n")]))
    assert main(["--slides", "--solutions", str(sol), "--notebooks", str(nbs)]) == 0
    assert (f"hint: {sol / '01_deck.ipynb'}, cell 0: the heading on line 5 cannot start a slide; split the cell there"
            in capsys.readouterr().out)
