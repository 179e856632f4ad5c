"""python -m benchmarks [--only simulators,samplers,calibration,nfe,seeds,course] [--rounds N] [--seeds N]
                       [--rows PREFIXES] [--write-readme]

``--write-readme`` writes what was measured where it is shown: the full report into README.md's
benchmark section (only when every part ran, so that ``--only course`` cannot wipe the simulator
and sampler tables), and, with the course part, the notebooks' run times into the course map and
the instructor guide (:mod:`labs_lib.authoring.run_times`, which ``python -m labs_lib.authoring
--run-times`` runs alone). ``--only course`` only reads the timestamps stored in
the solution notebooks, so it takes a second; ``make solutions`` runs it after re-executing them.
``--only seeds`` (with or without ``course``) replaces just the robustness table, after a change to a
notebook's training recipe, and says beside it how and when it was measured; ``--rows 07`` with it
re-measures only the models whose names start with ``07`` and keeps the other rows as README has them.
``--only nfe`` replaces just Lab 09's tables of samplers against NFE (the exact field: nothing is trained);
``--only calibration`` just the yardstick's calibration table (a few seconds).
"""

from __future__ import annotations

import argparse
import platform
import shlex
import time
from datetime import date
from pathlib import Path

import torch

from labs_lib.authoring.run_times import README, replace_block, write_run_times

from . import calibration, course, nfe, samplers, seeds, simulators

BEGIN, END = "<!-- BEGIN BENCHMARKS -->", "<!-- END BENCHMARKS -->"
# The heading that starts the course part (benchmarks/course.py), the last of the block.
COURSE_HEADING = "**Solution notebooks: execution time"
PARTS = ("simulators", "samplers", "calibration", "nfe", "seeds", "course")
# The heading that starts the NFE part (benchmarks/nfe.py), which follows the calibration part.
NFE_HEADING = "**Lab 09's samplers against NFE"
# The heading that starts the robustness part (benchmarks/seeds.py), which follows the NFE part.
SEEDS_HEADING = "**Every model the notebooks train"


def _machine() -> str:
    threads = torch.get_num_threads()
    return (f"{platform.machine()}, {threads} PyTorch thread{'' if threads == 1 else 's'}, "
            f"torch {torch.__version__}, Python {platform.python_version()}")


def replace_part(text: str, part_text: str, next_heading: str | None = None) -> str:
    """README ``text`` with one part of its benchmark block replaced by ``part_text``: the old part runs from
    the same heading (the first 40 characters of ``part_text``) up to ``next_heading`` or the block's end.
    A part not yet in the block is added before ``next_heading`` (or at the end)."""
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{README} has no {BEGIN} ... {END} block to replace.")
    head, rest = text.split(BEGIN, 1)
    block, tail = rest.split(END, 1)
    following = ""
    if next_heading is not None and next_heading in block:
        block, following = block.split(next_heading, 1)
        following = next_heading + following
    heading = part_text.split("\n", 1)[0][:40]  # e.g. "**Solution notebooks: execution time on ..."
    kept = block.split(heading, 1)[0] if heading in block else block.rstrip("\n") + "\n\n"
    between = "\n\n" if following else "\n"
    return head + BEGIN + kept + part_text + between + following + END + tail


def replace_course_section(text: str, course_text: str) -> str:
    """README ``text`` with the course part of its benchmark block (from its heading on) replaced."""
    return replace_part(text, course_text)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--only", default=",".join(PARTS))
    parser.add_argument("--seeds", type=int, default=5, help="training seeds per model for the robustness table")
    parser.add_argument("--rows", default="",
                        help="with --only seeds: re-measure only the models whose names start with these "
                             "comma-separated prefixes (e.g. 07); the other rows are kept from README")
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
    sections: dict[str, str] = {}  # by part, in the order of PARTS
    if "simulators" in parts:
        sections["simulators"] = simulators.run(args.rounds)
    if "samplers" in parts:
        sections["samplers"] = samplers.run()
    if "calibration" in parts:
        sections["calibration"] = calibration.run()
    if "nfe" in parts:
        sections["nfe"] = nfe.run(args.seeds)
    seeds_seconds = 0.0
    if "seeds" in parts:
        seeds_start = time.perf_counter()
        rows = [r for r in args.rows.split(",") if r]
        sections["seeds"] = seeds.run(args.seeds, rows, README.read_text(encoding="utf-8") if rows else "")
        seeds_seconds = time.perf_counter() - seeds_start
    if "course" in parts:
        sections["course"], _ = course.run()
    elapsed = time.perf_counter() - start
    report = (f"Measured with `make bench` on {_machine()}; the benchmark took {elapsed:.0f} s. "
              "Times are medians of interleaved rounds; each ratio is taken within a round, against the "
              "hand-written loop named in its row (a recorded trajectory against the loop that records one too).\n\n"
              + "\n\n".join(sections.values()))
    print(report)
    if args.write_readme:
        text = README.read_text(encoding="utf-8")
        if parts.issuperset(PARTS):
            text = replace_block(text, BEGIN, END, report, README)
        elif parts <= {"calibration", "nfe", "seeds", "course"}:
            # The notebooks were re-executed (make solutions) and/or their models retrained with several
            # seeds: those parts are replaced, the measured simulator and sampler tables are kept.
            if "calibration" in parts:
                text = replace_part(text, sections["calibration"], next_heading=NFE_HEADING)
            if "nfe" in parts:
                text = replace_part(text, sections["nfe"], next_heading=SEEDS_HEADING)
            if "seeds" in parts:
                if rows:
                    # The notes of the earlier runs stay (the other rows were measured then), less an
                    # earlier note of these same rows.
                    notes = [line for line in seeds.run_notes(text) if not line.startswith(f"*Rows {args.rows} ")]
                    notes.append(f"*Rows {args.rows} re-measured on {date.today()}: `python -m benchmarks --only seeds "
                                 f"--rows {shlex.quote(args.rows)} --write-readme` on {_machine()}, "
                                 f"{seeds_seconds:.0f} s.*")
                else:
                    notes = [f"*This table alone: `python -m benchmarks --only seeds --write-readme` on {_machine()}, "
                             f"{seeds_seconds:.0f} s.*"]
                seeds_text = sections["seeds"] + "\n\n" + "\n\n".join(notes)
                text = replace_part(text, seeds_text, next_heading=COURSE_HEADING)
            if "course" in parts:
                text = replace_course_section(text, sections["course"])
            print(f"\nREADME.md's benchmark section: the {' and '.join(sorted(parts))} part(s) replaced, "
                  "the rest kept.")
        else:
            print(f"\nREADME.md's benchmark section left as it is: it holds the report of all of {', '.join(PARTS)}.")
        README.write_text(text, encoding="utf-8")
        if "course" in parts:
            for path in write_run_times(Path("solutions")):
                print(f"{path}: run times updated.")


if __name__ == "__main__":
    main()
