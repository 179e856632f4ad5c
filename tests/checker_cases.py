"""What every checker test asserts about a wrong answer, in one place."""

from __future__ import annotations

from labs_lib.checks import CheckReport


def assert_named(report: CheckReport, hint: str) -> None:
    """``report`` is a failure (not a pass, not an unfinished exercise) whose message contains ``hint``."""
    assert report.passed is False, report.message
    assert hint in report.message, report.message
