r"""Latent spaces: a small autoencoder (convolutional or dense, optionally variational) and flow matching in
its latent space.

**Why latents.** A flow model spends its capacity on every coordinate of its samples. An image
holds far fewer *degrees of freedom* than pixels: neighbouring pixels move together, most of an
8×8 digit's 64 pixels are background. A **compressor**, trained beforehand and then frozen, maps
an image :math:`x` to a small latent :math:`z = E(x)` and back, :math:`\hat x = D(z)`; the flow
learns the distribution of the latents, and a sample is decoded at the end. The decoder sets a
**reconstruction floor**: no latent sample can decode to a better image than :math:`D(E(x))`.

**The networks.** Two coders, one class. The default is **convolutional**, the compressor of latent
diffusion: the same stroke detector applies everywhere in the image, and the latent stays a small
*image*. Each stride-2 convolution halves the height and width; a 1×1 convolution at the bottom maps
to ``latent_channels``. The default, ``channels=(16, 32, 32)``, halves twice: an 8×8 digit becomes a
latent image of shape ``(latent_channels, 2, 2)``, so ``latent_channels = 1, 2, 4`` give latents of
4, 8, 16 numbers. With ``hidden=(256, 256)`` the coder is **dense** (an MLP on the 64 pixels) and the
latent a vector ``(latent_channels, 1, 1)``. On 8×8 digits the dense coder is the better compressor:
measured once (seed 0, 1 thread, lr 2e-3 cosine, test half), the dense coder with an 8-number latent
(3,000 steps, 18 s) reconstructs at MSE 0.047 and its reconstructions pass the digit yardstick (spread
0.95), while the convolutional one with 8 numbers (3,000 steps, 71 s) reconstructs at 0.047 but blurs
(spread 0.87 ✗), and even with 16 numbers (1,500 steps, 39 s; MSE 0.029) its spread is 0.91 ✗. A 2×2
latent has too little room for the convolutions' locality to pay; on larger images it is the other
way round.

**Why a latent image.** The latent keeps the layout ``(channels, height, width)`` of an image, so
everything built for images works on it unchanged: :class:`~labs_lib.digits.LabelledImages` holds
it, :class:`~labs_lib.training.CFGTrainer` trains a guided field on it,
:func:`~labs_lib.guidance.generate_guided` samples it (``shape=autoencoder.latent_shape``). The
latent generator can be either :class:`~labs_lib.models.LabelledMLPField` (it flattens any shape)
or :class:`~labs_lib.dit.DiT` with ``patch_size=1`` (one token per latent pixel: four tokens).
The MLP is the natural choice: a 2×2 (or 1×1) latent has too little layout for attention to exploit,
and the MLP is several times cheaper per step (measured once, seed 0, 1 thread, 8-number latent:
1,500 steps of the MLP in 6 s against 400 of the DiT in 13 s). ``channels`` of length 4 halves three
times to a ``(latent_channels, 1, 1)`` latent, a plain vector.

**The VAE.** With ``variational=True`` the encoder outputs a mean :math:`\mu(x)` and a log-variance
:math:`\log\sigma^2(x)` per latent coordinate; training decodes the reparameterised sample
:math:`z = \mu + \sigma\odot\varepsilon`, :math:`\varepsilon\sim\mathcal N(0, I)` (differentiable in
:math:`\mu, \sigma`), and the loss adds :math:`\beta` times the KL divergence to :math:`\mathcal N(0, I)`,

.. math:: \mathrm{KL}\big(\mathcal N(\mu, \operatorname{diag}\sigma^2)\,\|\,\mathcal N(0, I)\big)
          = \tfrac12 \textstyle\sum_j \big(\mu_j^2 + \sigma_j^2 - 1 - \log\sigma_j^2\big).

The KL term keeps the latent cloud compact and smooth (nearby latents decode to similar images),
which makes it easier to model. :meth:`Autoencoder.encode` returns the **mean**: the flow learns
the distribution of :math:`\mu(x)`, and a generated latent is decoded as it is.

**Latent normalisation.** The flow starts from :math:`\mathcal N(0, I)`, so its data should have
about that size: raw latents can be centred far from 0 and have any spread (the measured
figures of a trained model are in :meth:`Autoencoder.measure_normalisation`). After training, one
shift :math:`m` and one scale :math:`s` are measured on the encoded training images,
:math:`m = \operatorname{mean}(z)`, :math:`s = \operatorname{std}(z)` over every image and
coordinate, and ``encode(x)`` returns :math:`(z - m)/s`, ``decode`` undoes it. (One number each,
as the scale factor of Stable Diffusion and the shift and scale of SD3: the shape of the latent
cloud is kept, only its size and place change.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._validation import as_tensor, validate_positive, validate_positive_int
from .digits import LabelledImages
from .guidance import generate_guided


def _positive_ints(values: Sequence[int], name: str) -> list[int]:
    values = list(values)
    if not values or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in values):
        raise ValueError(f"{name} must be a non-empty list of positive integers, got {values!r}.")
    return values


def _conv_coder(image_shape: tuple[int, int, int], latent_channels: int, out: int,
                channels: Sequence[int]) -> tuple[tuple[int, int, int], nn.Module, nn.Module]:
    """The convolutional encoder (``out`` channels at the bottom) and decoder, and the latent shape."""
    channels = _positive_ints(channels, "channels")
    factor = 2 ** (len(channels) - 1)
    if image_shape[1] % factor or image_shape[2] % factor:
        raise ValueError(f"height and width {image_shape[1:]} must be divisible by {factor} to be halved "
                         f"{len(channels) - 1} times (len(channels) - 1): use fewer channels entries.")
    act = nn.SiLU
    enc: list[nn.Module] = [nn.Conv2d(image_shape[0], channels[0], 3, padding=1), act()]
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        enc += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), act()]
    enc.append(nn.Conv2d(channels[-1], out, 1))
    dec: list[nn.Module] = [nn.Conv2d(latent_channels, channels[-1], 1), act()]
    for c_in, c_out in zip(channels[:0:-1], channels[-2::-1]):
        # nearest upsampling then a convolution (a transposed convolution leaves checkerboard artefacts)
        dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1), act()]
    # no output activation: a tanh would saturate exactly where most pixels lie (the background at -1)
    dec.append(nn.Conv2d(channels[0], image_shape[0], 3, padding=1))
    latent_shape = (latent_channels, image_shape[1] // factor, image_shape[2] // factor)
    return latent_shape, nn.Sequential(*enc), nn.Sequential(*dec)


def _dense_coder(image_shape: tuple[int, int, int], latent_channels: int, out: int,
                 hidden: Sequence[int]) -> tuple[tuple[int, int, int], nn.Module, nn.Module]:
    """A dense encoder (``out`` numbers, shaped ``(out, 1, 1)``) and decoder, and the latent shape."""
    hidden = _positive_ints(hidden, "hidden")
    pixels = image_shape[0] * image_shape[1] * image_shape[2]
    enc: list[nn.Module] = [nn.Flatten()]
    for w_in, w_out in zip([pixels, *hidden], hidden):
        enc += [nn.Linear(w_in, w_out), nn.SiLU()]
    enc += [nn.Linear(hidden[-1], out), nn.Unflatten(1, (out, 1, 1))]
    dec: list[nn.Module] = [nn.Flatten()]
    for w_in, w_out in zip([latent_channels, *hidden[::-1]], hidden[::-1]):
        dec += [nn.Linear(w_in, w_out), nn.SiLU()]
    dec += [nn.Linear(hidden[0], pixels), nn.Unflatten(1, image_shape)]
    return (latent_channels, 1, 1), nn.Sequential(*enc), nn.Sequential(*dec)


@dataclass
class AutoencoderOutput:
    """What :meth:`Autoencoder.forward` returns for a batch ``x`` of shape ``(batch, *image_shape)``.

    Attributes:
        reconstruction: :math:`D(z)`, shape ``(batch, *image_shape)``.
        z: the latent that was decoded (raw, not normalised), shape ``(batch, *latent_shape)``: the
            reparameterised sample for a VAE in training mode, the mean otherwise.
        mean: the encoder's mean :math:`\\mu(x)`, shape ``(batch, *latent_shape)``.
        log_var: the encoder's :math:`\\log\\sigma^2(x)`, same shape; ``None`` for a plain autoencoder.
    """

    reconstruction: Tensor
    z: Tensor
    mean: Tensor
    log_var: Tensor | None


def gaussian_kl(mean: Tensor, log_var: Tensor) -> Tensor:
    r"""KL divergence from :math:`\mathcal N(\mu, \operatorname{diag}\sigma^2)` to :math:`\mathcal N(0, I)`,
    per example.

    .. math:: \tfrac12 \textstyle\sum_j \big(\mu_j^2 + e^{\log\sigma^2_j} - 1 - \log\sigma^2_j\big)

    Args:
        mean, log_var: shape ``(batch, ...)``, the same.

    Returns:
        Shape ``(batch,)``: the sum over every coordinate of an example.
    """
    mean, log_var = as_tensor(mean, "mean"), as_tensor(log_var, "log_var")
    if mean.shape != log_var.shape or mean.ndim < 2:
        raise ValueError(f"mean and log_var must have one shape (batch, ...), got {tuple(mean.shape)} "
                         f"and {tuple(log_var.shape)}.")
    return 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).flatten(1).sum(1)


class Autoencoder(nn.Module):
    r"""A convolutional autoencoder :math:`x \mapsto z = E(x) \mapsto \hat x = D(z)`, optionally a VAE.

    Args:
        image_shape: ``(channels, height, width)`` of the images, e.g. ``(1, 8, 8)`` for the digits.
        latent_channels: channels of the latent image.
        channels: feature channels per resolution, e.g. ``(16, 32, 32)``: full resolution, then
            one halving per further entry, so ``height`` and ``width`` must be divisible by
            ``2 ** (len(channels) - 1)``; the latent is ``(latent_channels, height / 2^k, width / 2^k)``.
        variational: a VAE (mean and log-variance, reparameterised samples, a KL term).
        hidden: hidden widths of a **dense** encoder and decoder (e.g. ``(256, 256)``) in place of the
            convolutions (``channels`` is then not used); the latent is a vector, ``(latent_channels, 1, 1)``.

    Attributes:
        latent_shape: the shape of one latent, e.g. ``(4, 2, 2)``.
        latent_shift, latent_scale: the latent normalisation (0-dim buffers; 0 and 1 until
            :meth:`measure_normalisation` has run, which :class:`~labs_lib.training.AutoencoderTrainer`
            does at the end of its training).

    Example::

        ae = Autoencoder((1, 8, 8), latent_channels=2)
        AutoencoderTrainer(ae, Digits("train")).train(1000, batch_size=128, seed=0)
        z = ae.encode(images)          # (batch, 2, 2, 2), about unit variance
        images_back = ae.decode(z)     # (batch, 1, 8, 8)
    """

    def __init__(self, image_shape: Sequence[int] = (1, 8, 8), latent_channels: int = 4,
                 channels: Sequence[int] = (16, 32, 32), variational: bool = False,
                 hidden: Sequence[int] | None = None):
        super().__init__()
        image_shape = tuple(image_shape)
        if len(image_shape) != 3 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in image_shape):
            raise ValueError(f"image_shape must be (channels, height, width) of positive integers, "
                             f"got {image_shape!r}.")
        validate_positive_int(latent_channels, "latent_channels")
        if not isinstance(variational, bool):
            raise TypeError(f"variational must be True or False, got {variational!r}.")
        out = latent_channels * (2 if variational else 1)  # a VAE's encoder gives a mean and a log-variance
        if hidden is None:
            self.latent_shape, self.encoder, self.decoder = _conv_coder(image_shape, latent_channels, out, channels)
        else:
            self.latent_shape, self.encoder, self.decoder = _dense_coder(image_shape, latent_channels, out, hidden)
        self.image_shape, self.channels, self.variational = image_shape, tuple(channels), variational
        self.hidden = None if hidden is None else tuple(hidden)

        self.register_buffer("latent_shift", torch.tensor(0.0))
        self.register_buffer("latent_scale", torch.tensor(1.0))
        self.register_buffer("normalisation_measured", torch.tensor(False))

    # --- checks ------------------------------------------------------------------------------

    @staticmethod
    def _check_batch(x: object, name: str, shape: tuple[int, ...], kind: str) -> Tensor:
        """``x`` as a floating-point tensor ``(batch, *shape)``; else an error saying what was expected."""
        x = as_tensor(x, name)
        if tuple(x.shape[1:]) != shape or x.ndim != 1 + len(shape):
            hint = " Did you forget the batch axis? Try x.unsqueeze(0)." if tuple(x.shape) == shape else ""
            raise ValueError(f"{name} must have shape (batch, {', '.join(map(str, shape))}) ({kind}), "
                             f"got {tuple(x.shape)}.{hint}")
        if not torch.is_floating_point(x):
            raise TypeError(f"{name} must be a floating-point tensor ({kind}), got {x.dtype}.")
        return x

    def _check_images(self, x: object) -> Tensor:
        return self._check_batch(x, "x", self.image_shape, "images in [-1, 1]")

    def _check_latents(self, z: object) -> Tensor:
        return self._check_batch(z, "z", self.latent_shape, "the latent shape")

    def _on_my_device(self, x: Tensor, name: str) -> Tensor:
        """``x`` unchanged if it is on the autoencoder's device; else an error that names the move.

        PyTorch's own message names an ``addmm`` argument rather than the tensor to move; the training
        set and :meth:`measure_normalisation` may stay on the CPU (they are moved batch by batch).
        """
        device = self.latent_scale.device
        if x.device != device:
            raise ValueError(f"{name} is on {x.device} but the autoencoder is on {device}: "
                             f"move it there first, e.g. {name}.to({str(device)!r}).")
        return x

    def _check_measured(self, what: str) -> None:
        if not bool(self.normalisation_measured):
            raise RuntimeError(f"{what} uses the latent normalisation, which has not been measured yet: call "
                               "autoencoder.measure_normalisation(training_images) (AutoencoderTrainer does it "
                               "at the end of training), or pass normalise=False for raw latents.")

    # --- the maps ----------------------------------------------------------------------------

    def encode_distribution(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """The encoder's raw output: the mean ``(batch, *latent_shape)`` and, for a VAE, the log-variance
        of the same shape (``None`` for a plain autoencoder)."""
        h = self.encoder(self._on_my_device(self._check_images(x), "x"))
        if not self.variational:
            return h, None
        mean, log_var = h.chunk(2, dim=1)
        # clamped so that exp(log_var) can neither overflow nor vanish in an early, wild step
        return mean, log_var.clamp(-30.0, 20.0)

    def encode(self, x: Tensor, normalise: bool = True) -> Tensor:
        r"""The latent of ``x`` ``(batch, *image_shape)``: the mean :math:`\mu(x)`, shape ``(batch, *latent_shape)``.

        With ``normalise`` (the default) it is :math:`(\mu(x) - m) / s`, the scale the flow works at.
        """
        mean, _ = self.encode_distribution(x)
        if not normalise:
            return mean
        self._check_measured("encode(x, normalise=True)")
        return (mean - self.latent_shift) / self.latent_scale

    def decode(self, z: Tensor, normalised: bool = True) -> Tensor:
        """Images ``(batch, *image_shape)`` from latents ``z`` ``(batch, *latent_shape)``.

        With ``normalised`` (the default) ``z`` is a normalised latent (what :meth:`encode` and a
        latent flow produce); ``normalised=False`` takes a raw one.
        """
        z = self._on_my_device(self._check_latents(z), "z")
        if normalised:
            self._check_measured("decode(z, normalised=True)")
            z = z * self.latent_scale + self.latent_shift
        return self.decoder(z)

    def forward(self, x: Tensor) -> AutoencoderOutput:
        """Encode and decode ``x`` ``(batch, *image_shape)`` (raw latents; see :class:`AutoencoderOutput`)."""
        mean, log_var = self.encode_distribution(x)
        z = mean
        if log_var is not None and self.training:
            z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)  # the reparameterisation trick
        return AutoencoderOutput(reconstruction=self.decoder(z), z=z, mean=mean, log_var=log_var)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """:math:`D(\\mu(x))`, shape ``(batch, *image_shape)``: what the latent keeps of ``x``."""
        return self.decoder(self.encode(x, normalise=False))

    @torch.no_grad()
    def measure_normalisation(self, images: Tensor, batch_size: int = 1024) -> tuple[float, float]:
        """Measure and store the latent shift and scale on ``images`` ``(N, *image_shape)``; returns ``(shift, scale)``.

        The shift is the mean and the scale the standard deviation of every coordinate of the
        encoded means :math:`\\mu(x)` of all the images, so that ``encode(images)`` has mean 0 and
        variance 1 over its coordinates.

        Why a shift as well as a scale: measured on the digits' training half after 600 steps
        (seeds 0-2), a plain autoencoder's latents sat at a mean of -0.51 to +0.70 with a spread
        of 1.6 to 2.5, far from the flow's source N(0, I); a VAE's (beta = 0.1) at |mean| < 0.08,
        spread 0.87 to 1.21, as its KL term pulls them towards N(0, I).
        """
        images = self._check_images(images)
        validate_positive_int(batch_size, "batch_size")
        if images.shape[0] < 2:
            raise ValueError(f"measuring a spread needs at least 2 images, got {images.shape[0]}.")
        was_training = self.training
        self.eval()
        try:
            device = self.latent_scale.device
            z = torch.cat([self.encode(images[i:i + batch_size].to(device), normalise=False)
                           for i in range(0, images.shape[0], batch_size)]).double()
        finally:
            self.train(was_training)
        shift, scale = float(z.mean()), float(z.std())
        if not (torch.isfinite(z).all() and scale > 0):
            raise FloatingPointError(f"the encoded images are not finite or all equal (std {scale}): the latent "
                                     "normalisation cannot be measured. Check the images and the training.")
        self.latent_shift.fill_(shift)
        self.latent_scale.fill_(scale)
        self.normalisation_measured.fill_(True)
        return shift, scale

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def autoencoder_loss(model: Autoencoder, x: Tensor, beta: float = 0.0) -> Tensor:
    r"""The autoencoder's loss on one batch ``x`` ``(batch, *image_shape)`` (0-dim).

    .. math:: \mathcal L = \mathbb E_x\big[\|x - D(z)\|^2 + \beta\,\mathrm{KL}(q(z\mid x)\,\|\,\mathcal N(0, I))\big],

    summed over a sample's coordinates and averaged over the batch, like every loss of
    :mod:`labs_lib.losses`. For a VAE whose decoder is :math:`\mathcal N(D(z), \sigma^2 I)`, this
    is :math:`2\sigma^2` times the negative evidence lower bound (up to a constant) when
    :math:`\beta = 2\sigma^2`: a small :math:`\beta` trusts the pixels more than the prior. A plain
    autoencoder takes ``beta = 0``.
    """
    if not isinstance(model, Autoencoder):
        raise TypeError(f"model must be an Autoencoder, got {type(model).__name__}.")
    validate_positive(beta, "beta", allow_zero=True)
    if beta > 0 and not model.variational:
        raise ValueError(f"beta = {beta:g} weighs a KL term, which only a VAE has: build the model with "
                         "variational=True, or use beta=0.")
    out = model(x)
    loss = (out.reconstruction - x).pow(2).flatten(1).sum(1).mean()
    if out.log_var is not None and beta > 0:
        loss = loss + beta * gaussian_kl(out.mean, out.log_var).mean()
    return loss


@torch.no_grad()
def reconstruction_mse(model: Autoencoder, images: Tensor, batch_size: int = 1024) -> float:
    """Mean squared error per pixel of :math:`D(\\mu(x))` against ``images`` ``(N, *image_shape)``: the
    reconstruction floor."""
    was_training = model.training
    model.eval()
    try:
        device = model.latent_scale.device
        total = sum(float((model.reconstruct(images[i:i + batch_size].to(device)) - images[i:i + batch_size].to(device))
                          .pow(2).sum()) for i in range(0, images.shape[0], batch_size))
    finally:
        model.train(was_training)
    return total / images.numel()


class LatentImages(LabelledImages):
    """The labelled images of ``data``, encoded once into normalised latents: the data of a latent flow.

    A :class:`~labs_lib.digits.LabelledImages` whose "images" are the latents
    ``autoencoder.encode(x)`` of shape ``(N, *autoencoder.latent_shape)``, with the same labels,
    so that the classifier-free guidance of Lab 07 runs in latent space unchanged::

        latents = LatentImages(ae, Digits("train"))
        CFGTrainer(field, path, latents).train(...)
        images = generate_latent_guided(field, ae, labels, guidance_scale=2.0)

    The latents are the encoder's means, computed once (the autoencoder is frozen: it is trained
    beforehand and not changed by the flow's training).

    Args:
        autoencoder: a trained :class:`Autoencoder` whose normalisation has been measured.
        data: labelled images (e.g. :class:`~labs_lib.digits.Digits`).
        device: where samples are returned.
    """

    def __init__(self, autoencoder: Autoencoder, data: LabelledImages, device: torch.device | str | None = None,
                 batch_size: int = 1024):
        if not isinstance(autoencoder, Autoencoder):
            raise TypeError(f"autoencoder must be an Autoencoder, got {type(autoencoder).__name__}.")
        if not isinstance(data, LabelledImages):
            raise TypeError(f"data must be LabelledImages (e.g. Digits('train')), got {type(data).__name__}.")
        autoencoder._check_measured("LatentImages")
        was_training = autoencoder.training
        autoencoder.eval()
        try:
            with torch.no_grad():
                ae_device = autoencoder.latent_scale.device
                latents = torch.cat([autoencoder.encode(data.images[i:i + batch_size].to(ae_device)).cpu()
                                     for i in range(0, len(data), batch_size)])
        finally:
            autoencoder.train(was_training)
        super().__init__(latents, data.labels, data.num_classes, device if device is not None else data.device)

    def to(self, device: torch.device | str) -> LabelledImages:
        """The same latents, returning their samples on ``device``."""
        return LabelledImages(self.images, self.labels, self.num_classes, device)


@torch.no_grad()
def generate_latent_guided(model: nn.Module, autoencoder: Autoencoder, labels: Tensor, guidance_scale: float,
                           n_steps: int = 50, method: str = "euler", seed: int = 0,
                           device: torch.device | str | None = None) -> Tensor:
    """Sample latents with :func:`~labs_lib.guidance.generate_guided` and decode them: images ``(n, *image_shape)``.

    ``model`` is a guided field on normalised latents (trained on :class:`LatentImages`); the
    latents are ``(n, *autoencoder.latent_shape)``, decoded by ``autoencoder.decode``.
    """
    if not isinstance(autoencoder, Autoencoder):
        raise TypeError(f"autoencoder must be an Autoencoder, got {type(autoencoder).__name__}.")
    z = generate_guided(model, labels, guidance_scale, shape=autoencoder.latent_shape, n_steps=n_steps,
                        method=method, seed=seed, device=device)
    was_training = autoencoder.training
    autoencoder.eval()
    try:
        return autoencoder.decode(z.to(autoencoder.latent_scale.device))
    finally:
        autoencoder.train(was_training)
