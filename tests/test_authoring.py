"""The student-notebook generator on small notebooks built in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from course_files import finish_course
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

from labs_lib.authoring.cli import main
from labs_lib.authoring.front_matter import badge_source, front_matter_problems, refresh_front_matter
from labs_lib.authoring.generator import (ANSWER_PROMPT, AuthoringError, cells_hash, generate, make_student_notebook,
                                          plan, stale)
from labs_lib.authoring.run_times import DEFAULT_BUDGET, budget, over_budget

EULER_SOLUTION = """\
import math


class MyEuler(EulerSimulator):
    def step(self, x, t, h):
        ### BEGIN SOLUTION
        u = self.ode.drift(x, t)
        return x + h * u
        ### END SOLUTION"""

EULER_STUDENT = """\
import math


class MyEuler(EulerSimulator):
    def step(self, x, t, h):
        # YOUR CODE HERE
        raise NotImplementedError('Exercise: MyEuler.step')
"""


def notebook(*cells, **metadata) -> nbformat.NotebookNode:
    nb = new_notebook(cells=list(cells))
    nb.metadata.update(metadata)
    return nb


def student(nb, name="01_topic.ipynb") -> nbformat.NotebookNode:
    return make_student_notebook(nb, name)


def write(path: Path, nb) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


# --- code regions -------------------------------------------------------------------------------


def test_code_region_becomes_an_indented_stub_named_after_its_method():
    out = student(notebook(new_code_cell(EULER_SOLUTION)))
    # The END marker was the cell's last line (no newline): the stub keeps its newline only
    # where the source had one, so compare up to that.
    assert out.cells[0].source == EULER_STUDENT.rstrip("\n")


@pytest.mark.parametrize("indent", ["", "    ", "        ", "\t"])
def test_stub_takes_the_markers_indentation(indent):
    src = f"{indent}### BEGIN SOLUTION: Thing\n{indent}x = 1\n{indent}### END SOLUTION\nprint('after')\n"
    out = student(notebook(new_code_cell(src))).cells[0].source
    assert out == (f"{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError('Exercise: Thing')\n"
                   "print('after')\n")


@pytest.mark.parametrize("marker, expected", [
    ("### BEGIN SOLUTION: Euler step", "Euler step"),
    ("### BEGIN SOLUTION:   Heun step  ", "Heun step"),
    ("###BEGIN SOLUTION: compact", "compact"),
    ("### BEGIN SOLUTION", "outer.inner"),
])
def test_exercise_names(marker, expected):
    src = (f"def outer():\n    def inner():\n        {marker}\n        return 1\n        ### END SOLUTION\n"
           "    return inner\n")
    out = student(notebook(new_code_cell(src))).cells[0].source
    assert f"raise NotImplementedError('Exercise: {expected}')" in out


def test_enclosing_name_skips_siblings_and_finds_classes():
    src = (
        "class Other:\n    def step(self):\n        pass\n\n"
        "def helper():\n    return 2\n\n"
        "class MyHeun(HeunSimulator):\n"
        "    def _guess(self, x):\n        return x\n\n"
        "    async def step(self, x, t, h):\n"
        "        ### BEGIN SOLUTION\n        return x\n        ### END SOLUTION\n"
    )
    out = student(notebook(new_code_cell(src))).cells[0].source
    assert "'Exercise: MyHeun.step'" in out
    assert "def _guess(self, x):\n        return x" in out  # code outside the region is kept


def test_top_level_region_without_name():
    out = student(notebook(new_code_cell("### BEGIN SOLUTION\ny = 2\n### END SOLUTION\n"))).cells[0].source
    assert out == "# YOUR CODE HERE\nraise NotImplementedError('Exercise: solution')\n"


def test_several_regions_in_one_cell_and_in_several_cells():
    src = ("def a():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n\n"
           "def b():\n    ### BEGIN SOLUTION\n    return 2\n    ### END SOLUTION\n")
    nb = notebook(new_code_cell(src), new_code_cell(src.replace("def a", "def c")), new_code_cell("print(1)"))
    out = student(nb)
    assert out.cells[0].source.count("# YOUR CODE HERE") == 2
    assert "'Exercise: a'" in out.cells[0].source and "'Exercise: b'" in out.cells[0].source
    assert "'Exercise: c'" in out.cells[1].source
    assert out.cells[2].source == "print(1)"
    assert out.metadata["labs_lib"]["exercises"] == 4


