"""What every checker test asserts about a wrong answer, in one place."""

from __future__ import annotations

from collections.abc import Callable

import torch

from labs_lib.checks import CheckReport


def assert_named(report: CheckReport, hint: str) -> None:
    """``report`` is a failure (not a pass, not an unfinished exercise) whose message contains ``hint``."""
    assert report.passed is False, report.message
    assert hint in report.message, report.message


def assert_leaves_random_stream(*runs: tuple[Callable[[object], CheckReport], object]) -> None:
    """Each ``(check, right_answer)`` passes, and running them all leaves torch's global random stream
    where it was: a check cell never changes the numbers of the cells below it."""
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    for check, answer in runs:
        report = check(answer)
        assert report.passed, report.message
    assert torch.equal(torch.rand(3), expected)
