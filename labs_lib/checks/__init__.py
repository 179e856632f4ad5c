"""Checkers for the exercises: one function per exercise, called by the cell right after it.

A checker runs the student's code on seeded inputs of several shapes against the reference
in ``labs_lib`` and returns a :class:`CheckReport` that says what was verified, or which
property failed with a hint. An unfinished exercise gets a one-line reminder.

One module per chapter: ``simulators`` (01), ``processes`` (02), ``langevin`` (03),
``paths`` (04), ``flow_matching`` (05), ``score_matching`` (06), ``guidance`` (07), ``latent`` (08),
``diffusion`` (09), ``straight_flows`` (10).

**The reference policy**, for every checker:

* Where ``labs_lib`` implements what the exercise asks for (a loss, a conditional field, a
  conversion), the reference *is* that implementation: ``tests/`` verifies it against
  mathematics (closed forms, hand computations, autograd), and the checker can then never
  disagree with the code the course trains and samples with.
* Where it does not (a simulator step, a process's coefficients), the reference is the
  exercise's formula, written out in the checker.
* Anything a student computes *by autograd* is compared with analytic values (closed-form
  scores), never with autograd itself.
* The named mistakes are always written out in the checker, as module-level tables
  ``_<thing>_mistakes(...)`` (hint → what one specific wrong line of code would return).

Each checker reads as inputs → reference → named mistakes → report, on the shared machinery
of :mod:`labs_lib.checks._framework`: the guarded call (:func:`~._framework.call_guarded`),
the function and class requirements, the loss checks (:func:`~._framework.check_loss_values`),
the device probe, and :func:`~._framework.checker`, which turns what happened into the report.
"""

from ._framework import SHAPES, CheckFailed, CheckReport, explain_unfinished_exercises, run_check, use_when_checked
from .diffusion import check_ancestral_step, check_ddpm_forward_step, check_dpmpp_2m_step
from .flow_matching import check_cfm_loss, check_euler_sampler, check_training_loop
from .guidance import check_cfg_field, check_cfg_loss
from .langevin import check_autograd_score, check_langevin_sde
from .latent import check_latent_cfg_loss, check_modulate, check_patchify
from .paths import check_conditional_score, check_conditional_vector_field, check_sqrt_scheduler
from .processes import check_brownian_paths, check_ou_process
from .score_matching import check_dsm_loss, check_langevin_corrected_sde, check_score_from_velocity
from .simulators import check_euler_maruyama_step, check_euler_step, check_heun_step
from .straight_flows import check_hutchinson_divergence, check_log_likelihood, check_ot_pairing, check_poisson_field

__all__ = ["CheckReport", "CheckFailed", "run_check", "SHAPES", "explain_unfinished_exercises", "use_when_checked",
           "check_euler_step", "check_heun_step", "check_euler_maruyama_step",
           "check_brownian_paths", "check_ou_process",
           "check_autograd_score", "check_langevin_sde",
           "check_cfg_loss", "check_cfg_field",
           "check_sqrt_scheduler", "check_conditional_vector_field", "check_conditional_score",
           "check_cfm_loss", "check_training_loop", "check_euler_sampler",
           "check_dsm_loss", "check_score_from_velocity", "check_langevin_corrected_sde",
           "check_patchify", "check_modulate", "check_latent_cfg_loss",
           "check_ddpm_forward_step", "check_ancestral_step", "check_dpmpp_2m_step",
           "check_ot_pairing", "check_hutchinson_divergence", "check_log_likelihood", "check_poisson_field"]
