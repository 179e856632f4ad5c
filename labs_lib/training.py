r"""Training loops: one base class, one ``loss`` per objective.

A :class:`Trainer` owns the optimisation loop (optional seeding and device, Adam, a ``tqdm.auto``
progress bar, the loss history, a clear error if the loss turns NaN); a subclass only says
how to compute the loss on a fresh batch. :class:`ConditionalFlowMatchingTrainer` is the
conditional flow matching objective

.. math:: \mathcal L_{\rm CFM}(\theta) = \mathbb E_{t \sim U[0,1),\, x_0 \sim p_{\rm init},\, x_1 \sim p_{\rm data}}
          \big\| u^\theta_t(x_t) - (\dot\alpha_t x_1 + \dot\beta_t x_0) \big\|^2,
          \qquad x_t = \alpha_t x_1 + \beta_t x_0 ,

whose value on one batch is :func:`~labs_lib.losses.cfm_loss`. The trainers draw a fresh batch
at every step and hand it to a loss of :mod:`labs_lib.losses`: conditional flow matching,
denoising score matching, ε-prediction and classifier-free guidance sit side by side here, and
the compressor of a latent flow, :class:`AutoencoderTrainer`. How a batch's noise and data are
paired is one overridable step, :meth:`ConditionalFlowMatchingTrainer.couple`: independently, or
by minibatch optimal transport in :class:`OTConditionalFlowMatchingTrainer` (Lab 10); fixed pairs of a
trained flow are drawn whole by :class:`ReflowTrainer` (reflow, Lab 10).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim.swa_utils import get_ema_multi_avg_fn
from tqdm.auto import tqdm

from ._validation import as_tensor, validate_positive, validate_positive_int
from .autoencoder import Autoencoder, autoencoder_loss
from .config import get_device, seed_everything
from .coupling import FixedPairs, ot_coupling
from .digits import LabelledImages
from .distributions import LabelledSampleable, Sampleable
from .losses import DSM_WEIGHTINGS, cfg_loss, cfm_loss, dsm_loss, noise_prediction_loss
from .models import null_label_of
from .paths import AffinePath


@dataclass
class TrainingHistory:
    """What a training run leaves behind.

    Attributes:
        losses: the loss at every step, shape ``(n_steps,)``.
        seconds: wall-clock time of the run.
    """

    losses: np.ndarray
    seconds: float

    def smoothed(self, window: int = 50) -> np.ndarray:
        """Moving average of the losses over ``window`` steps (shorter at the start)."""
        validate_positive_int(window, "window")
        c = np.cumsum(np.insert(self.losses, 0, 0.0))
        idx = np.arange(1, len(self.losses) + 1)
        lo = np.maximum(idx - window, 0)
        return (c[idx] - c[lo]) / (idx - lo)

    @property
    def final_loss(self) -> float:
        """Mean loss over the last 10% of the steps (a single step's loss is too noisy)."""
        k = max(1, len(self.losses) // 10)
        return float(self.losses[-k:].mean())


#: The learning-rate schedules of :meth:`Trainer.train`: the factor on ``lr`` after ``i`` of ``n`` steps.
LR_SCHEDULES: dict[str, Callable[[int, int], float]] = {
    "linear": lambda i, n: 1 - 0.9 * i / n,  # down to a tenth of lr
    "cosine": lambda i, n: 0.5 * (1 + math.cos(math.pi * i / n)),  # down to zero
}


#: The width of a progress bar's label in a notebook: bars of trainings with shorter and longer
#: descriptions ("DSM", "circles → checkerboard") start at the same place, one under the other.
PROGRESS_LABEL_WIDTH = "16em"


def uniform_times(n: int, device: torch.device | str | None = None) -> Tensor:
    """``n`` training times :math:`t \\sim U[0, 1)`, shape ``(n,)``: every time weighted alike."""
    return torch.rand(n, device=device)


def logit_normal_times(n: int, device: torch.device | str | None = None, mean: float = 0.0,
                       std: float = 1.0) -> Tensor:
    r"""``n`` training times :math:`t = \sigma(m + s\,\xi)`, :math:`\xi \sim \mathcal N(0, 1)`, shape ``(n,)``.

    The logit-normal law puts more of the batch in the middle of the path, where :math:`p_t`
    splits into modes and the marginal field changes fastest, and fewer times near 0 and 1, where
    the field is nearly linear. Its density is
    :math:`\frac{1}{s\sqrt{2\pi}\, t(1-t)} \exp\!\big(-\frac{(\operatorname{logit} t - m)^2}{2 s^2}\big)`.
    """
    validate_positive(std, "std")
    return torch.sigmoid(mean + std * torch.randn(n, device=device))


class Trainer(ABC):
    """Trains ``model`` by minimising :meth:`loss` with Adam."""

    def __init__(self, model: nn.Module):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        params = list(model.parameters())
        if not params:
            raise ValueError(f"model ({type(model).__name__}) has no parameters to train.")
        self.model = model
        self.device = params[0].device
        self._run: _Run | None = None  # the run that train() started, until it ends

    def _use_time_sampler(self, time_sampler: object) -> None:
        """Keep ``time_sampler`` for :meth:`_draw_times`: a function ``(n, device)`` → ``n`` times in ``[0, 1]``."""
        if not callable(time_sampler):
            raise TypeError(f"time_sampler must be a function (n, device) -> times of shape (n,), e.g. "
                            f"ll.logit_normal_times; got {type(time_sampler).__name__}.")
        self.time_sampler, self._times_checked = time_sampler, False

    def _draw_times(self, batch_size: int) -> Tensor:
        """The batch's times from the trainer's ``time_sampler``, shape ``(batch_size,)`` on the model's device."""
        t = self.time_sampler(batch_size, self.device)
        # The values are checked on the first batch only: reading them every step would make a GPU wait
        # for each batch (a synchronisation per step); the shape is free to check every time.
        if not isinstance(t, Tensor) or t.shape != (batch_size,) or (
                not self._times_checked and not bool(((t >= 0) & (t <= 1)).all())):
            raise ValueError(f"time_sampler({batch_size}, device) must return {batch_size} times in [0, 1] as a "
                             f"tensor of shape ({batch_size},), got "
                             f"{tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__}.")
        self._times_checked = True
        return t

    @abstractmethod
    def loss(self, batch_size: int) -> Tensor:
        """The loss on a fresh batch of ``batch_size`` examples (a 0-dim tensor)."""

    def train(self, n_steps: int, batch_size: int = 256, lr: float = 1e-3, seed: int | None = None,
              device: torch.device | str | None = None, progress: bool = True,
              description: str = "training", ema: float | None = None,
              lr_schedule: str = "linear", pause_after: int | None = None) -> TrainingHistory:
        r"""Run ``n_steps`` Adam steps; returns the :class:`TrainingHistory`.

        The learning rate decays over the run, which lowers the noise of the last steps at no
        cost: ``lr_schedule="linear"`` takes it down linearly to a tenth of ``lr``, ``"cosine"``
        along half a cosine, :math:`\tfrac12(1 + \cos(\pi i / n))`, to zero, so that the last
        steps barely move the weights (see :data:`LR_SCHEDULES`). The model is left in ``eval()`` mode.

        Nothing global changes unless asked: with ``seed`` given, Python, NumPy and torch are
        seeded with it first (:func:`~labs_lib.config.seed_everything`), so that a run repeats
        exactly; without it the random state is used as it is. With ``device`` given the model
        is moved there; without it the model trains where it already is.

        With ``ema`` (a decay such as 0.999), the model ends with the exponential moving
        average of its weights over the run, :math:`\bar\theta \leftarrow \text{ema}\,\bar\theta
        + (1 - \text{ema})\,\theta` after every step, instead of the last weights. The average
        over the last :math:`\approx 1/(1-\text{ema})` steps smooths out the noise of single
        minibatch steps, which a sampler would otherwise integrate into every trajectory.

        With ``pause_after=k`` the run stops after its first ``k`` steps, model in ``eval()`` mode
        to be looked at, and :meth:`resume` runs the rest: the same optimiser state and the same
        schedule over all ``n_steps``, so that a paused and resumed run takes exactly the steps of
        an uninterrupted one. (While paused, a model trained with ``ema`` holds its current
        weights; the average replaces them when the run ends.)
        """
        validate_positive_int(n_steps, "n_steps")
        validate_positive_int(batch_size, "batch_size")
        validate_positive(lr, "lr")
        if ema is not None and not (isinstance(ema, float) and 0 < ema < 1):
            raise ValueError(f"ema must be a decay strictly between 0 and 1 (e.g. 0.999) or None, got {ema!r}.")
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(map(repr, LR_SCHEDULES))}, got {lr_schedule!r}.")
        if pause_after is not None:
            validate_positive_int(pause_after, "pause_after")
            if pause_after >= n_steps:
                raise ValueError(f"pause_after must be fewer than the run's {n_steps} steps, got {pause_after}: "
                                 f"leave it out to train without a pause.")
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise TypeError(f"seed must be an int or None, got {type(seed).__name__}.")
            seed_everything(seed)
        if device is not None:
            # get_device checks the name and the device's availability, with a clear message.
            self.device = get_device(str(device))
            self.model.to(self.device)
        else:
            self.device = next(self.model.parameters()).device
        opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        factor = LR_SCHEDULES[lr_schedule]
        self._run = _Run(
            n_steps=n_steps, batch_size=batch_size, lr=lr, description=description, optimizer=opt,
            scheduler=torch.optim.lr_scheduler.LambdaLR(opt, lambda i: factor(i, n_steps)),
            averaged=(torch.optim.swa_utils.AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(ema))
                      if ema is not None else None),
            # Losses stay on the device until a progress update: a .item() per step would force a
            # synchronisation per step on a GPU.
            losses=torch.empty(n_steps, device=self.device))
        return self._advance(pause_after or n_steps, progress)

    def resume(self, n_steps: int | None = None, progress: bool = True) -> TrainingHistory:
        """Go on with a run paused by ``train(..., pause_after=k)``: the next ``n_steps`` steps, or all that are left.

        Returns the :class:`TrainingHistory` of the whole run so far (every step since ``train``).
        """
        run = self._run
        if run is None:
            raise RuntimeError("there is no run to resume: start one with train(n_steps, ..., pause_after=k).")
        left = run.n_steps - run.done
        if left == 0:
            raise RuntimeError(f"the run of {run.n_steps} steps has finished: start a new one with train(...).")
        if n_steps is not None:
            validate_positive_int(n_steps, "n_steps")
            if n_steps > left:
                raise ValueError(f"the run has {left} of its {run.n_steps} steps left, not {n_steps}.")
        return self._advance(n_steps or left, progress)

    def _advance(self, n_steps: int, progress: bool) -> TrainingHistory:
        """Run the next ``n_steps`` steps of the current run; the model ends in ``eval()`` mode."""
        run = self._run
        first, last = run.done, run.done + n_steps
        self.model.train()
        bar = tqdm(range(first, last), desc=run.description, disable=not progress, mininterval=0.5,
                   initial=first, total=run.n_steps)
        if hasattr(bar, "container"):  # a notebook's bar (a widget): labels of one width, so bars line up
            bar.container.children[0].layout.min_width = PROGRESS_LABEL_WIDTH
        start = time.perf_counter()
        for i in bar:
            run.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(run.batch_size)
            loss.backward()
            run.optimizer.step()
            run.scheduler.step()
            if run.averaged is not None:
                run.averaged.update_parameters(self.model)
            run.losses[i] = loss.detach()
            if (i + 1) % 100 == 0 or i + 1 == last:
                recent = run.losses[max(first, i - 99): i + 1]
                if not bool(torch.isfinite(recent).all()):
                    raise FloatingPointError(
                        f"the loss became NaN or infinite before step {i + 1}: lower the learning rate "
                        f"(lr = {run.lr:g}) or check the data for NaNs.")
                bar.set_postfix(loss=f"{float(recent.mean()):.4f}", refresh=False)
        run.seconds += time.perf_counter() - start
        run.done = last
        if last == run.n_steps and run.averaged is not None:
            with torch.no_grad():
                for p, p_avg in zip(self.model.parameters(), run.averaged.module.parameters()):
                    p.copy_(p_avg)
        self.model.eval()
        return TrainingHistory(losses=run.losses[:last].cpu().numpy(), seconds=run.seconds)


