"""What a person sees in JupyterLab and in a RISE slideshow, read off the page.

The helpers act as a user does (menus, keys, typing into a cell) and measure what a user would
notice: a cell that failed, an image or animation frame with no size, a slide whose content runs
past the window. They assume JupyterLab's default settings (windowing mode "contentVisibility":
every cell is in the page, cells off screen are simply not painted).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
from labserver import ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
# JupyterLab renders an error output (a traceback) under this MIME type.
ERROR_OUTPUT = f"{PANEL} .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
SOLUTION_MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$")


def lab_files(folder: str) -> list[Path]:
    """The course's notebooks in ``solutions/`` or ``notebooks/``, in course order."""
    return sorted((ROOT / folder).glob("[0-9][0-9]_*.ipynb"))


def copy_notebook(source: Path, target_dir: Path, strip_outputs: bool) -> tuple[str, nbformat.NotebookNode]:
    """Copy ``source`` into ``target_dir`` (so that JupyterLab's autosave never writes into the
    course); with ``strip_outputs``, without outputs or widget state, so that everything on screen
    comes from the kernel the test started. Returns the copy's path relative to the server's root
    and its content."""
    nb = nbformat.read(source, as_version=4)
    if strip_outputs:
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None
        nb.metadata.pop("widgets", None)  # stored widget state would draw a slider by itself
    target = target_dir / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return target.relative_to(ROOT).as_posix(), nb


