"""Checkers for the exercises: one function per exercise, called by the cell right after it.

A checker runs the student's code on seeded inputs of several shapes against the reference
in ``labs_lib`` and returns a :class:`CheckReport` that says what was verified, or which
property failed with a hint. An unfinished exercise gets a one-line reminder.

One module per chapter: ``simulators`` (notebook 01).
"""

from ._framework import SHAPES, CheckFailed, CheckReport, run_check
from .simulators import check_euler_maruyama_step, check_euler_step, check_heun_step

__all__ = ["CheckReport", "CheckFailed", "run_check", "SHAPES",
           "check_euler_step", "check_heun_step", "check_euler_maruyama_step"]