def _validate_loss_fn(loss_fn: object, call: str) -> Callable[..., Tensor]:
    if not callable(loss_fn) or isinstance(loss_fn, type):
        raise TypeError(f"loss_fn must be a function {call} returning a 0-dim tensor, "
                        f"got {type(loss_fn).__name__}.")
    return loss_fn


def _scalar_loss(value: object, loss_fn: Callable[..., Tensor]) -> Tensor:
    """``value`` if it is a 0-dim floating tensor that carries gradients; otherwise say what was expected."""
    name = getattr(loss_fn, "__name__", type(loss_fn).__name__)
    if not isinstance(value, Tensor) or value.ndim != 0 or not torch.is_floating_point(value):
        what = f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
        raise TypeError(f"{name} must return the batch's loss as a 0-dim floating tensor, got {what}: "
                        "average over the batch (.mean()) and do not call .item().")
    if torch.is_grad_enabled() and not value.requires_grad:  # (a loss evaluated under no_grad carries none)
        raise ValueError(f"{name} returned a loss that carries no gradient to the network: compute it from "
                         "the model's output without .detach(), torch.no_grad() or .item().")
    return value


@dataclass
class _Run:
    """The state of one training run between :meth:`Trainer.train` and its last :meth:`Trainer.resume`."""

    n_steps: int
    batch_size: int
    lr: float
    description: str
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    averaged: nn.Module | None
    losses: Tensor
    done: int = 0
    seconds: float = 0.0


