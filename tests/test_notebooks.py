"""The notebooks themselves: structure of the solutions, and the student versions run as a student would.

nbval (run by `make test` over solutions/) re-executes every solution notebook and compares its
stored text outputs. Here we check what nbval cannot: that every exercise is followed by a check
cell that passes in the solution, and that each generated student notebook, executed top to bottom
exactly as it is (less the Colab setup cell, tagged nbval-skip), fails only with the exercises'
NotImplementedError.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from labs_lib.authoring.execution import execute_notebook

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
STUDENT = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _code_cells(path: Path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_there_are_notebooks():
    assert SOLUTIONS, "no solution notebooks found"
    assert [p.name for p in SOLUTIONS] == [p.name for p in STUDENT]


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_every_exercise_is_followed_by_a_passing_check(path: Path):
    cells = _code_cells(path)
    exercises = [i for i, c in enumerate(cells) if "### BEGIN SOLUTION" in c.source]
    assert exercises, f"{path.name} has no exercises"
    for i in exercises:
        assert i + 1 < len(cells) and "check_" in cells[i + 1].source, (
            f"{path.name}: the exercise in code cell {i} is not followed by a check cell")
        text = "".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in cells[i + 1].outputs)
        assert "all checks passed" in text, f"{path.name}: the check after code cell {i} does not pass: {text!r}"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solutions_are_committed_executed_without_errors(path: Path):
    cells = [c for c in _code_cells(path) if c.source.strip()]
    assert all(c.execution_count is not None for c in cells), f"{path.name} has unexecuted cells"
    errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name} stores errors: {[e.ename for e in errors]}"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solutions_store_widget_state_as_jupyterlab_saves_it(path: Path):
    # A whole number written as 3000.0 comes back from JupyterLab's save as 3000: opening and saving
    # a solution would show as a change in git (re-execute with the tooling, which stores ints).
    from labs_lib.authoring.notebooks import WIDGET_STATE

    state = nbformat.read(path, as_version=4).metadata.get("widgets", {}).get(WIDGET_STATE, {})
    whole_floats = [f"{key}={value!r}" for model in state.get("state", {}).values()
                    for key, value in model.get("state", {}).items() if isinstance(value, float) and value.is_integer()]
    assert not whole_floats, f"{path.name} stores whole numbers as floats in its widget state: {whole_floats[:5]}"


@pytest.mark.parametrize("path", STUDENT, ids=lambda p: p.name)
def test_student_notebook_fails_only_with_not_implemented(path: Path):
    nb = nbformat.read(path, as_version=4)
    n_exercises = nb.metadata["labs_lib"]["exercises"]
    # Cells tagged nbval-skip (the Colab setup cell) are skipped here as nbval skips them in the
    # solutions: they only act on Colab, and the test must not depend on where it runs. A cell that
    # runs past labs_lib.authoring.execution.CELL_TIMEOUT_S fails the test, naming the notebook and the cell.
    run = execute_notebook(nb, f"notebooks/{path.name}", path.parent, allow_errors=True, skip_tag="nbval-skip")
    assert not run.stalls, f"{path.name}: the client received a kernel message late (a stall): {run.stalls}"
    errors = [(i, o) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    unexpected = [(i, o.ename, o.evalue) for i, o in errors if o.ename != "NotImplementedError"]
    assert not unexpected, f"{path.name}: cells failed with something else than NotImplementedError: {unexpected}"
    assert all("Exercise: " in o.evalue for _, o in errors), "a NotImplementedError that does not name its exercise"
    stubs = sum("raise NotImplementedError('Exercise: " in c.source for c in nb.cells)
    assert 1 <= stubs <= n_exercises, f"{path.name}: {stubs} exercise stubs for {n_exercises} exercises"
    assert errors, f"{path.name}: no cell reached an exercise stub, so the stubs are never exercised"
    # Every check cell answers "not implemented yet" instead of failing.
    checks = [c for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith("check_")]
    for c in checks:
        text = json.dumps([o.get("data", {}).get("text/plain", "") for o in c.outputs])
        assert "not implemented yet" in text, f"{path.name}: a check cell printed {text}"


@pytest.mark.parametrize("path", STUDENT, ids=lambda p: p.name)
def test_student_notebooks_are_committed_clean(path: Path):
    nb = nbformat.read(path, as_version=4)
    for c in nb.cells:
        assert "BEGIN SOLUTION" not in c.source
        if c.cell_type == "code":
            assert not c.outputs and c.execution_count is None
