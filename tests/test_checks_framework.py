"""What every checker must get right whatever the exercise: a right answer in another dtype is right,
the checker's own failure is never blamed on the student, a misspelled method is named, a stub of
another exercise is named, and per-sample mistakes cannot hide in a single test point."""

from __future__ import annotations

import functools

import pytest
import torch
from checker_cases import assert_named

import labs_lib as ll
from labs_lib import SDE, ODESimulator
from labs_lib.checks import (check_cfm_loss, check_conditional_score, check_conditional_vector_field, check_dsm_loss,
                             check_euler_step, check_ou_process, run_check)

# --- float64 answers to float32 inputs are right answers ------------------------------------------


def cfm_in_float64(model, path, x_0, x_1, t):
    s = path.sample(x_0.double(), x_1.double(), t.double())
    return (model(s.x_t.float(), t).double() - s.dx_t).pow(2).flatten(1).sum(1).mean()


def dsm_in_float64(model, path, eps, z, t):
    x_t = path.sample(eps, z, t).x_t
    target = path.conditional_score(x_t.double(), z.double(), t.double())
    return (model(x_t, t).double() - target).pow(2).flatten(1).sum(1).mean()


def field_in_float64(scheduler, x, z, t):
    return ll.AffinePath(scheduler).conditional_vector_field(x.double(), z.double(), t.double())


def score_with_float32_time(scheduler, x, z, t):
    """Correct: the schedule evaluated at a float32 copy of t, the score in x's dtype."""
    s = scheduler(ll.expand_time(t.float(), x))
    return (s.alpha_t.to(x.dtype) * z - x) / s.beta_t.to(x.dtype) ** 2


class EulerInFloat64(ODESimulator):
    def step(self, x, t, h):
        return x.double() + h * self.ode.drift(x, t).double()


@pytest.mark.parametrize("check, answer", [
    (check_cfm_loss, cfm_in_float64), (check_dsm_loss, dsm_in_float64),
    (check_conditional_vector_field, field_in_float64), (check_conditional_score, score_with_float32_time),
    (check_euler_step, EulerInFloat64),
], ids=["cfm_loss", "dsm_loss", "conditional_field", "conditional_score", "euler_step"])
def test_a_right_answer_in_another_dtype_passes(check, answer):
    report = check(answer)
    assert report.passed is True, report.message
    assert "Double did not match Float" not in report.message


# --- the checker's own exception is never reported as the student's ------------------------------


def test_an_exception_of_the_checker_itself_is_not_blamed_on_the_student():
    # The checker's own bug: a body from the library that crashes, with no student code on the stack.
    body = functools.partial(torch.cat, [torch.zeros(2), torch.zeros(2, 2)])
    report = run_check("demo", body, subject=None)
    assert report.passed is False, report.message
    assert "the checker itself failed" in report.message and "your code raised" not in report.message


def test_an_exception_of_the_students_code_is_theirs():
    def student(x):
        return x + torch.zeros(3)

    report = run_check("demo", lambda ok: student(torch.zeros(2)), subject=student)
    assert "your code raised RuntimeError" in report.message


# --- a missing or misspelled method is named --------------------------------------------------------


def test_a_misspelled_method_is_named():
    class MyOUProcess(SDE):
        def __init__(self, theta, sigma):
            self.theta, self.sigma = theta, sigma

        def drift(self, x, t):
            return -self.theta * x

        def difusion(self, x, t):  # one "f"
            return torch.full_like(x, self.sigma)

    report = check_ou_process(MyOUProcess)
    assert report.passed is False
    assert "your class does not define `diffusion` (you defined `difusion`: a typo?)" in report.message
    assert "constructor" not in report.message


def test_a_missing_method_is_named():
    class MyEuler(ODESimulator):
        pass

    report = check_euler_step(MyEuler)
    assert "your class does not define `step`" in report.message


# --- a stub of another exercise is named, not "the cell above" ----------------------------------------


