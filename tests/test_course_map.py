"""Course-map figures: cut from the solution notebooks' tagged outputs, kept in step with them,
and shown in the README; plus the instructor guide's run-time block, kept in step with the
notebooks' stored timestamps.

The synthetic tests build small notebooks in a temporary folder. The real-repository tests fail
when a figure in docs/figures is stale (run `make figures`), when the README's course map does
not show a lab's figure, or when the guide's run times differ from what `make bench` would
write (run `python -m labs_lib.authoring --run-times`).
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import nbformat
import pytest
from course_files import PNG_A, PNG_B, figure_cell, image_output
from nbformat.v4 import new_markdown_cell, new_notebook, new_output

from labs_lib.authoring.cli import main
from labs_lib.authoring.course_map import TAG, CourseMapError, stale_figures, tagged_png, write_figures
from labs_lib.authoring.notebooks import AuthoringError
from labs_lib.authoring.run_times import (GUIDE, MAP_BEGIN, MAP_END, TIMES_BEGIN, TIMES_END, over_budget,
                                          solution_run_times, stale_run_times, update_course_map, update_guide)

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def _course(tmp_path: Path, *notebooks: tuple[str, list]) -> Path:
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    for name, cells in notebooks:
        nbformat.write(new_notebook(cells=[new_markdown_cell("# Lab"), *cells]), solutions / name)
    return solutions


# --- extraction ----------------------------------------------------------------------------


def test_the_tagged_cells_first_png_is_written_byte_for_byte(tmp_path):
    text_out = new_output("stream", name="stdout", text="W2 = 0.5\n")
    solutions = _course(tmp_path,
                        ("01_a.ipynb", [figure_cell(image_output(PNG_B), tagged=False),
                                        figure_cell(text_out, image_output(PNG_A), image_output(PNG_B))]),
                        ("02_b.ipynb", [figure_cell(image_output(PNG_B, lines=True))]))
    figures = tmp_path / "docs" / "figures"
    written = write_figures(solutions, figures)
    assert written == [figures / "01_a.png", figures / "02_b.png"]
    assert (figures / "01_a.png").read_bytes() == PNG_A  # the first PNG of the tagged cell, not of another cell
    assert (figures / "02_b.png").read_bytes() == PNG_B
    assert stale_figures(solutions, figures) == []


def test_unchanged_figures_are_not_rewritten_and_changed_ones_are(tmp_path):
    solutions = _course(tmp_path, ("01_a.ipynb", [figure_cell(image_output(PNG_A))]),
                        ("02_b.ipynb", [figure_cell(image_output(PNG_B))]))
    figures = tmp_path / "figures"
    write_figures(solutions, figures)
    before = (figures / "02_b.png").stat().st_mtime_ns
    nbformat.write(new_notebook(cells=[figure_cell(image_output(PNG_B))]), solutions / "01_a.ipynb")
    assert stale_figures(solutions, figures) == [f"{figures / '01_a.png'} differs from the `{TAG}` output of its "
                                                 "solution notebook"]
    assert write_figures(solutions, figures) == [figures / "01_a.png"]
    assert (figures / "01_a.png").read_bytes() == PNG_B
    assert (figures / "02_b.png").stat().st_mtime_ns == before
    assert write_figures(solutions, figures) == []


def test_missing_figure_is_reported_stale(tmp_path):
    solutions = _course(tmp_path, ("01_a.ipynb", [figure_cell(image_output(PNG_A))]))
    assert stale_figures(solutions, tmp_path / "figures") == [f"{tmp_path / 'figures' / '01_a.png'} is missing"]


@pytest.mark.parametrize("cells, message, remedy", [
    ([figure_cell(image_output(PNG_A), tagged=False)], "01_a.ipynb: no cell is tagged `course-map`",
     "then run `make figures`"),
    ([figure_cell(image_output(PNG_A)), figure_cell(image_output(PNG_B))],
     "01_a.ipynb: cells 1, 2 are all tagged `course-map`",
     "Keep the tag on one of them only, then run `make figures`"),
    ([figure_cell(new_output("stream", name="stdout", text="hi\n"))],
     "cell 1 is tagged `course-map` but has no image/png",
     "Tag a cell that draws a matplotlib figure and re-execute the notebook (`make solutions`)"),
    ([figure_cell()], "cell 1 is tagged `course-map` but has no image/png output", "make solutions"),
])
def test_notebooks_without_exactly_one_tagged_figure_are_errors_that_say_what_to_do(tmp_path, cells, message, remedy):
    solutions = _course(tmp_path, ("01_a.ipynb", cells))
    with pytest.raises(CourseMapError) as err:
        write_figures(solutions, tmp_path / "figures")
    assert message in str(err.value)
    assert remedy in str(err.value)
    assert "01_a.ipynb" in str(err.value)
    assert not (tmp_path / "figures").exists()  # nothing half-written


def test_a_tagged_markdown_cell_is_explained():
    md = new_markdown_cell("![figure](x.png)")
    md.metadata["tags"] = [TAG]
    with pytest.raises(CourseMapError, match="cell 0 is tagged `course-map` but is a markdown cell"):
        tagged_png(new_notebook(cells=[md]), "01_a.ipynb")


def test_an_image_that_is_not_a_png_is_an_error():
    cell = figure_cell(new_output("display_data", data={"image/png": base64.b64encode(b"GIF89a...").decode()}))
    with pytest.raises(CourseMapError, match="does not decode to a PNG"):
        tagged_png(new_notebook(cells=[cell]), "01_a.ipynb")


def test_one_broken_notebook_stops_the_run_before_anything_is_written(tmp_path):
    solutions = _course(tmp_path, ("01_a.ipynb", [figure_cell(image_output(PNG_A))]),
                        ("02_b.ipynb", [figure_cell(tagged=False)]))
    with pytest.raises(CourseMapError, match="02_b.ipynb: no cell is tagged"):
        write_figures(solutions, tmp_path / "figures")
    assert not (tmp_path / "figures" / "01_a.png").exists()


def test_command_line_writes_figures_and_reports_errors(tmp_path, monkeypatch, capsys):
    solutions = _course(tmp_path, ("01_a.ipynb", [figure_cell(image_output(PNG_A))]))
    monkeypatch.chdir(tmp_path)
    assert main(["--solutions", str(solutions), "--figures"]) == 0
    assert (tmp_path / "docs" / "figures" / "01_a.png").read_bytes() == PNG_A
    assert "wrote docs/figures/01_a.png" in capsys.readouterr().out
    assert main(["--solutions", str(solutions), "--figures"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    nbformat.write(new_notebook(cells=[figure_cell(tagged=False)]), solutions / "01_a.ipynb")
    assert main(["--solutions", str(solutions), "--figures"]) == 2
    assert "error: 01_a.ipynb: no cell is tagged `course-map`" in capsys.readouterr().err


# --- the course map's run-time column survives the figure column ----------------------------


def test_run_time_column_is_rewritten_in_rows_with_a_figure():
    readme = (f"x\n{MAP_BEGIN}\n| # | lab | figure | you learn | run time* |\n|---|---|---|---|---|\n"
              "| 01 | [A](solutions/01_demo.ipynb) | <img src=\"docs/figures/01_demo.png\" width=\"200\"> "
              "| odes | – |\n"
              f"{MAP_END}\ny")
    out = update_course_map(readme, {"01_demo.ipynb": 12.5})
    assert ("| 01 | [A](solutions/01_demo.ipynb) | <img src=\"docs/figures/01_demo.png\" width=\"200\"> | odes | 12 s |"
            in out)
    assert out.startswith("x\n") and out.endswith("y")


def test_real_course_map_keeps_its_figures_when_run_times_are_written():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    times = {p.name: 1000.0 + i for i, p in enumerate(SOLUTIONS)}
    out = update_course_map(text, times)
    rows = _map_rows(out)
    for i, path in enumerate(SOLUTIONS):
        cells = [c.strip() for c in rows[path.name].strip().strip("|").split("|")]
        assert cells[-1] == f"{1000 + i} s", f"the run time of {path.name} is not the course map's last column"
        assert any(f'src="docs/figures/{path.stem}.png"' in c for c in cells[:-1])
    assert out.replace(MAP_BEGIN, "").count("|") == text.replace(MAP_BEGIN, "").count("|")
    # the markers keep lines of their own (a marker glued to the last row breaks the table)
    assert f"\n{MAP_END}" in out and f"{MAP_BEGIN}\n" in out
    assert update_course_map(out, times) == out


# --- the real repository ---------------------------------------------------------------------


def _map_rows(text: str) -> dict[str, str]:
    """Course-map rows by the solution notebook they link."""
    body = text.split(MAP_BEGIN, 1)[1].split(MAP_END, 1)[0]
    rows = {}
    for line in body.splitlines():
        m = re.search(r"\(solutions/(\d\d_[\w-]+\.ipynb)\)", line)
        if m:
            rows[m.group(1)] = line
    return rows


def test_every_solution_has_an_up_to_date_figure():
    assert SOLUTIONS
    reasons = stale_figures(ROOT / "solutions", ROOT / "docs" / "figures")
    assert not reasons, "; ".join(reasons) + ". Run `make figures` (python -m labs_lib.authoring --figures)."


def test_readme_course_map_shows_every_figure():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = _map_rows(text)
    for path in SOLUTIONS:
        assert path.name in rows, f"README's course map has no row linking solutions/{path.name}"
        figure = f"docs/figures/{path.stem}.png"
        assert f'<img src="{figure}" width="200">' in rows[path.name], \
            f"README's course-map row of {path.name} does not show {figure}"


def test_course_map_names_lead_to_the_student_notebooks():
    # A student following the map lands in notebooks/ (exercises to fill in); the solution is the
    # second link of the row.
    rows = _map_rows((ROOT / "README.md").read_text(encoding="utf-8"))
    for path in SOLUTIONS:
        lab_cell = rows[path.name].split("|")[2]
        links = re.findall(r"\]\(([^)]+)\)", lab_cell)
        student = f"notebooks/{path.name}"
        assert links == [student, f"solutions/{path.name}"], \
            f"the course-map row of {path.name} should link {student}, then its solution: {links}"
        assert (ROOT / links[0]).exists()


def test_instructor_guide_run_times_are_what_make_bench_writes():
    guide = (ROOT / GUIDE).read_text(encoding="utf-8")
    assert guide.count(TIMES_BEGIN) == 1 and guide.count(TIMES_END) == 1
    times = solution_run_times(ROOT / "solutions")
    assert set(times) == {p.name for p in SOLUTIONS}, "a solution notebook has no stored execution timestamps"
    assert update_guide(guide, times) == guide, (
        "docs/INSTRUCTOR_GUIDE.md's run times differ from the solution notebooks' stored timestamps: run "
        "`python -m labs_lib.authoring --run-times` (make solutions does).")
    assert stale_run_times(ROOT / "solutions", ROOT / "README.md", ROOT / GUIDE) == []


def test_every_lab_ran_within_its_time_budget():
    # the stored run times of the committed solutions: 01–04 90 s, 05–06 3 min, 07 4 min
    assert over_budget(ROOT / "solutions") == []


def test_guide_block_is_rewritten_between_its_markers_only():
    guide = f"# Guide\n\nbefore\n{TIMES_BEGIN}\nold table\n{TIMES_END}\nafter\n"
    out = update_guide(guide, {"02_b.ipynb": 61.2, "01_a.ipynb": 4.6})
    assert out.startswith("# Guide\n\nbefore\n") and out.endswith(f"{TIMES_END}\nafter\n")
    assert "old table" not in out
    rows = out.split(TIMES_BEGIN)[1].split(TIMES_END)[0].strip().splitlines()
    assert rows[2:] == ["| 01 | [01_a](../solutions/01_a.ipynb) | 5 s |",
                        "| 02 | [02_b](../solutions/02_b.ipynb) | 61 s |",
                        "| | **all labs** | **66 s** (1.1 min) |"]
    assert update_guide(out, {"02_b.ipynb": 61.2, "01_a.ipynb": 4.6}) == out
    with pytest.raises(AuthoringError, match="no <!-- BEGIN RUN TIMES --> ... <!-- END RUN TIMES --> block"):
        update_guide("# Guide without markers\n", {"01_a.ipynb": 1.0})
