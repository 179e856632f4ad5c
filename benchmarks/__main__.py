"""python -m benchmarks [--only simulators,samplers,course] [--rounds N] [--write-readme]"""

from __future__ import annotations

import argparse
import platform
import re
import time
from pathlib import Path

import torch

from . import course, samplers, simulators

README = Path("README.md")
BEGIN, END = "<!-- BEGIN BENCHMARKS -->", "<!-- END BENCHMARKS -->"
MAP_BEGIN, MAP_END = "<!-- BEGIN COURSE MAP -->", "<!-- END COURSE MAP -->"


def _machine() -> str:
    return (f"{platform.machine()}, {torch.get_num_threads()} PyTorch threads, torch {torch.__version__}, "
            f"Python {platform.python_version()}")


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
    return head + MAP_BEGIN + "\n".join(lines) + MAP_END + tail


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--only", default="simulators,samplers,course")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--write-readme", action="store_true", help="replace the benchmark section of README.md")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    start = time.perf_counter()
    sections, times = [], {}
    if "simulators" in parts:
        sections.append(simulators.run(args.rounds))
    if "samplers" in parts:
        sections.append(samplers.run())
    if "course" in parts:
        text, times = course.run()
        sections.append(text)
    elapsed = time.perf_counter() - start
    report = (f"Measured with `make bench` on {_machine()}; the benchmark took {elapsed:.0f} s. "
              "Times are medians of interleaved rounds; ratios are against the plain loop of the same round.\n\n"
              + "\n\n".join(sections))
    print(report)
    if args.write_readme:
        text = README.read_text(encoding="utf-8")
        if BEGIN not in text or END not in text:
            raise SystemExit(f"README.md has no {BEGIN} ... {END} section to replace.")
        head, rest = text.split(BEGIN, 1)
        text = head + BEGIN + "\n" + report + "\n" + END + rest.split(END, 1)[1]
        README.write_text(_update_course_map(text, times), encoding="utf-8")
        print("\nREADME.md updated.")


if __name__ == "__main__":
    main()
