r"""A small U-Net for label-conditioned fields on images: :math:`(x, t, y) \mapsto` an image of ``x``'s shape.

The network has three stages around one idea, *compress, process, expand, and do not forget*:

* the **encoder** applies residual blocks at full resolution, then halves the height and width and
  doubles the channels, once per level: fewer, richer pixels that see a wider neighbourhood;
* the **midcoder** processes the coarsest representation;
* the **decoder** mirrors the encoder, doubling the resolution back; at each level it
  concatenates the encoder's features of the same resolution (a **skip connection**), so the
  fine detail lost by downsampling is handed straight across the "U".

Every residual block also receives an **embedding** of the time and the label: Fourier features of
:math:`t` (:class:`~labs_lib.models.FourierTime`) through a small MLP, plus a learned vector per label
(``num_classes + 1`` rows: the last row is the null label :math:`\varnothing` of classifier-free
guidance). The block adds it, one number per channel, to its feature maps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._validation import as_tensor, validate_positive_int
from .models import FourierTime
from .times import batch_times


def _groups(channels: int) -> int:
    """Groups for GroupNorm: 8 when they divide ``channels``, else the largest divisor ≤ 8."""
    return max(g for g in range(1, 9) if channels % g == 0)


class ResidualBlock(nn.Module):
    r"""Two 3×3 convolutions with an embedding added in between, plus a shortcut:
    :math:`x + F(x, e)` (a 1×1 convolution matches the channels when they change).

    Args:
        channels_in, channels_out: channels of the input and output feature maps.
        emb_dim: size of the time-and-label embedding.
    """

    def __init__(self, channels_in: int, channels_out: int, emb_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(channels_in), channels_in)
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, channels_out)
        self.norm2 = nn.GroupNorm(_groups(channels_out), channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1)
        self.shortcut = nn.Identity() if channels_in == channels_out else nn.Conv2d(channels_in, channels_out, 1)
        self.act = nn.SiLU()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """``x`` of shape ``(batch, channels_in, h, w)``, ``emb`` ``(batch, emb_dim)``
        → ``(batch, channels_out, h, w)``."""
        h = self.conv1(self.act(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]  # one shift per channel, the same at every pixel
        h = self.conv2(self.act(self.norm2(h)))
        return h + self.shortcut(x)


class Embedding(nn.Module):
    """Time and label embedding: ``MLP(FourierTime(t)) + table[y]``, shape ``(batch, emb_dim)``."""

    def __init__(self, num_classes: int, emb_dim: int, n_frequencies: int = 8):
        super().__init__()
        self.time = FourierTime(n_frequencies)
        self.time_mlp = nn.Sequential(nn.Linear(self.time.dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label = nn.Embedding(num_classes + 1, emb_dim)  # the last row is the null label

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        return self.time_mlp(self.time(t)) + self.label(y)


class UNet(nn.Module):
    r"""A U-Net field :math:`u^\theta_t(x \mid y)` on images of shape ``(channels, height, width)``.

    Args:
        num_classes: number of real labels; label ``num_classes`` is the null label :math:`\varnothing`.
        image_channels: channels of the images (1 for grey scale).
        channels: feature channels per resolution level, e.g. ``(32, 64)``: one downsampling per
            extra entry, so ``height`` and ``width`` must be divisible by ``2 ** (len(channels) - 1)``.
        blocks_per_level: residual blocks per level in the encoder and in the decoder.
        emb_dim: size of the time-and-label embedding.
    """

    def __init__(self, num_classes: int = 10, image_channels: int = 1, channels: Sequence[int] = (32, 64),
                 blocks_per_level: int = 1, emb_dim: int = 64, n_frequencies: int = 8):
        super().__init__()
        self.num_classes = validate_positive_int(num_classes, "num_classes")
        self.image_channels = validate_positive_int(image_channels, "image_channels")
        validate_positive_int(blocks_per_level, "blocks_per_level")
        validate_positive_int(emb_dim, "emb_dim")
        channels = list(channels)
        if not channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels):
            raise ValueError(f"channels must be a non-empty list of positive integers, got {channels!r}.")
        self.channels, self.null_label = tuple(channels), num_classes
        self.embedding = Embedding(num_classes, emb_dim, n_frequencies)
        self.stem = nn.Conv2d(image_channels, channels[0], 3, padding=1)

        # Encoder: blocks at each level, then a strided convolution to the next (coarser) level.
        self.encoder = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for i, c in enumerate(channels):
            self.encoder.append(nn.ModuleList([ResidualBlock(c, c, emb_dim) for _ in range(blocks_per_level)]))
            if i + 1 < len(channels):
                self.downsample.append(nn.Conv2d(c, channels[i + 1], 3, stride=2, padding=1))
        self.midcoder = ResidualBlock(channels[-1], channels[-1], emb_dim)
        # Decoder: at each level (coarsest first) concatenate the skip, run blocks, then upsample.
        self.decoder = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(channels))):
            c = channels[i]
            blocks = [ResidualBlock(2 * c, c, emb_dim)] + [ResidualBlock(c, c, emb_dim)
                                                           for _ in range(blocks_per_level - 1)]
            self.decoder.append(nn.ModuleList(blocks))
            if i > 0:
                self.upsample.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                                   nn.Conv2d(c, channels[i - 1], 3, padding=1)))
        self.head = nn.Sequential(nn.GroupNorm(_groups(channels[0]), channels[0]), nn.SiLU(),
                                  nn.Conv2d(channels[0], image_channels, 3, padding=1))

    def forward(self, x: Tensor, t: Tensor | float, y: Tensor) -> Tensor:
        """``x`` ``(batch, c, h, w)``, ``t`` scalar or ``(batch,)``, ``y`` ``(batch,)`` int64 in
        ``0 .. num_classes`` (``num_classes`` = null label) → shape ``(batch, c, h, w)``."""
        x = as_tensor(x, "x")
        if x.ndim != 4 or x.shape[1] != self.image_channels:
            raise ValueError(f"x must have shape (batch, {self.image_channels}, height, width), got {tuple(x.shape)}.")
        factor = 2 ** (len(self.channels) - 1)
        if x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(f"height and width must be divisible by {factor} for {len(self.channels)} levels, "
                             f"got {tuple(x.shape[2:])}.")
        y = _check_labels(y, x.shape[0], self.num_classes, x.device)
        emb = self.embedding(batch_times(t, x), y)
        h = self.stem(x)
        skips = []
        for i, blocks in enumerate(self.encoder):
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.midcoder(h, emb)
        for j, blocks in enumerate(self.decoder):
            h = torch.cat([h, skips.pop()], dim=1)  # the skip connection
            for block in blocks:
                h = block(h, emb)
            if j < len(self.upsample):
                h = self.upsample[j](h)
        return self.head(h)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def trace(self, x: Tensor, t: Tensor | float, y: Tensor) -> list[tuple[str, tuple[int, ...]]]:
        """Run the network once and list ``(stage, output shape)`` in the order the stages run.

        The stages are the embedding, the stem, every encoder block and downsampling, the
        midcoder, every decoder block and upsampling, and the output head.
        """
        names = {"embedding": "embedding (time + label)", "stem": "stem: 3×3 conv to channels"}
        for i, blocks in enumerate(self.encoder):
            for j in range(len(blocks)):
                names[f"encoder.{i}.{j}"] = f"encoder level {i}: residual block"
        for i in range(len(self.downsample)):
            names[f"downsample.{i}"] = f"downsample {i} → {i + 1}: stride-2 conv"
        names["midcoder"] = "midcoder: residual block"
        top = len(self.channels) - 1
        for k, blocks in enumerate(self.decoder):
            for j in range(len(blocks)):
                names[f"decoder.{k}.{j}"] = (f"decoder level {top - k}: "
                                             + ("concat skip + residual block" if j == 0 else "residual block"))
        for k in range(len(self.upsample)):
            names[f"upsample.{k}"] = f"upsample {top - k} → {top - k - 1}: nearest ×2 + conv"
        names["head"] = "head: norm, SiLU, 3×3 conv to image"
        modules = dict(self.named_modules())
        record: list[tuple[str, tuple[int, ...]]] = []
        handles = [modules[key].register_forward_hook(
            lambda m, inp, out, label=label: record.append((label, tuple(out.shape))))
            for key, label in names.items()]
        try:
            self(x, t, y)
        finally:
            for h in handles:
                h.remove()
        return record


def _check_labels(y: object, batch: int, num_classes: int, device: torch.device) -> Tensor:
    """Labels ``(batch,)``, integers in ``0 .. num_classes`` (the last is the null label)."""
    y = as_tensor(y, "y")
    if y.shape != (batch,):
        raise ValueError(f"y must have shape (batch,) = ({batch},), got {tuple(y.shape)}.")
    if torch.is_floating_point(y) or y.dtype == torch.bool:
        raise TypeError(f"y must hold integer labels (torch.long), got {y.dtype}.")
    if y.device != device:
        raise ValueError(f"y is on {y.device} but x is on {device}.")
    if batch and (int(y.min()) < 0 or int(y.max()) > num_classes):
        raise ValueError(f"labels must lie in 0 .. {num_classes} ({num_classes} is the null label), "
                         f"got values from {int(y.min())} to {int(y.max())}.")
    return y.long()
