"""The solution notebooks' run times, and the two places that show them: the README's course map
(its last column) and the instructor guide's run-time table.

The times are read from the execution timestamps that nbclient stores in each cell's metadata when
a notebook is executed (``make solutions`` re-executes them on this machine): nothing is re-run
and nothing is typed by hand. ``python -m labs_lib.authoring --run-times`` writes both places;
``--check`` fails while either differs from the notebooks' timestamps.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import nbformat

from .notebooks import AuthoringError, course_notebooks, read_notebook

README = Path("README.md")
GUIDE = Path("docs/INSTRUCTOR_GUIDE.md")
MAP_BEGIN, MAP_END = "<!-- BEGIN COURSE MAP -->", "<!-- END COURSE MAP -->"
TIMES_BEGIN, TIMES_END = "<!-- BEGIN RUN TIMES -->", "<!-- END RUN TIMES -->"


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def notebook_seconds(nb: nbformat.NotebookNode) -> float | None:
    """Wall time from the first cell's start to the last cell's reply, or None if not recorded."""
    spans = [c.metadata.get("execution", {}) for c in nb.cells if c.cell_type == "code"]
    starts = [_stamp(s["iopub.execute_input"]) for s in spans if "iopub.execute_input" in s]
    ends = [_stamp(s["shell.execute_reply"]) for s in spans if "shell.execute_reply" in s]
    if not starts or not ends:
        return None
    return (max(ends) - min(starts)).total_seconds()


def solution_run_times(solutions: Path) -> dict[str, float]:
    """``NN_topic.ipynb → seconds`` for every solution notebook with stored timestamps."""
    times = {}
    for path in course_notebooks(solutions):
        seconds = notebook_seconds(read_notebook(path))
        if seconds is not None:
            times[path.name] = seconds
    return times


# Each lab's time budget on the course's 2-core CPU, training included (seconds): the short labs
# 01–04 90 s, the training labs 3 min, Lab 07 (a U-Net on digits) 4 min. A lab not listed gets
# DEFAULT_BUDGET. `--check` (run by `make test`) fails when a stored run time is over its budget, so
# a lab cannot grow past it unnoticed; the machine's own speed varies, so leave a margin.
BUDGETS = {"01": 90.0, "02": 90.0, "03": 90.0, "04": 90.0, "05": 180.0, "06": 180.0, "07": 240.0}
DEFAULT_BUDGET = 180.0


def budget(name: str) -> float:
    """The time budget in seconds of the lab ``NN_...`` (a notebook's file name or the lab's name)."""
    return BUDGETS.get(Path(name).name[:2], DEFAULT_BUDGET)


def over_budget(solutions: Path) -> list[str]:
    """The solution notebooks whose stored run time exceeds their lab's budget, one line each."""
    return [f"{name} ran in {seconds:.0f} s, over its budget of {budget(name):.0f} s"
            for name, seconds in solution_run_times(solutions).items() if seconds > budget(name)]


def replace_block(text: str, begin: str, end: str, content: str, where: Path) -> str:
    """Replace what lies between the markers ``begin`` and ``end`` of ``text`` by ``content``."""
    if begin not in text or end not in text:
        raise AuthoringError(f"{where} has no {begin} ... {end} block to replace.")
    head, rest = text.split(begin, 1)
    return head + begin + "\n" + content + "\n" + end + rest.split(end, 1)[1]


def update_course_map(text: str, times: dict[str, float]) -> str:
    """Rewrite the last column (run time) of each course-map row that links a solution notebook."""
    if MAP_BEGIN not in text:
        return text
    head, rest = text.split(MAP_BEGIN, 1)
    body, tail = rest.split(MAP_END, 1)
    lines = []
    for line in body.splitlines():
        m = re.search(r"solutions/(\d\d_[\w-]+\.ipynb)", line)
        if m and m.group(1) in times and line.rstrip().endswith("|"):
            cells = line.rstrip().rstrip("|").split("|")
            cells[-1] = f" {times[m.group(1)]:.0f} s "
            line = "|".join(cells) + "|"
        lines.append(line)
    # splitlines() drops the newline before the end marker: put it back, or the marker joins the last row
    return head + MAP_BEGIN + "\n".join(lines) + ("\n" if body.endswith("\n") else "") + MAP_END + tail


def run_times_block(times: dict[str, float]) -> str:
    """The instructor guide's run-time table: one row per solution notebook, then the total."""
    rows = ["| lab | solution notebook | run time |", "|---|---|---:|"]
    for name, seconds in sorted(times.items()):
        rows.append(f"| {name[:2]} | [{name[:-6]}](../solutions/{name}) | {seconds:.0f} s |")
    total = sum(times.values())
    rows.append(f"| | **all labs** | **{total:.0f} s** ({total / 60:.1f} min) |")
    return "\n".join(rows)


def update_guide(text: str, times: dict[str, float], where: Path = GUIDE) -> str:
    """The instructor guide with its run-time block rewritten from ``times``."""
    return replace_block(text, TIMES_BEGIN, TIMES_END, run_times_block(times), where)


def _planned(solutions: Path, readme: Path, guide: Path) -> dict[Path, tuple[str, str]]:
    """``file → (current text, text with the run times written)`` for the README and the guide."""
    times = solution_run_times(solutions)
    current = {path: path.read_text(encoding="utf-8") for path in (readme, guide)}
    return {readme: (current[readme], update_course_map(current[readme], times)),
            guide: (current[guide], update_guide(current[guide], times, guide))}


def stale_run_times(solutions: Path, readme: Path = README, guide: Path = GUIDE) -> list[str]:
    """Why the README's course map or the guide's table differs from the stored timestamps."""
    return [f"{path}'s run times differ from the solution notebooks' stored timestamps"
            for path, (now, planned) in _planned(solutions, readme, guide).items() if now != planned]


def write_run_times(solutions: Path, readme: Path = README, guide: Path = GUIDE) -> list[Path]:
    """Write the run times into the README's course map and the guide; returns the files changed."""
    written = []
    for path, (now, planned) in _planned(solutions, readme, guide).items():
        if now != planned:
            path.write_text(planned, encoding="utf-8")
            written.append(path)
    return written