def my_helper_exercise(x):
    raise NotImplementedError("Exercise: my_helper_exercise")


def test_reaching_another_exercises_stub_names_that_exercise():
    class MyOUProcess(SDE):
        def __init__(self, theta, sigma):
            self.theta, self.sigma = theta, sigma

        def drift(self, x, t):
            return my_helper_exercise(x)

        def diffusion(self, x, t):
            return self.sigma

    report = check_ou_process(MyOUProcess)
    assert report.passed is None
    assert "your code calls `my_helper_exercise`, which is still an unfinished exercise" in report.message
    assert "cell above" not in report.message.split("not in the cell above")[0]


def test_a_decorated_stub_still_points_at_the_cell_above():
    # Lab 05's sampler is written under @torch.no_grad(): the stub raises inside the wrapped function.
    @torch.no_grad()
    def my_euler_sampler(model, x_0, n_steps):
        raise NotImplementedError("Exercise: my_euler_sampler")

    report = ll.checks.check_euler_sampler(my_euler_sampler)
    assert report.message.startswith("… Euler sampler: not implemented yet."), report.message


def test_the_own_stub_still_points_at_the_cell_above():
    class MyOUProcess(SDE):
        def __init__(self, theta, sigma):
            self.theta, self.sigma = theta, sigma

        def drift(self, x, t):
            raise NotImplementedError("Exercise: MyOUProcess.drift")

        def diffusion(self, x, t):
            return self.sigma

    report = check_ou_process(MyOUProcess)
    assert report.message.startswith("… Ornstein–Uhlenbeck process: not implemented yet.")


# --- per-sample mistakes are seen: the test states are batches ----------------------------------------


def test_an_ou_drift_pulled_towards_the_batch_mean_is_named():
    class MyOUProcess(SDE):
        def __init__(self, theta, sigma):
            self.theta, self.sigma = theta, sigma

        def drift(self, x, t):
            return -self.theta * (x - x.mean(0, keepdim=True))

        def diffusion(self, x, t):
            return torch.full_like(x, self.sigma)

    report = check_ou_process(MyOUProcess)
    assert report.passed is False
    assert "the drift is 0" not in report.message
    assert "depends on the other samples in the batch" in report.message, report.message


# --- catalogued mistakes that used to get only "differs from the reference by up to ..." --------------


def _ou(drift, diffusion):
    def init(self, theta, sigma):
        self.theta, self.sigma = theta, sigma
    return type("MyOUProcess", (SDE,), {"__init__": init, "drift": drift, "diffusion": diffusion})


class _EulerH2(ODESimulator):
    def step(self, x, t, h):
        return x + h**2 * self.ode.drift(x, t)


class _HeunTwoEulerSteps(ODESimulator):
    def step(self, x, t, h):
        guess = x + h * self.ode.drift(x, t)
        return guess + h * self.ode.drift(guess, t + h)


def _cfm_target_towards_data(model, path, x_0, x_1, t):
    s = path.sample(x_0, x_1, t)
    return (model(s.x_t, t) - (x_1 - s.x_t)).pow(2).flatten(1).sum(1).mean()


def _cfm_one_time(model, path, x_0, x_1, t):
    t = t[:1].expand_as(t)
    s = path.sample(x_0, x_1, t)
    return (model(s.x_t, t) - s.dx_t).pow(2).flatten(1).sum(1).mean()


def _field_without_data_term(scheduler, x, z, t):
    s = scheduler(ll.expand_time(t, x))
    return s.d_beta_t / s.beta_t * (x - s.alpha_t * z)


def _cfg_difference_reversed(model, x, t, y, w, null_label):
    u = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([torch.full_like(y, null_label), y]))
    u_null, u_cond = u.chunk(2)
    return u_null + w * (u_null - u_cond)


