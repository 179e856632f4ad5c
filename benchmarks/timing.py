"""Interleaved timing: every implementation is timed once per round, rounds repeat.

Interleaving spreads any slow-down of the machine (another process, a frequency change)
over all implementations alike, and every ratio is taken within one round, against the
plain loop timed in that same round.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Timing:
    name: str
    seconds: list[float]
    ratios: list[float]  # against the baseline of the same round
    against: str = ""  # the name of that baseline

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def spread(self) -> tuple[float, float]:
        return min(self.ratios), max(self.ratios)


def interleaved(cases: dict[str, Callable[[], object]], baseline: str, rounds: int = 7,
                warmup: int = 1, baselines: dict[str, str] | None = None) -> list[Timing]:
    """Time each callable ``rounds`` times, interleaved; ratios are against ``baseline``.

    ``baselines`` names a different baseline for some cases (a variant that records a trajectory
    is compared with the plain loop that records one too).
    """
    baselines = baselines or {}
    unknown = sorted(set(baselines) - set(cases) | set(baselines.values()) - set(cases) | {baseline} - set(cases))
    if unknown:
        raise ValueError(f"baselines name cases that are not timed: {unknown}")
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - start)
    timings = []
    for name, s in seconds.items():
        against = baselines.get(name, baseline)
        timings.append(Timing(name, s, [a / b for a, b in zip(s, seconds[against])], against))
    return timings


def table(title: str, timings: list[Timing]) -> str:
    """A Markdown table: median time, median ratio to its baseline, the ratio's range, the baseline."""
    lines = [f"**{title}**", "", "| implementation | median time | median ratio | ratio range | ratio against |",
             "|---|---:|---:|---:|---|"]
    for t in timings:
        lo, hi = t.spread
        lines.append(f"| {t.name} | {t.median * 1000:.0f} ms | {t.ratio:.2f}× | {lo:.2f}–{hi:.2f} | {t.against} |")
    return "\n".join(lines)