def test_trailing_newline_is_preserved_either_way():
    with_nl = "### BEGIN SOLUTION: x\n1\n### END SOLUTION\n"
    without = "### BEGIN SOLUTION: x\n1\n### END SOLUTION"
    out = student(notebook(new_code_cell(with_nl), new_code_cell(without)))
    assert out.cells[0].source.endswith("')\n")
    assert out.cells[1].source.endswith("')")


# --- markdown regions ---------------------------------------------------------------------------


def test_markdown_region_becomes_your_answer_prompt():
    src = ("**Question.** Why does Euler overshoot?\n\n<!-- BEGIN SOLUTION -->\n"
           "Because the slope changes within the step.\n<!-- END SOLUTION -->\n\nMore text.")
    out = student(notebook(new_markdown_cell(src))).cells[0].source
    assert out == f"**Question.** Why does Euler overshoot?\n\n{ANSWER_PROMPT}\n\nMore text."
    assert "Because" not in out
    assert ANSWER_PROMPT.startswith("**Your answer:**")


def test_code_markers_in_markdown_and_markdown_markers_in_code_are_left_alone():
    md = "Write `### BEGIN SOLUTION` in your own notebooks.\n### BEGIN SOLUTION\n"
    code = "s = '''\n<!-- BEGIN SOLUTION -->\n'''\n"
    out = student(notebook(new_markdown_cell(md), new_code_cell(code)))
    assert out.cells[0].source == md and out.cells[1].source == code


# --- clearing outputs and metadata ----------------------------------------------------------------


def test_outputs_counts_widgets_and_timings_are_cleared():
    cell = new_code_cell("print(1)", execution_count=7,
                         outputs=[nbformat.v4.new_output("stream", name="stdout", text="1\n")])
    cell.metadata.update({"execution": {"iopub.execute_input": "2024-01-01T00:00:00Z"},
                          "ExecuteTime": {"end_time": "x"}, "collapsed": True, "scrolled": True,
                          "tags": ["keep-me"]})
    md = new_markdown_cell("text")
    md.metadata["ExecuteTime"] = {"start_time": "x"}
    raw = new_raw_cell("raw")
    nb = notebook(cell, md, raw, widgets={"application/vnd.jupyter.widget-state+json": {"state": {}}},
                  kernelspec={"name": "python3", "display_name": "Python 3", "language": "python"})
    original = nbformat.writes(nb)
    out = student(nb, "03_thing.ipynb")
    c = out.cells[0]
    assert c.outputs == [] and c.execution_count is None
    assert dict(c.metadata) == {"tags": ["keep-me"]}
    assert "ExecuteTime" not in out.cells[1].metadata
    assert out.cells[2].source == "raw"
    assert "widgets" not in out.metadata and out.metadata["kernelspec"]["name"] == "python3"
    meta = out.metadata["labs_lib"]
    assert meta["generated_from"] == "solutions/03_thing.ipynb" and meta["exercises"] == 0
    assert meta["cells_sha256"] == cells_hash(out)
    assert nbformat.writes(nb) == original  # the solution notebook itself is untouched
    nbformat.validate(out)


# --- malformed markers ----------------------------------------------------------------------------