class ConditionalFlowMatchingTrainer(Trainer):
    """Conditional flow matching on an :class:`~labs_lib.paths.AffinePath`.

    Args:
        model: a field network ``model(x, t)`` (e.g. :class:`~labs_lib.models.MLPField`).
        path: the probability path (e.g. ``AffinePath(CondOTScheduler())``).
        data: the data distribution :math:`p_{\\rm data}` (sampled at every step).
        source: :math:`p_{\\rm init}`; a standard Gaussian of the data's shape when ``None``.
        time_sampler: draws the batch's times, ``time_sampler(n, device)`` → shape ``(n,)`` in
            ``[0, 1]``: :func:`uniform_times` (the default) or :func:`logit_normal_times`, which
            spends more of the training on the middle of the path.
        loss_fn: the batch loss ``loss_fn(model, path, x_0, x_1, t)`` → a 0-dim tensor;
            :func:`~labs_lib.losses.cfm_loss` by default. Lab 05 passes the student's own loss
            once it has passed its check.
    """

    def __init__(self, model: nn.Module, path: AffinePath, data: Sampleable, source: Sampleable | None = None,
                 time_sampler: Callable[[int, torch.device], Tensor] = uniform_times,
                 loss_fn: Callable[..., Tensor] = cfm_loss):
        super().__init__(model)
        self.loss_fn = _validate_loss_fn(loss_fn, "loss_fn(model, path, x_0, x_1, t)")
        self._use_time_sampler(time_sampler)
        if not isinstance(path, AffinePath):
            raise TypeError(f"path must be an AffinePath, got {type(path).__name__}.")
        for name, dist in (("data", data), ("source", source)):
            if dist is not None and not isinstance(dist, Sampleable):
                raise TypeError(f"{name} must be a labs_lib Sampleable, got {type(dist).__name__}.")
        if source is not None and tuple(source.shape) != tuple(data.shape):
            raise ValueError(f"source samples have shape {source.shape} but data samples have shape {data.shape}.")
        self.path, self.data, self.source = path, data, source

    def loss(self, batch_size: int) -> Tensor:
        x_0, x_1 = self.draw(batch_size)
        t = self._draw_times(batch_size)
        return _scalar_loss(self.loss_fn(self.model, self.path, x_0, x_1, t), self.loss_fn)

    def draw(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """The batch's pairs ``(x_0, x_1)``, each ``(batch, ...)`` on the model's device: noise and data drawn
        independently, then paired by :meth:`couple`. (:class:`ReflowTrainer` draws fixed pairs instead.)"""
        x_1 = self.data.sample(batch_size).to(self.device)
        x_0 = torch.randn_like(x_1) if self.source is None else self.source.sample(batch_size).to(self.device)
        return self.couple(x_0, x_1)

    def couple(self, x_0: Tensor, x_1: Tensor) -> tuple[Tensor, Tensor]:
        """Pair the batch's noise and data samples (each ``(batch, ...)``): here, independently, as drawn.

        The one step a coupling overrides (see :class:`OTConditionalFlowMatchingTrainer`)."""
        return x_0, x_1


def cfm_training_loop(model: nn.Module, path: AffinePath, data: Sampleable, loss_fn: Callable[..., Tensor] = cfm_loss,
                      n_steps: int = 1000, batch_size: int = 256, lr: float = 1e-3) -> list[float]:
    r"""Conditional flow matching as one function: ``n_steps`` Adam steps on ``loss_fn``; the loss of every step.

    Step :math:`k = 0, 1, \dots` draws a batch of data :math:`x_1`, Gaussian noise :math:`x_0` and
    times :math:`t \sim U[0, 1]`, and takes a step with the learning rate
    :math:`\text{lr}\,(1 - 0.9\,k/n_{\rm steps})`, down linearly to a tenth. These are exactly the
    steps of ``ConditionalFlowMatchingTrainer(model, path, data, loss_fn=loss_fn).train(n_steps,
    batch_size, lr)`` on the random state as it is, which is what this runs. It is the function that
    Lab 05's training-loop exercise writes, and the lab's stand-in until the student's loop passes its
    check; the returned list has ``n_steps`` floats.
    """
    history = ConditionalFlowMatchingTrainer(model, path, data, loss_fn=loss_fn).train(
        n_steps, batch_size, lr, description="ll.cfm_training_loop")
    return history.losses.tolist()


class OTConditionalFlowMatchingTrainer(ConditionalFlowMatchingTrainer):
    r"""Conditional flow matching with the minibatch optimal-transport coupling (Lab 10).

    Overrides one step, :meth:`couple`: each batch's data samples are reordered by
    :func:`~labs_lib.coupling.ot_coupling`, the exact assignment minimising
    :math:`\sum_i \|x_0^{(i)} - x_1^{(\pi(i))}\|^2` (Pooladian et al. 2023, Tong et al. 2023). The
    marginals of noise and data are unchanged, so the learned field still carries the source to
    the data; its trajectories are straighter, the more so the larger the batch. The assignment is
    cubic in the batch size and runs on the CPU: keep batches to a few hundred.

    Arguments as :class:`ConditionalFlowMatchingTrainer`.
    """

    def couple(self, x_0: Tensor, x_1: Tensor) -> tuple[Tensor, Tensor]:
        return x_0, ot_coupling(x_0, x_1)


class ReflowTrainer(ConditionalFlowMatchingTrainer):
    r"""Conditional flow matching on fixed pairs: the training step of reflow (Liu et al. 2022; Lab 10).

    Overrides one step, :meth:`draw`: each batch is drawn from the pairs made by
    :func:`~labs_lib.coupling.reflow_pairs` (noise and the endpoint a trained flow carried it to), so a
    pair's noise and data are never separated. The regression target is the pair's chord
    :math:`x_1 - x_0` on the CondOT path, as in any conditional flow matching; since the pairs come from a
    deterministic map, the field it learns is straighter than the flow that made them.

    Args:
        model: the new field network (often a copy of the old one, fine-tuned).
        path: the probability path, usually ``AffinePath(CondOTScheduler())``.
        pairs: a :class:`~labs_lib.coupling.FixedPairs`, e.g. ``ll.reflow_pairs(old_field, x_0)``.
        time_sampler: as in :class:`ConditionalFlowMatchingTrainer`.
    """

    def __init__(self, model: nn.Module, path: AffinePath, pairs: FixedPairs,
                 time_sampler: Callable[[int, torch.device], Tensor] = uniform_times):
        if not isinstance(pairs, FixedPairs):
            raise TypeError(f"pairs must be a labs_lib FixedPairs, e.g. ll.reflow_pairs(field, x_0), "
                            f"got {type(pairs).__name__}.")
        super().__init__(model, path, pairs, time_sampler=time_sampler)

    def draw(self, batch_size: int) -> tuple[Tensor, Tensor]:
        x_0, x_1 = self.data.sample_pairs(batch_size)
        return x_0.to(self.device), x_1.to(self.device)


def _check_path_trainer(path: AffinePath, data: Sampleable, t_max: float) -> None:
    if not isinstance(path, AffinePath):
        raise TypeError(f"path must be an AffinePath, got {type(path).__name__}.")
    if not isinstance(data, Sampleable):
        raise TypeError(f"data must be a labs_lib Sampleable, got {type(data).__name__}.")
    if isinstance(t_max, bool) or not isinstance(t_max, (int, float)):
        raise TypeError(f"t_max must be a number in (0, 1), got {type(t_max).__name__}.")
    if not 0 < t_max < 1:
        raise ValueError(f"t_max must lie in (0, 1): the conditional score is infinite at t = 1, got {t_max}.")


class DenoisingScoreMatchingTrainer(Trainer):
    r"""Denoising score matching on a Gaussian path: regress the conditional score.

    With :math:`x_t = \alpha_t z + \beta_t\varepsilon`, the conditional score is
    :math:`-\varepsilon/\beta_t`, so the loss is

    .. math:: \mathbb E\,\lambda_t \big\| s^\theta_t(x_t) + \varepsilon/\beta_t \big\|^2,
              \qquad t \sim U[0, t_{\max}].

    The target's size grows like :math:`1/\beta_t \to \infty` as :math:`t \to 1`: ``t_max``
    stops short of the end, and ``weighting="beta2"`` (:math:`\lambda_t = \beta_t^2`) turns the
    loss into :math:`\mathbb E\|\beta_t s^\theta_t(x_t) + \varepsilon\|^2`, bounded at every ``t``.

    ``loss_fn(model, path, x_0, x_1, t)`` → a 0-dim tensor replaces the library's
    :func:`~labs_lib.losses.dsm_loss` (Lab 06 passes the student's own once it has passed its
    check); it carries its own weighting, so it goes with ``weighting="none"`` only.
    """

    def __init__(self, model: nn.Module, path: AffinePath, data: Sampleable, t_max: float = 0.99,
                 weighting: str = "none", loss_fn: Callable[..., Tensor] | None = None):
        super().__init__(model)
        _check_path_trainer(path, data, t_max)
        if weighting not in DSM_WEIGHTINGS:
            raise ValueError(f"weighting must be 'none' or 'beta2', got {weighting!r}.")
        if loss_fn is not None:
            _validate_loss_fn(loss_fn, "loss_fn(model, path, x_0, x_1, t)")
            if weighting != "none":
                raise ValueError(f"a loss_fn carries its own weighting: leave weighting='none' (got {weighting!r}), "
                                 "or leave out loss_fn to train with ll.dsm_loss and this weighting.")
        self.path, self.data, self.t_max, self.weighting, self.loss_fn = path, data, t_max, weighting, loss_fn

    def loss(self, batch_size: int) -> Tensor:
        x_1 = self.data.sample(batch_size).to(self.device)
        x_0 = torch.randn_like(x_1)
        t = self.t_max * torch.rand(batch_size, device=self.device)
        if self.loss_fn is None:
            return dsm_loss(self.model, self.path, x_0, x_1, t, self.weighting)
        return _scalar_loss(self.loss_fn(self.model, self.path, x_0, x_1, t), self.loss_fn)


class NoisePredictionTrainer(Trainer):
    r"""ε-prediction (the DDPM parameterisation): regress the noise,
    :math:`\mathbb E\|\varepsilon^\theta_t(x_t) - \varepsilon\|^2`.

    The score follows as :math:`s_t(x) = -\varepsilon^\theta_t(x)/\beta_t`
    (:meth:`~labs_lib.paths.AffinePath.noise_to_score`); the loss equals denoising score matching
    with weighting :math:`\beta_t^2`.
    """

    def __init__(self, model: nn.Module, path: AffinePath, data: Sampleable, t_max: float = 0.99):
        super().__init__(model)
        _check_path_trainer(path, data, t_max)
        self.path, self.data, self.t_max = path, data, t_max

    def loss(self, batch_size: int) -> Tensor:
        x_1 = self.data.sample(batch_size).to(self.device)
        x_0 = torch.randn_like(x_1)
        t = self.t_max * torch.rand(batch_size, device=self.device)
        return noise_prediction_loss(self.model, self.path, x_0, x_1, t)


class CFGTrainer(Trainer):
    r"""Guided conditional flow matching with label dropping (probability ``eta``).

    Args:
        model: a guided field ``model(x, t, y)`` with a row for the null label
            (e.g. :class:`~labs_lib.unet.UNet` or :class:`~labs_lib.models.LabelledMLPField`).
        path: the probability path.
        data: labelled data (e.g. :class:`~labs_lib.digits.Digits`).
        eta: probability of replacing a label by the null label.
        loss_fn: the batch loss ``loss_fn(model, path, x_0, x_1, t, y, drop_mask, null_label)`` → a
            0-dim tensor; :func:`~labs_lib.losses.cfg_loss` by default (Lab 07 passes the student's
            own once it has passed its check).
        time_sampler: draws the batch's times, as in :class:`ConditionalFlowMatchingTrainer`:
            :func:`uniform_times` by default. Both generators of Lab 08 use a logit-normal law leaning
            towards the data end, ``logit_normal_times(n, device, mean=0.5)``.

    The null label is the model's own (``model.null_label``), so that the field that samples
    from the model later uses the same index.
    """

    def __init__(self, model: nn.Module, path: AffinePath, data: LabelledSampleable, eta: float = 0.1,
                 loss_fn: Callable[..., Tensor] = cfg_loss,
                 time_sampler: Callable[[int, torch.device], Tensor] = uniform_times):
        super().__init__(model)
        self.loss_fn = _validate_loss_fn(loss_fn, "loss_fn(model, path, x_0, x_1, t, y, drop_mask, null_label)")
        self._use_time_sampler(time_sampler)
        self.null_label = null_label_of(model)
        if not isinstance(path, AffinePath):
            raise TypeError(f"path must be an AffinePath, got {type(path).__name__}.")
        if not isinstance(data, LabelledSampleable):
            raise TypeError(f"data must be a LabelledSampleable (images with labels), got {type(data).__name__}.")
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0 <= eta <= 1:
            raise ValueError(f"eta is a probability and must lie in [0, 1], got {eta!r}.")
        if data.num_classes != self.null_label:
            raise ValueError(f"the data has {data.num_classes} classes but the model's null label is "
                             f"{self.null_label}: build the model with num_classes={data.num_classes}.")
        self.path, self.data, self.eta = path, data, float(eta)

    def loss(self, batch_size: int) -> Tensor:
        x_1, y = self.data.sample_labelled(batch_size)
        x_1, y = x_1.to(self.device), y.to(self.device)
        x_0 = torch.randn_like(x_1)
        t = self._draw_times(batch_size)
        drop_mask = torch.rand(batch_size, device=self.device) < self.eta
        return _scalar_loss(self.loss_fn(self.model, self.path, x_0, x_1, t, y, drop_mask, self.null_label),
                            self.loss_fn)


class AutoencoderTrainer(Trainer):
    r"""Trains an :class:`~labs_lib.autoencoder.Autoencoder` (or VAE) on images, then measures its latent normalisation.

    The loss is :func:`~labs_lib.autoencoder.autoencoder_loss`,
    :math:`\mathbb E\|x - D(z)\|^2 + \beta\,\mathrm{KL}`, on a batch drawn with replacement at
    every step. When the run has taken all its steps (after :meth:`train`, or after the
    :meth:`resume` that ends a paused run), the shift and scale of the latents are measured on
    **all** the training images (:meth:`~labs_lib.autoencoder.Autoencoder.measure_normalisation`),
    so that ``model.encode`` is ready for a latent flow.

    Args:
        model: the autoencoder.
        data: the training images: :class:`~labs_lib.digits.LabelledImages` (e.g.
            :class:`~labs_lib.digits.Digits`; the labels are not used) or a tensor ``(N, *model.image_shape)``.
        beta: the weight of the KL term (a VAE only; 0 for a plain autoencoder).
    """

    def __init__(self, model: Autoencoder, data: LabelledImages | Tensor, beta: float = 0.0):
        if not isinstance(model, Autoencoder):
            raise TypeError(f"model must be an Autoencoder, got {type(model).__name__}.")
        super().__init__(model)
        images = data.images if isinstance(data, LabelledImages) else as_tensor(data, "data")
        model._check_images(images)
        if images.shape[0] < 2:
            raise ValueError(f"the training set needs at least 2 images, got {images.shape[0]}.")
        validate_positive(beta, "beta", allow_zero=True)
        if beta > 0 and not model.variational:
            raise ValueError(f"beta = {beta:g} weighs a KL term, which only a VAE has: build the model with "
                             "variational=True, or use beta=0.")
        self.images, self.beta = images, float(beta)

    def loss(self, batch_size: int) -> Tensor:
        idx = torch.randint(self.images.shape[0], (batch_size,))
        return autoencoder_loss(self.model, self.images[idx].to(self.device), self.beta)

    def _advance(self, n_steps: int, progress: bool) -> TrainingHistory:
        history = super()._advance(n_steps, progress)
        if self._run is not None and self._run.done == self._run.n_steps:
            self.model.measure_normalisation(self.images)
        return history
