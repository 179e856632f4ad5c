"""Checkers for the exercises: one function per exercise, called by the cell right after it.

A checker runs the student's code on seeded inputs of several shapes against the reference
in ``labs_lib`` and returns a :class:`CheckReport` that says what was verified, or which
property failed with a hint. An unfinished exercise gets a one-line reminder.

One module per chapter: ``simulators`` (01), ``processes`` (02), ``langevin`` (03),
``paths`` (04), ``flow_matching`` (05), ``score_matching`` (06), ``guidance`` (07).
"""

from ._framework import SHAPES, CheckFailed, CheckReport, run_check
from .simulators import check_euler_maruyama_step, check_euler_step, check_heun_step
from .processes import check_brownian_motion, check_ou_process
from .langevin import check_autograd_score, check_langevin_sde
from .guidance import check_cfg_field, check_cfg_loss
from .paths import check_conditional_score, check_conditional_vector_field, check_sqrt_scheduler
from .flow_matching import check_cfm_loss, check_learned_ode
from .score_matching import check_dsm_loss, check_langevin_corrected_sde, check_score_from_velocity

__all__ = ["CheckReport", "CheckFailed", "run_check", "SHAPES",
           "check_euler_step", "check_heun_step", "check_euler_maruyama_step",
           "check_brownian_motion", "check_ou_process",
           "check_autograd_score", "check_langevin_sde",
           "check_cfg_loss", "check_cfg_field",
           "check_sqrt_scheduler", "check_conditional_vector_field", "check_conditional_score",
           "check_cfm_loss", "check_learned_ode",
           "check_dsm_loss", "check_score_from_velocity", "check_langevin_corrected_sde"]