@pytest.mark.parametrize("cell, pattern", [
    (new_code_cell("x = 1\n### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n"),
     r"01_topic\.ipynb, cell 1: nested BEGIN SOLUTION at line 3 \(the region opened at line 2 is not closed\)"),
    (new_code_cell("x = 1\n### END SOLUTION\n"),
     r"01_topic\.ipynb, cell 1: END SOLUTION at line 2 has no BEGIN SOLUTION"),
    (new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n"),
     r"01_topic\.ipynb, cell 1: BEGIN SOLUTION at line 2 has no END SOLUTION"),
    (new_markdown_cell("a\n<!-- BEGIN SOLUTION -->\nb\n<!-- BEGIN SOLUTION -->\n<!-- END SOLUTION -->"),
     r"cell 1: nested BEGIN SOLUTION at line 4 \(the region opened at line 2"),
    (new_markdown_cell("<!-- END SOLUTION -->"), r"cell 1: END SOLUTION at line 1 has no BEGIN SOLUTION"),
    (new_markdown_cell("a\n\n<!-- BEGIN SOLUTION -->\nb"), r"cell 1: BEGIN SOLUTION at line 3 has no END SOLUTION"),
])
def test_unmatched_or_nested_markers_name_cell_and_line(cell, pattern):
    nb = notebook(new_code_cell("print('fine')"), cell)
    with pytest.raises(AuthoringError, match=pattern):
        student(nb)


# --- the generated stub runs and raises ---------------------------------------------------------------


def test_generated_stub_raises_not_implemented_when_executed():
    import torch

    from labs_lib import EulerSimulator, LinearODE

    code = student(notebook(new_code_cell(EULER_SOLUTION))).cells[0].source
    namespace = {"EulerSimulator": EulerSimulator}
    exec(compile(code, "<student cell>", "exec"), namespace)  # defining the class works
    sim = namespace["MyEuler"](LinearODE.decay(1.0))
    with pytest.raises(NotImplementedError, match="^Exercise: MyEuler.step$"):
        sim.step(torch.ones(2, 1), torch.tensor(0.0), 0.1)
    # the solution itself runs
    sol_ns = {"EulerSimulator": EulerSimulator}
    exec(compile(EULER_SOLUTION, "<solution cell>", "exec"), sol_ns)
    out = sol_ns["MyEuler"](LinearODE.decay(1.0)).step(torch.ones(2, 1), torch.tensor(0.0), 0.1)
    assert torch.allclose(out, torch.full((2, 1), 0.9))


def test_top_level_stub_raises_at_once():
    code = student(notebook(new_code_cell("### BEGIN SOLUTION: Load data\nx = 1\n### END SOLUTION"))).cells[0].source
    with pytest.raises(NotImplementedError, match="Exercise: Load data"):
        exec(compile(code, "<cell>", "exec"), {})


# --- files: generate, --check, hand edits ---------------------------------------------------------------


# Every solution opens with the two Colab front-matter cells (--check requires them): the
# notebooks of the `course` fixture have them too, so their own cells start at this index.
FM = 2
TITLE = 0  # a title cell stays first: the front matter follows it (cells 1 and 2)


