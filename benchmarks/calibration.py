"""The yardstick's calibration: its verdict and floor ratio on exact samples and on every catalogued mistake.

Every statement the course makes about a verdict ("exact sets pass and score about 0.8, at most 1.54";
"every catalogued mistake is rejected and scores 2.3 or more") is this table, measured by
:func:`labs_lib.wrong_samplers.calibration_reports` on the seeds ``tests/test_yardstick.py`` uses too.
"""

from __future__ import annotations

import statistics
import time

import labs_lib as ll
from labs_lib.wrong_samplers import CALIBRATION_EXACT_SEEDS, CALIBRATION_WRONG_SEEDS, calibration_reports

HEADING = "**The yardstick's calibration**"


def targets() -> dict[str, ll.Sampleable]:
    """The three targets the course judges samples of, by the name the tables give them."""
    return {"5-mode mixture": ll.GaussianMixture.symmetric_2d(5, radius=4.0, std=0.5),
            "checkerboard": ll.Checkerboard(), "moons": ll.Moons()}


def run() -> str:
    start = time.perf_counter()
    exact, wrong = CALIBRATION_EXACT_SEEDS, CALIBRATION_WRONG_SEEDS
    lines = [f"{HEADING} (10,000 samples per set: {len(exact)} exact sets per target, seeds {exact.start}–"
             f"{exact.stop - 1}, and {len(wrong)} sets of every wrong sampler of `labs_lib.wrong_samplers`, seeds "
             f"{wrong.start}–{wrong.stop - 1}). The floor ratio is the largest figure over the worst of the "
             "yardstick's 20 exact reference sets; the verdict compares each figure with its own tolerance.", "",
             "| target | samples | floor ratio: smallest | median | largest | verdict |",
             "|---|---|---:|---:|---:|---|"]
    for target_name, target in targets().items():
        for name, reports in calibration_reports(ll.Yardstick(target)).items():
            ratios = sorted(r.floor_ratio for r in reports)
            if name == "exact":
                verdict = f"passed {sum(r.passed for r in reports)} of {len(reports)}"
            else:
                verdict = f"rejected {sum(not r.passed for r in reports)} of {len(reports)}"
            lines.append(f"| {target_name} | {name} | {ratios[0]:.2f} | {statistics.median(ratios):.2f} | "
                         f"{ratios[-1]:.2f} | {verdict} |")
    lines.append(f"\n*This table: {time.perf_counter() - start:.0f} s.*")
    return "\n".join(lines)