@pytest.mark.parametrize("check, answer, named", [
    (check_euler_step, _EulerH2, "multiplied by h², not h"),
    (ll.checks.check_heun_step, _HeunTwoEulerSteps, "a corrector that takes a full Euler step"),
    (check_ou_process, _ou(lambda s, x, t: torch.randn_like(x), lambda s, x, t: torch.full_like(x, s.sigma)),
     "drift is random"),
    (check_ou_process, _ou(lambda s, x, t: -s.theta * x, lambda s, x, t: s.sigma * torch.randn_like(x)),
     "diffusion is random"),
    (check_cfm_loss, _cfm_target_towards_data, "the target x_1 − x_t points from x_t to the data"),
    (check_cfm_loss, _cfm_one_time, "one time was used for the whole batch"),
    (check_conditional_vector_field, _field_without_data_term, "the term α̇_t·z is missing"),
    (ll.checks.check_cfg_field, _cfg_difference_reversed, "the difference is the wrong way round"),
], ids=["euler_h_squared", "heun_two_euler_steps", "ou_random_drift", "ou_random_diffusion",
        "cfm_target_x1_minus_xt", "cfm_one_time", "field_without_data_term", "cfg_difference_reversed"])
def test_common_mistakes_are_named(check, answer, named):
    report = check(answer)
    assert_named(report, named)


def test_a_mistake_in_the_score_is_not_blamed_on_the_constructor():
    class MyLangevinSDE(SDE):
        def __init__(self, density, sigma):
            self.density, self.sigma = density, sigma

        def drift(self, x, t):
            return 0.5 * self.sigma**2 * self.density.score(x) + 0.1  # uses the density, but wrongly

        def diffusion(self, x, t):
            return torch.full_like(x, self.sigma)

    report = ll.checks.check_langevin_sde(MyLangevinSDE)
    assert report.passed is False
    assert "__init__" not in report.message, report.message


# --- every function checker refuses a class or a non-callable, the same way, and reports a stub as not done

FUNCTION_CHECKERS = ["check_cfm_loss", "check_cfg_loss", "check_cfg_field", "check_autograd_score",
                     "check_conditional_vector_field", "check_conditional_score", "check_dsm_loss",
                     "check_score_from_velocity", "check_patchify", "check_modulate", "check_latent_cfg_loss",
                     "check_ddpm_forward_step", "check_ancestral_step", "check_dpmpp_2m_step",
                     "check_ot_pairing", "check_hutchinson_divergence", "check_log_likelihood", "check_poisson_field"]


@pytest.mark.parametrize("checker", FUNCTION_CHECKERS)
def test_function_checkers_report_an_unfinished_exercise_as_not_done(checker):
    from labs_lib import checks

    def stub(*args, **kwargs):
        raise NotImplementedError("Exercise: my_function")

    report = getattr(checks, checker)(stub)
    assert report.passed is None
    assert "not implemented yet" in report.message, report.message


@pytest.mark.parametrize("checker", FUNCTION_CHECKERS)
@pytest.mark.parametrize("given", [ll.MLPField, None, "my_function"], ids=["a class", "None", "a string"])
def test_function_checkers_ask_for_the_function_itself(checker, given):
    from labs_lib import checks

    report = getattr(checks, checker)(given)
    assert report.passed is False
    assert f"pass your function itself, e.g. {checker}(" in report.message, report.message


# --- how a report looks in a notebook --------------------------------------------------------------


@pytest.mark.parametrize("passed, status, colour", [(True, "passed", "46, 125, 50"), (False, "failed", "198, 40, 40"),
                                                    (None, "todo", "191, 128, 0")])
