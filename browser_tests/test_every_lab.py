"""Every lab as students and instructors see it, in JupyterLab's default settings.

* **A student's first steps**, for each lab's student notebook as shipped: Run All stops at the
  first cell that needs an unfinished exercise with one short message (no traceback); then the
  first exercise is solved by typing into its cell, and its check, run again, shows a pass.
* **A solution run**, for each lab's solution notebook without outputs: every cell runs without
  an error, every figure and animation frame has a size on the page, and every animation moves
  when its Play button is pressed.
* **A slideshow**, for each solution as committed, opened as a full-tab RISE slideshow and walked
  with the space bar through every fragment and slide: no slide runs past the window unless it
  scrolls, no shown image has no size, no error output.

``make test-browser`` (and CI) runs the labs named in :data:`QUICK` for each kind; ``make
test-browser-all`` runs every lab (the ``full`` mark). Screenshots of what failed (each slide
with a problem, the notebook where a run went wrong) and of each typed exercise's check go to
``artifacts/browser/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import pytest
from labserver import ROOT, LabServer
from views import (ERROR_OUTPUT, animations_that_do_not_play, copy_notebook, empty_images, error_texts, lab_files,
                   open_notebook, run_all, run_cell, student_version_of, type_into_cell, walk_slideshow)

if TYPE_CHECKING:
    from playwright.sync_api import Page

# What CI runs of each kind: Lab 01 (a student's first lab), Lab 03 (an animation, which once
# showed no frame in the default windowing mode) and Lab 04 (slides that once ran off the screen).
QUICK = {"student": ("01",), "solution": ("03",), "slideshow": ("04",)}
# A solution runs in 5-90 s here; a busy 2-core CI machine may be several times slower.
RUN_TIMEOUT_MS = 600_000
CELL_TIMEOUT_MS = 120_000


def _labs(kind: str) -> list:
    folder = "notebooks" if kind == "student" else "solutions"
    return [pytest.param(path, id=path.name[:2], marks=() if path.name[:2] in QUICK[kind] else pytest.mark.full)
            for path in lab_files(folder)]


def _shot(page: Page, artifacts: Path, name: str) -> Path:
    path = artifacts / f"{name}.png"
    page.screenshot(path=path)
    return path


def _run_all_on(page: Page, lab_server: LabServer, artifacts: Path, notebook: Path, kind: str):
    """Open a copy of ``notebook`` without outputs and Run All; the copy's content, its panel, the
    code cells' prompts when the run ended, and the text of every error output."""
    path, nb = copy_notebook(notebook, artifacts / "work" / kind, strip_outputs=True)
    panel = open_notebook(page, lab_server.url(f"lab/tree/{path}"), nb)
    prompts = run_all(page, RUN_TIMEOUT_MS)
    return nb, panel, prompts, error_texts(page)


def _first_exercise(nb) -> tuple[int, int]:
    """The index of the first exercise cell and of the check cell after it."""
    exercise = next(i for i, c in enumerate(nb.cells)
                    if c.cell_type == "code" and "raise NotImplementedError" in c.source)
    check = next(i for i in range(exercise + 1, len(nb.cells))
                 if nb.cells[i].cell_type == "code" and nb.cells[i].source.startswith("check_"))
    return exercise, check


@pytest.mark.parametrize("notebook", _labs("student"))
def test_student_notebook_first_steps(lab_server: LabServer, page: Page, console: list[str],
                                      artifacts: Path, notebook: Path) -> None:
    """Run All on the student notebook as shipped, then solve its first exercise by typing."""
    from playwright.sync_api import expect

    lab = notebook.name[:2]
    nb, panel, _, errors = _run_all_on(page, lab_server, artifacts, notebook, "student")
    where = f"student Lab {lab}, screenshot {_shot(page, artifacts, f'student-{lab}-run-all')}"
    assert len(errors) == 1, f"Run All should stop at one cell with one message; {where}; errors: {errors}"
    message = errors[0]
    assert "is not written yet" in message and "Traceback" not in message, f"{where}: {message[:1500]}"
    assert len(message.strip().splitlines()) <= 6, f"the stop message is long ({where}): {message[:1500]}"
    # JupyterLab leaves the view where the run had scrolled to; the message must be on screen,
    # a second or two later as a person would look (labs_lib brings the cell into view).
    page.wait_for_timeout(1500)
    box, height = page.locator(ERROR_OUTPUT).first.bounding_box(), page.viewport_size["height"]
    assert box is not None and 0 <= box["y"] and box["y"] + min(box["height"], 60) <= height, (
        f"after Run All the stop message is off screen ({where}): {box}, window height {height}")

    exercise, check = _first_exercise(nb)
    solution = nbformat.read(ROOT / "solutions" / notebook.name, as_version=4).cells[exercise].source
    type_into_cell(page, panel, exercise, student_version_of(solution))
    run_cell(page, panel, exercise, CELL_TIMEOUT_MS)
    run_cell(page, panel, check, CELL_TIMEOUT_MS)
    verdict = panel.locator(".jp-Cell").nth(check).locator(".labs-check")
    expect(verdict).to_be_visible()
    _shot(page, artifacts, f"student-{lab}-solved")
    assert "labs-check-passed" in (verdict.get_attribute("class") or ""), (
        f"student Lab {lab}: the typed solution's check did not pass: {verdict.inner_text()[:1500]}; "
        f"console: {console[-5:]}")


@pytest.mark.parametrize("notebook", _labs("solution"))
def test_solution_runs_and_shows_every_picture(lab_server: LabServer, page: Page, console: list[str],
                                               artifacts: Path, notebook: Path) -> None:
    """Run All on the solution without outputs: no error, and every image and frame has a size."""
    lab = notebook.name[:2]
    _, panel, prompts, errors = _run_all_on(page, lab_server, artifacts, notebook, "solution")
    assert not errors, f"solution Lab {lab}: {len(errors)} error output(s): {errors[0][-1500:]}"
    assert all(p != "[ ]:" for p in prompts), f"solution Lab {lab}: cells that never ran: {prompts}"
    empty = empty_images(page, panel)
    assert not empty, (f"solution Lab {lab}: pictures a reader would not see: {empty}; "
                       f"screenshot {_shot(page, artifacts, f'solution-{lab}-empty-image')}")
    stuck = animations_that_do_not_play(page, panel)
    assert not stuck, (f"solution Lab {lab}: {stuck}; console: {console[-5:]}; "
                       f"screenshot {_shot(page, artifacts, f'solution-{lab}-stuck-animation')}")


@pytest.mark.parametrize("notebook", _labs("slideshow"))
def test_slideshow_fits_the_window(lab_server: LabServer, page: Page, console: list[str],
                                   artifacts: Path, notebook: Path) -> None:
    """Walk the full-tab RISE slideshow of the committed solution: every step fits or scrolls."""
    from playwright.sync_api import expect

    lab = notebook.name[:2]
    path, _ = copy_notebook(notebook, artifacts / "work" / "slideshow", strip_outputs=False)
    page.goto(lab_server.url(f"rise/{path}"))
    expect(page.locator(".reveal.ready")).to_be_attached()
    views = walk_slideshow(page, on_problem=lambda v: _shot(page, artifacts,
                                                            f"slideshow-{lab}-{v.slide}-{v.fragments}"))
    assert len(views) > 5, f"Lab {lab}: the walk saw only {len(views)} steps: {views}"
    bad = [f"{v.slide} (+{v.fragments} fragments): {'; '.join(v.problems)}" for v in views if v.problems]
    assert not bad, f"Lab {lab}, {len(bad)} of {len(views)} steps:\n" + "\n".join(bad)
