"""python -m benchmarks [--only simulators,samplers,seeds,course] [--rounds N] [--seeds N] [--write-readme]

``--write-readme`` writes what was measured where it is shown: the full report into README.md's
benchmark section (only when every part ran, so that ``--only course`` cannot wipe the simulator
and sampler tables), and the notebooks' run times into the course map's last column and into the
run-time table of docs/INSTRUCTOR_GUIDE.md. ``--only course`` only reads the timestamps stored in
the solution notebooks, so it takes a second; ``make solutions`` runs it after re-executing them.
"""

from __future__ import annotations

import argparse
import platform
import re
import time
from pathlib import Path

import torch

from . import course, samplers, seeds, simulators

README = Path("README.md")
BEGIN, END = "<!-- BEGIN BENCHMARKS -->", "<!-- END BENCHMARKS -->"
MAP_BEGIN, MAP_END = "<!-- BEGIN COURSE MAP -->", "<!-- END COURSE MAP -->"
GUIDE = Path("docs/INSTRUCTOR_GUIDE.md")
TIMES_BEGIN, TIMES_END = "<!-- BEGIN RUN TIMES -->", "<!-- END RUN TIMES -->"
PARTS = ("simulators", "samplers", "seeds", "course")


def _machine() -> str:
    threads = torch.get_num_threads()
    return (f"{platform.machine()}, {threads} PyTorch thread{'' if threads == 1 else 's'}, "
            f"torch {torch.__version__}, Python {platform.python_version()}")


def _update_course_map(text: str, times: dict[str, float]) -> str:
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
    """The instructor guide's run-time table: one row per solution notebook, then the total.

    ``times`` maps notebook file names to seconds, as :func:`benchmarks.course.run` returns them.
    """
    rows = ["| lab | solution notebook | run time |", "|---|---|---:|"]
    for name, seconds in sorted(times.items()):
        rows.append(f"| {name[:2]} | [{name[:-6]}](../solutions/{name}) | {seconds:.0f} s |")
    total = sum(times.values())
    rows.append(f"| | **all labs** | **{total:.0f} s** ({total / 60:.1f} min) |")
    return "\n".join(rows)


def _replace_block(text: str, begin: str, end: str, content: str, where: Path) -> str:
    """Replace what lies between the markers ``begin`` and ``end`` of ``text`` by ``content``."""
    if begin not in text or end not in text:
        raise SystemExit(f"{where} has no {begin} ... {end} block to replace.")
    head, rest = text.split(begin, 1)
    return head + begin + "\n" + content + "\n" + end + rest.split(end, 1)[1]


def update_guide(text: str, times: dict[str, float], where: Path = GUIDE) -> str:
    """The instructor guide with its run-time block rewritten from ``times``."""
    return _replace_block(text, TIMES_BEGIN, TIMES_END, run_times_block(times), where)


def replace_course_section(text: str, course_text: str) -> str:
    """README ``text`` with the course part of its benchmark block (from its heading on) replaced."""
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{README} has no {BEGIN} ... {END} block to replace.")
    head, rest = text.split(BEGIN, 1)
    block, tail = rest.split(END, 1)
    heading = course_text.split("\n", 1)[0][:40]  # "**Solution notebooks: execution time on ..."
    kept = block.split(heading, 1)[0] if heading in block else block.rstrip("\n") + "\n\n"
    return head + BEGIN + kept + course_text + "\n" + END + tail


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--only", default="simulators,samplers,seeds,course")
    parser.add_argument("--seeds", type=int, default=5, help="training seeds per model for the robustness table")
    parser.add_argument("--rounds", type=int, default=9)
    # One thread by default, as the notebooks and the tests run: on a 2-core machine PyTorch's
    # second thread mostly waits on these small per-step operations and only adds noise.
    parser.add_argument("--threads", type=int, default=1, help="PyTorch intra-op threads (default 1)")
    parser.add_argument("--write-readme", action="store_true", help="replace the benchmark section of README.md")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    torch.set_num_threads(args.threads)
    parts = set(args.only.split(","))
    start = time.perf_counter()
    sections, times = [], {}
    if "simulators" in parts:
        sections.append(simulators.run(args.rounds))
    if "samplers" in parts:
        sections.append(samplers.run())
    if "seeds" in parts:
        sections.append(seeds.run(args.seeds))
    if "course" in parts:
        text, times = course.run()
        sections.append(text)
    elapsed = time.perf_counter() - start
    report = (f"Measured with `make bench` on {_machine()}; the benchmark took {elapsed:.0f} s. "
              "Times are medians of interleaved rounds; each ratio is taken within a round, against the "
              "hand-written loop named in its row (a recorded trajectory against the loop that records one too).\n\n"
              + "\n\n".join(sections))
    print(report)
    if args.write_readme:
        text = README.read_text(encoding="utf-8")
        if parts.issuperset(PARTS):
            text = _replace_block(text, BEGIN, END, report, README)
        elif "course" in parts:
            # The notebooks were re-executed (make solutions): their times and printed figures change,
            # the measured simulator, sampler and seed tables do not.
            text = replace_course_section(text, sections[-1])
            print("\nREADME.md's benchmark section: the notebooks' times and figures replaced, the rest kept.")
        else:
            print(f"\nREADME.md's benchmark section left as it is: it holds the report of all of {', '.join(PARTS)}.")
        README.write_text(_update_course_map(text, times), encoding="utf-8")
        print("\nREADME.md updated." if parts.issuperset(PARTS) else "README.md's course map updated.")
        if times:
            GUIDE.write_text(update_guide(GUIDE.read_text(encoding="utf-8"), times), encoding="utf-8")
            print(f"{GUIDE}: run times updated.")


if __name__ == "__main__":
    main()