def title_of(nb: nbformat.NotebookNode) -> str:
    """The text of the notebook's first level-1 heading."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+?)\s*$", cell.source, flags=re.MULTILINE)
            if match:
                return match.group(1)
    raise AssertionError("the notebook has no level-1 heading")


# --- JupyterLab ------------------------------------------------------------------------------


def menu(page: Page, name: str, item: str) -> None:
    """Choose ``item`` from the menu bar's ``name`` by their labels, as a user does.

    Waits until the item is enabled: JupyterLab greys out commands (Run All among them) until
    the notebook and its kernel are ready, and a click on a greyed-out item does nothing.
    """
    page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^{name}$")).click()
    page.locator(f".lm-Menu-item:not(.lm-mod-disabled):has(> .lm-Menu-itemLabel:text-is('{item}'))").click()


def open_notebook(page: Page, url: str, nb: nbformat.NotebookNode) -> Locator:
    """Open a notebook and wait until its title shows and its kernel is idle; returns its panel."""
    from playwright.sync_api import expect

    page.goto(url)
    panel = page.locator(PANEL)
    expect(panel.locator(".jp-MarkdownOutput h1", has_text=title_of(nb)).first).to_be_visible()
    expect(panel.locator(".jp-Cell")).to_have_count(len(nb.cells))
    # The kernel must be up before "Run All": JupyterLab greys the command out until then.
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first).to_be_attached()
    return panel


_PROMPTS = f"[...document.querySelectorAll('{PANEL} .jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim())"
_ANY_CELL_STARTED = f"() => {_PROMPTS}.some(p => /^\\[(\\*|\\d+)\\]:$/.test(p))"
# Run All has ended when no cell is running or queued ("[*]:") and at least one has run.
_RUN_ENDED = f"""() => {{
    const prompts = {_PROMPTS};
    return prompts.some(p => /^\\[\\d+\\]:$/.test(p)) && !prompts.some(p => p === '[*]:')
        && document.querySelector(".jp-Notebook-ExecutionIndicator[data-status='idle']") !== null;
}}"""


def run_all(page: Page, timeout_ms: float, attempts: int = 3) -> list[str]:
    """Run All Cells from the Run menu and wait until the run has ended (every cell done, or the
    run stopped at a failing cell). Returns the code cells' prompts, e.g. ``["[1]:", "[ ]:"]``.

    Seen once in CI: a first "Run All" right after the kernel came up did nothing at all (every
    prompt stayed "[ ]:"), so the click is repeated when no cell has started within 30 s. A
    repeat cannot hide a failure: the callers still require what every cell showed.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(attempts):
        menu(page, "Run", "Run All Cells")
        try:
            page.wait_for_function(_ANY_CELL_STARTED, timeout=30_000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")  # close a menu left open, then try again
    else:
        raise AssertionError(f"Run All Cells started no cell in {attempts} attempts of 30 s")
    page.wait_for_function(_RUN_ENDED, timeout=timeout_ms, polling=250)  # not every frame: the kernel needs the CPU
    page.wait_for_timeout(500)  # the last outputs arrive just after the prompt changes
    return page.evaluate(f"() => {_PROMPTS}")


def error_texts(page: Page) -> list[str]:
    """The text of every error output (traceback) in the open notebook."""
    # textContent, not innerText: a cell off screen is not rendered (content-visibility), and its
    # innerText is empty until it is scrolled to.
    return page.locator(ERROR_OUTPUT).all_text_contents()


_IMAGE_SIZES = f"""() => [...document.querySelectorAll('{PANEL} .jp-OutputArea-output img')].map(img => {{
    const box = img.getBoundingClientRect();
    const cell = img.closest('.jp-Cell');
    const index = [...cell.parentElement.children].filter(c => c.classList.contains('jp-Cell')).indexOf(cell);
    return [index, Math.round(box.width), Math.round(box.height), img.complete && img.naturalWidth > 0];
}})"""


def empty_images(page: Page, panel: Locator) -> list[str]:
    """Output images (figures, animation frames) that a person would not see: no size on the
    page, or nothing loaded. Each cell with images is scrolled into view first, as a reader
    scrolling down the notebook does, so that the browser lays it out and paints it."""
    cells = panel.locator(".jp-Cell:has(.jp-OutputArea-output img)")
    for i in range(cells.count()):
        cells.nth(i).scroll_into_view_if_needed()
        page.wait_for_timeout(150)
    return [f"cell {index}: an image of {width}×{height} px{'' if loaded else ', not loaded'}"
            for index, width, height, loaded in page.evaluate(_IMAGE_SIZES)
            if width == 0 or height == 0 or not loaded]


def animations_that_do_not_play(page: Page, scope: Locator) -> list[str]:
    """matplotlib's JavaScript animations in ``scope`` whose frame does not change when Play is pressed.

    A player whose script failed still shows its first frame (it is written into the ``<img>``), so
    only pressing Play, as a reader does, shows that it is stuck. Returns one line per stuck player.
    """
    players = scope.locator("div.animation:has(img[id^='_anim_img'])")
    stuck = []
    for i in range(players.count()):
        player = players.nth(i)
        player.scroll_into_view_if_needed()
        frame = player.locator("img[id^='_anim_img']")
        before = frame.evaluate("img => img.src")
        player.locator("button[title='Play']").click()
        page.wait_for_timeout(2000)  # several frames at the labs' 80-150 ms per frame
        player.locator("button[title='Pause']").click()
        if frame.evaluate("img => img.src") == before:
            stuck.append(f"animation {i + 1} of {players.count()}: still on its first frame 2 s after Play")
    return stuck


def student_version_of(solution_source: str) -> str:
    """The exercise cell as a student who solved it has it: the solution without its markers."""
    return "\n".join(line for line in solution_source.splitlines() if not SOLUTION_MARKER.match(line))


def type_into_cell(page: Page, panel: Locator, index: int, text: str) -> None:
    """Replace cell ``index``'s code with ``text``, typed in through the editor as a user types
    (Playwright's insert_text: the characters arrive as typed text, without the auto-indent a
    press of Enter would add, so the result is exactly ``text``)."""
    editor = panel.locator(".jp-Cell").nth(index).locator(".cm-content")
    editor.scroll_into_view_if_needed()
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def run_cell(page: Page, panel: Locator, index: int, timeout_ms: float) -> None:
    """Run cell ``index`` with Ctrl+Enter, as a user does, and wait until it has finished."""
    cell = panel.locator(".jp-Cell").nth(index)
    cell.locator(".cm-content").click()
    before = cell.locator(".jp-InputPrompt").inner_text().strip()
    page.keyboard.press("Control+Enter")
    page.wait_for_function(
        f"""([index, before]) => {{
            const cells = document.querySelectorAll('{PANEL} .jp-Cell');
            const prompt = cells[index].querySelector('.jp-InputPrompt').textContent.trim();
            return prompt !== before && /^\\[\\d+\\]:$/.test(prompt);
        }}""", arg=[index, before], timeout=timeout_ms, polling=250)
    page.wait_for_timeout(300)


# --- RISE --------------------------------------------------------------------------------------


@dataclass
class SlideView:
    """What one step of a slideshow shows: the slide, its fragments shown, and what is wrong."""

    slide: str
    fragments: int
    top: int
    bottom: int
    scrolls: bool
    problems: list[str] = field(default_factory=list)


# The innermost present <section> is the slide on screen (reveal.js nests vertical slides).
_SLIDE_VIEW = """() => {
    const present = document.querySelectorAll('.reveal .slides section.present');
    const slide = present[present.length - 1];
    if (!slide) return null;
    const box = slide.getBoundingClientRect();
    const style = getComputedStyle(slide);
    const images = [...slide.querySelectorAll('.jp-OutputArea-output img')].filter(img => {
        const fragment = img.closest('.fragment');
        return !fragment || fragment.classList.contains('visible');
    }).map(img => [Math.round(img.getBoundingClientRect().width), Math.round(img.getBoundingClientRect().height)]);
    return {
        slide: slide.id, fragments: slide.querySelectorAll('.fragment.visible').length,
        top: Math.round(box.top), bottom: Math.round(box.bottom), height: window.innerHeight,
        overflow: slide.scrollHeight - slide.clientHeight,
        scrollable: ['auto', 'scroll'].includes(style.overflowY),
        images: images,
        errors: slide.querySelectorAll(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").length,
    };
}"""


def _view(page: Page) -> SlideView | None:
    seen = page.evaluate(_SLIDE_VIEW)
    if seen is None:
        return None
    view = SlideView(seen["slide"], seen["fragments"], seen["top"], seen["bottom"], seen["scrollable"])
    # RISE's scrolling slide is 95% of the window high and placed by reveal.js, which can leave its
    # lower edge a few pixels below the window (3 px of 1,000 seen); what it holds stays reachable
    # through its scroll bar, so up to 1% of the window is let through.
    if seen["top"] < 0 or seen["bottom"] > 1.01 * seen["height"]:
        view.problems.append(f"the slide spans y = {seen['top']}…{seen['bottom']} of a {seen['height']} px window")
    if seen["overflow"] > 2 and not seen["scrollable"]:
        view.problems.append(f"{seen['overflow']} px of content lie below the slide and cannot be scrolled to")
    view.problems += [f"an image of {w}×{h} px" for w, h in seen["images"] if w == 0 or h == 0]
    if seen["errors"]:
        view.problems.append(f"{seen['errors']} error output(s)")
    return view


def walk_slideshow(page: Page, on_problem: Callable[[SlideView], object] | None = None,
                   settle_ms: int = 600, max_steps: int = 400) -> list[SlideView]:
    """Step through the open slideshow with the space bar, as a presenter does (every fragment,
    every vertical and horizontal slide), until it stops moving; what each step showed.
    ``on_problem(view)`` is called while a step with a problem is on screen (for a screenshot)."""
    views: list[SlideView] = []
    seen: set[tuple[str, int]] = set()
    deadline = time.monotonic() + max_steps * (settle_ms / 1000 + 1)
    while len(views) < max_steps and time.monotonic() < deadline:
        page.wait_for_timeout(settle_ms)  # reveal.js animates each step, and RISE sizes the slide after it
        view = _view(page)
        if view is None or (view.slide, view.fragments) in seen:
            break
        seen.add((view.slide, view.fragments))
        views.append(view)
        if view.problems and on_problem is not None:
            on_problem(view)
        page.keyboard.press("Space")
    return views