def test_report_html_is_coloured_by_outcome_and_escapes_the_text(passed, status, colour):
    from labs_lib.checks import CheckReport

    report = CheckReport("demo", passed, ["✓ x <= 2 & y", "✗ demo: a <script> in a message"])
    shown = report._repr_html_()
    assert f'class="labs-check labs-check-{status}"' in shown and f"rgb({colour})" in shown
    assert "<script>" not in shown and "&lt;script&gt;" in shown and "x &lt;= 2 &amp; y" in shown
    assert shown.endswith("<b>✗ demo: a &lt;script&gt; in a message</b></div>")  # the verdict is bold
    assert "word-break: normal" in shown  # wraps between words, not inside them
    assert repr(report) == "✓ x <= 2 & y\n✗ demo: a <script> in a message"  # the plain text is unchanged


def test_a_real_report_shows_as_html():
    report = check_euler_step(lambda *args: None)
    assert report._repr_html_().startswith('<div class="labs-check labs-check-failed"')


# --- Run All at an unfinished exercise: one short message --------------------------------------


class RecordingShell:
    """What explain_unfinished_exercises needs of IPython's shell, recording what it is asked to show."""

    def __init__(self):
        self.handler, self.shown, self.published = None, [], []
        self.display_pub = self  # IPython's display publisher: publish(data=...)

    def publish(self, data, **kwargs):
        self.published.append(data)

    def set_custom_exc(self, exc_tuple, handler):
        assert exc_tuple == (NotImplementedError,)
        self.handler = handler

    def showtraceback(self, exc_tuple=None, tb_offset=None, exception_only=False):
        self.shown.append((exc_tuple, exception_only))


def test_an_unfinished_exercise_is_shown_as_one_message():
    from labs_lib.checks import explain_unfinished_exercises

    shell = RecordingShell()
    assert explain_unfinished_exercises(shell) is True
    stub = NotImplementedError("Exercise: MyEulerSimulator.step")
    shell.handler(shell, NotImplementedError, stub, None)
    (etype, value, tb), exception_only = shell.shown[-1]
    assert exception_only and etype is NotImplementedError and tb is None
    # the student-notebook test and the checkers still recognise it as the exercise's stub
    assert str(value).startswith("Exercise: MyEulerSimulator.step is not written yet, and this cell needs it.")
    assert "run that cell, then run this one again" in str(value)
    # and the cell is brought into view (Run All stops there, the view may be far below)
    (published,) = shell.published
    assert "element.scrollIntoView({block: 'center'})" in published["application/javascript"]


def test_other_errors_keep_their_traceback():
    from labs_lib.checks import explain_unfinished_exercises

    shell = RecordingShell()
    explain_unfinished_exercises(shell)
    other = NotImplementedError("a method of some library")
    shell.handler(shell, NotImplementedError, other, "tb", tb_offset=1)
    assert shell.shown[-1] == ((NotImplementedError, other, "tb"), False) and shell.published == []


def test_outside_ipython_nothing_is_installed(monkeypatch):
    import IPython

    from labs_lib.checks import explain_unfinished_exercises

    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    assert explain_unfinished_exercises() is False


def test_use_when_checked_hands_on_the_students_function_only_once_it_passes(capsys):
    from labs_lib.checks import check_cfm_loss, use_when_checked

    def unfinished(model, path, x_0, x_1, t):
        raise NotImplementedError("Exercise: my_cfm_loss")

    def wrong(model, path, x_0, x_1, t):
        return -ll.cfm_loss(model, path, x_0, x_1, t)

    def right(model, path, x_0, x_1, t):
        return ll.cfm_loss(model, path, x_0, x_1, t)

    assert use_when_checked(unfinished, check_cfm_loss, ll.cfm_loss) is ll.cfm_loss
    assert "unfinished is not implemented yet: the cells below use the library's ll.cfm_loss" in capsys.readouterr().out
    assert use_when_checked(wrong, check_cfm_loss, ll.cfm_loss) is ll.cfm_loss
    assert "wrong does not pass its check yet" in capsys.readouterr().out
    assert use_when_checked(right, check_cfm_loss, ll.cfm_loss) is right
    assert "✓ right passed its check: the cells below use it." in capsys.readouterr().out