def with_front_matter(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    refresh_front_matter(nb, name, solution=True)
    return nb


@pytest.fixture
def course(tmp_path):
    sol, nbs = tmp_path / "solutions", tmp_path / "notebooks"
    write(sol / "01_simulating.ipynb", with_front_matter(
        notebook(new_markdown_cell("# Title"), new_code_cell(EULER_SOLUTION)), "01_simulating.ipynb"))
    write(sol / "02_more-stuff.ipynb", with_front_matter(
        notebook(new_code_cell("### BEGIN SOLUTION: B\nb = 2\n### END SOLUTION\n")), "02_more-stuff.ipynb"))
    finish_course(sol, tmp_path / "figures")
    return sol, nbs


def check(sol, nbs) -> int:
    return main(["--check", "--solutions", str(sol), "--notebooks", str(nbs),
                 "--figures-dir", str(sol.parent / "figures")])


def test_check_reports_missing_then_fresh(course, capsys):
    sol, nbs = course
    assert check(sol, nbs) == 1
    out = capsys.readouterr().out
    assert "stale: " in out and "01_simulating.ipynb is missing" in out and "Run `python -m labs_lib.authoring`" in out
    assert not nbs.exists()  # --check writes nothing
    assert main(["--solutions", str(sol), "--notebooks", str(nbs)]) == 0
    assert "wrote " in capsys.readouterr().out
    assert sorted(p.name for p in nbs.iterdir()) == ["01_simulating.ipynb", "02_more-stuff.ipynb"]
    assert check(sol, nbs) == 0
    assert "up to date" in capsys.readouterr().out
    # nothing to do the second time
    assert generate(sol, nbs) == []
    assert main(["--solutions", str(sol), "--notebooks", str(nbs)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    nb = nbformat.read(nbs / "01_simulating.ipynb", as_version=4)
    assert nb.cells[FM + 1].source == EULER_STUDENT.rstrip("\n")


def test_check_reports_stale_and_orphaned(course, capsys):
    sol, nbs = course
    generate(sol, nbs)
    nb = nbformat.read(sol / "01_simulating.ipynb", as_version=4)
    nb.cells[TITLE].source = "# A new title"
    nbformat.write(nb, sol / "01_simulating.ipynb")
    assert check(sol, nbs) == 1
    assert "01_simulating.ipynb is out of date with its solution" in capsys.readouterr().out
    generate(sol, nbs)
    assert check(sol, nbs) == 0
    capsys.readouterr()
    write(nbs / "09_orphan.ipynb", notebook())
    assert check(sol, nbs) == 1
    assert "09_orphan.ipynb has no source in the solutions folder" in capsys.readouterr().out
    p = plan(sol, nbs)
    assert p.orphans == [nbs / "09_orphan.ipynb"]
    assert len(stale(p)) == 1


def test_hand_edited_student_notebook_is_not_overwritten_without_force(course, capsys):
    sol, nbs = course
    generate(sol, nbs)
    target = nbs / "01_simulating.ipynb"
    nb = nbformat.read(target, as_version=4)
    nb.cells[FM + 1].source = nb.cells[FM + 1].source.replace("raise NotImplementedError('Exercise: MyEuler.step')",
                                                    "return x + h * self.ode.drift(x, t)  # my answer")
    nbformat.write(nb, target)
    edited = target.read_text(encoding="utf-8")
    # the solution changes too, so the student notebook is out of date and would be rewritten
    sol_nb = nbformat.read(sol / "01_simulating.ipynb", as_version=4)
    sol_nb.cells[TITLE].source = "# Changed"
    nbformat.write(sol_nb, sol / "01_simulating.ipynb")
    with pytest.raises(AuthoringError, match=r"01_simulating\.ipynb changed by hand since it was generated.*--force"):
        generate(sol, nbs)
    assert target.read_text(encoding="utf-8") == edited
    assert main(["--solutions", str(sol), "--notebooks", str(nbs)]) == 2
    assert "error: " in capsys.readouterr().err
    assert target.read_text(encoding="utf-8") == edited
    written = generate(sol, nbs, force=True)
    assert target in written
    assert "# my answer" not in target.read_text(encoding="utf-8")
    assert check(sol, nbs) == 0


def test_untouched_student_notebook_is_regenerated_without_force(course):
    sol, nbs = course
    generate(sol, nbs)
    target = nbs / "02_more-stuff.ipynb"
    sol_nb = nbformat.read(sol / "02_more-stuff.ipynb", as_version=4)
    sol_nb.cells.append(new_markdown_cell("An extra paragraph.", metadata={"slideshow": {"slide_type": "-"}}))
    nbformat.write(sol_nb, sol / "02_more-stuff.ipynb")
    assert generate(sol, nbs) == [target]
    assert nbformat.read(target, as_version=4).cells[-1].source == "An extra paragraph."
    assert check(sol, nbs) == 0


def test_force_via_command_line(course):
    sol, nbs = course
    generate(sol, nbs)
    target = nbs / "02_more-stuff.ipynb"
    nb = nbformat.read(target, as_version=4)
    nb.cells[FM].source = "b = 'typed by a student'"
    nbformat.write(nb, target)
    assert check(sol, nbs) == 1
    assert main(["--solutions", str(sol), "--notebooks", str(nbs)]) == 2
    assert main(["--solutions", str(sol), "--notebooks", str(nbs), "--force"]) == 0
    assert check(sol, nbs) == 0


@pytest.mark.parametrize("name", ["notebook.ipynb", "1_topic.ipynb", "001_topic.ipynb", "01topic.ipynb",
                                  "01_top ic.ipynb"])
def test_bad_file_names_are_errors(tmp_path, name, capsys):
    sol = tmp_path / "solutions"
    write(sol / name, notebook())
    with pytest.raises(AuthoringError, match=r"notebooks are named NN_topic\.ipynb \(two digits, an underscore\)"):
        plan(sol, tmp_path / "notebooks")
    assert main(["--check", "--solutions", str(sol), "--notebooks", str(tmp_path / "notebooks")]) == 2
    assert "NN_topic.ipynb" in capsys.readouterr().err


def test_missing_folder_and_unreadable_notebook(tmp_path):
    with pytest.raises(AuthoringError, match="no notebook folder at"):
        plan(tmp_path / "nope", tmp_path / "notebooks")
    sol = tmp_path / "solutions"
    sol.mkdir()
    (sol / "01_broken.ipynb").write_text("{ not json", encoding="utf-8")
    with pytest.raises(AuthoringError, match=r"01_broken\.ipynb is not a readable notebook"):
        plan(sol, tmp_path / "notebooks")


def test_errors_in_a_solution_notebook_stop_generation_and_name_the_file(tmp_path):
    sol, nbs = tmp_path / "solutions", tmp_path / "notebooks"
    write(sol / "01_bad.ipynb", notebook(new_code_cell("### BEGIN SOLUTION\n")))
    with pytest.raises(AuthoringError, match=r"01_bad\.ipynb, cell 0: BEGIN SOLUTION at line 1 has no END SOLUTION"):
        generate(sol, nbs)
    assert not nbs.exists()


# --- front matter and slide types pass through the generator ----------------------------------------------


def test_front_matter_tags_and_slide_types_are_carried_to_the_student_notebook():
    title = new_markdown_cell("# Title")
    title.metadata["slideshow"] = {"slide_type": "slide"}
    exercise = new_code_cell(EULER_SOLUTION, execution_count=3)
    exercise.metadata.update({"slideshow": {"slide_type": "-"}, "tags": ["course-map"]})
    nb = with_front_matter(notebook(title, exercise), "04_paths.ipynb")
    nb.cells[2].execution_count = 1  # an executed setup cell (after the title and the badge)
    out = student(nb, "04_paths.ipynb")
    assert front_matter_problems(out, "04_paths.ipynb") == []
    # the title is carried; the badge loses the solution's "This is the solution notebook" line
    assert out.cells[TITLE].source == nb.cells[TITLE].source
    assert nb.cells[1].source.startswith("**This is the solution notebook:**")
    assert out.cells[1].source == badge_source("04_paths.ipynb") and "solution" not in out.cells[1].source
    assert [c.metadata for c in out.cells] == [c.metadata for c in nb.cells]
    assert out.cells[2].execution_count is None and out.cells[FM + 1].execution_count is None


def test_check_fails_when_a_solution_loses_its_front_matter(course, capsys):
    sol, nbs = course
    generate(sol, nbs)
    nb = nbformat.read(sol / "02_more-stuff.ipynb", as_version=4)
    del nb.cells[1]  # the setup cell
    nbformat.write(nb, sol / "02_more-stuff.ipynb")
    generate(sol, nbs)  # the student notebook follows: only the front-matter check can notice
    assert check(sol, nbs) == 1
    out = capsys.readouterr().out
    assert "stale: " not in out
    assert f"front matter: {sol / '02_more-stuff.ipynb'}: the Colab setup cell (tag `colab-setup`) is missing" in out
    assert "01_simulating" not in out
    assert main(["--front-matter", "--solutions", str(sol), "--notebooks", str(nbs)]) == 0
    assert check(sol, nbs) == 0


def test_check_fails_on_a_missing_slide_type_or_a_stale_figure(course, capsys):
    sol, nbs = course
    generate(sol, nbs)
    assert check(sol, nbs) == 0
    capsys.readouterr()
    nb = nbformat.read(sol / "01_simulating.ipynb", as_version=4)
    del nb.cells[FM].metadata["slideshow"]
    nbformat.write(nb, sol / "01_simulating.ipynb")
    generate(sol, nbs)  # the student notebook follows; only the slide type is missing
    assert check(sol, nbs) == 1
    out = capsys.readouterr().out
    assert f"slides: {sol / '01_simulating.ipynb'}: cell {FM} has no slide type" in out and "--slides" in out
    assert main(["--slides", "--solutions", str(sol), "--notebooks", str(nbs)]) == 0
    assert check(sol, nbs) == 0
    capsys.readouterr()
    (sol.parent / "figures" / "02_more-stuff.png").unlink()
    assert check(sol, nbs) == 1
    out = capsys.readouterr().out
    assert "figures: " in out and "02_more-stuff.png is missing" in out and "--figures" in out


def test_check_fails_on_stale_run_times_and_run_times_writes_them(course, capsys):
    sol, nbs = course
    generate(sol, nbs)
    root = sol.parent
    (root / "README.md").write_text("# Course\n", encoding="utf-8")
    (root / "docs").mkdir(exist_ok=True)
    guide = root / "docs" / "INSTRUCTOR_GUIDE.md"
    guide.write_text("# Guide\n<!-- BEGIN RUN TIMES -->\nan old table\n<!-- END RUN TIMES -->\n", encoding="utf-8")
    assert check(sol, nbs) == 1
    out = capsys.readouterr().out
    assert f"run times: {guide}'s run times differ" in out and "--run-times" in out
    assert main(["--run-times", "--solutions", str(sol)]) == 0
    assert "an old table" not in guide.read_text(encoding="utf-8")
    assert check(sol, nbs) == 0


def test_check_fails_when_a_stored_run_time_is_over_the_labs_budget(course, capsys):
    sol, nbs = course
    generate(sol, nbs)
    assert budget("01_simulating.ipynb") == 90 and budget("07_x.ipynb") == 240
    assert budget("12_a_lab_not_listed.ipynb") == DEFAULT_BUDGET
    path = sol / "02_more-stuff.ipynb"
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    code[0].metadata["execution"] = {"iopub.execute_input": "2026-01-01T10:00:00.000000Z",
                                     "shell.execute_reply": "2026-01-01T10:01:30.000000Z"}  # 90 s: the budget
    nbformat.write(nb, path)
    assert over_budget(sol) == []
    code[-1].metadata["execution"] = {"iopub.execute_input": "2026-01-01T10:01:30.000000Z",
                                      "shell.execute_reply": "2026-01-01T10:01:31.500000Z"}  # 91.5 s in all
    nbformat.write(nb, path)
    assert over_budget(sol) == ["02_more-stuff.ipynb ran in 92 s, over its budget of 90 s"]
    assert check(sol, nbs) == 1
    out = capsys.readouterr().out
    assert "over budget: 02_more-stuff.ipynb ran in 92 s" in out and "make solutions" in out


# --- executed notebooks are stored as JupyterLab saves them ----------------------------------------


def test_widget_state_whole_numbers_become_ints():
    from labs_lib.authoring.notebooks import WIDGET_STATE, store_widget_state_as_jupyterlab_does

    nb = new_notebook()
    nb.metadata["widgets"] = {WIDGET_STATE: {"version_major": 2, "version_minor": 0, "state": {
        "a": {"state": {"max": 3000.0, "value": 0.0, "step": 0.5, "bar_style": "", "visible": True,
                        "ticks": [1.0, 2.5, {"deep": 4.0}]}}}}}
    assert store_widget_state_as_jupyterlab_does(nb) == 4  # 3000.0, 0.0, 1.0 and 4.0
    state = nb.metadata["widgets"][WIDGET_STATE]["state"]["a"]["state"]
    assert state == {"max": 3000, "value": 0, "step": 0.5, "bar_style": "", "visible": True,
                     "ticks": [1, 2.5, {"deep": 4}]}
    assert type(state["max"]) is int and state["visible"] is True  # a bool stays a bool
    assert store_widget_state_as_jupyterlab_does(nb) == 0  # already as JupyterLab writes it
    assert store_widget_state_as_jupyterlab_does(new_notebook()) == 0  # no widgets, nothing to do
