"""Interleaved timing: every implementation is timed once per round, rounds repeat.

Interleaving spreads any slow-down of the machine (another process, a frequency change)
over all implementations alike, and every ratio is taken within one round, against the
plain loop timed in that same round.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable


@dataclass
class Timing:
    name: str
    seconds: list[float]
    ratios: list[float]  # against the baseline of the same round

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
                warmup: int = 1) -> list[Timing]:
    """Time each callable ``rounds`` times, interleaved; ratios are against ``baseline``."""
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - start)
    base = seconds[baseline]
    return [Timing(name, s, [a / b for a, b in zip(s, base)]) for name, s in seconds.items()]


def table(title: str, timings: list[Timing]) -> str:
    """A Markdown table: median time, median ratio to the baseline, and the ratio's range."""
    lines = [f"**{title}**", "", "| implementation | median time | ratio to plain loop | ratio range |",
             "|---|---:|---:|---:|"]
    for t in timings:
        lo, hi = t.spread
        lines.append(f"| {t.name} | {t.median * 1000:.0f} ms | {t.ratio:.2f}× | {lo:.2f}–{hi:.2f} |")
    return "\n".join(lines)
