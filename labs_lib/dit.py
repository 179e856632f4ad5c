r"""A small diffusion transformer (DiT): a label-conditioned field :math:`(x, t, y) \mapsto` an image of ``x``'s shape.

Where the U-Net (:mod:`labs_lib.unet`) sees an image through convolutions, a transformer sees a
**sequence of tokens**, and every token can attend to every other in one layer:

1. **patchify**: cut the ``(C, H, W)`` image into non-overlapping ``p × p`` patches, in row-major
   order (left to right, then top to bottom), and flatten each into a token of ``C·p·p`` numbers
   (:func:`patchify`); a linear map embeds each token into ``width`` numbers;
2. **positions**: attention does not know where a token came from, so a fixed 2-D sine-cosine
   code of its patch row and column is added (:func:`sincos_position_embedding`);
3. **blocks**: ``depth`` transformer blocks, each LayerNorm → self-attention → LayerNorm → MLP,
   both with a residual connection, and each **modulated** by the conditioning vector ``c``
   (:class:`DiTBlock`);
4. **unpatchify**: a final modulated LayerNorm and a linear map give each token ``C·p·p`` numbers,
   put back in place (:func:`unpatchify`, the exact inverse of :func:`patchify`).

**Conditioning.** ``c`` is the U-Net's time-and-label embedding
(:class:`~labs_lib.unet.Embedding`): Fourier features of :math:`t` through an MLP, plus a learned
row per label, ``num_classes + 1`` rows, the last the null label :math:`\varnothing`. So
:class:`DiT` has the U-Net's call ``model(x, t, y)`` and its ``null_label``, and the
classifier-free guidance of Lab 07 (:class:`~labs_lib.training.CFGTrainer`,
:class:`~labs_lib.guidance.CFGVectorField`, :func:`~labs_lib.guidance.generate_guided`) works with it unchanged.

**adaLN-Zero** (Peebles & Xie, 2023). A LayerNorm without learned affine parameters normalises
each token; a linear map of ``c`` then sets, per block, a shift :math:`\beta`, a scale
:math:`\gamma` and a gate :math:`\alpha` for the attention and the same three for the MLP:

.. math:: h \leftarrow h + \alpha_1 \odot \mathrm{Attn}\big(\mathrm{LN}(h)(1 + \gamma_1) + \beta_1\big),\qquad
          h \leftarrow h + \alpha_2 \odot \mathrm{MLP}\big(\mathrm{LN}(h)(1 + \gamma_2) + \beta_2\big).

That linear map starts at **zero** (weights and biases), so every gate is 0 and every block is
the identity at initialisation; the final linear layer starts at zero too, so the untrained
network outputs 0 everywhere. Training starts from a shallow, well-behaved network and lets
each block switch itself on: the zero final layer gets a gradient at the first step, and once it
has moved, so do the gates.

**On a latent.** The autoencoder of :mod:`labs_lib.autoencoder` keeps its latent an image
(``(latent_channels, 2, 2)`` by default), so the same class runs in latent space with
``image_channels=latent_channels, patch_size=1``: four tokens of ``latent_channels`` numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._validation import as_tensor, validate_positive_int
from .times import batch_times
from .unet import Embedding, _check_labels


def _check_patch_size(p: object) -> int:
    if isinstance(p, bool) or not isinstance(p, int) or p < 1:
        raise ValueError(f"patch_size must be a positive integer, got {p!r}.")
    return p


def patchify(x: Tensor, patch_size: int) -> Tensor:
    r"""Cut images into ``p × p`` patches: ``(B, C, H, W)`` → tokens ``(B, N, C·p·p)``, :math:`N = (H/p)(W/p)`.

    Token :math:`n = i\,(W/p) + j` is the patch in patch-row :math:`i`, patch-column :math:`j`
    (row-major order); its feature :math:`c\,p^2 + a\,p + b` is the pixel ``x[:, c, i·p + a, j·p + b]``,
    the layout of a ``Conv2d(C, ·, kernel_size=p, stride=p)`` weight, so a linear map of the tokens
    is that convolution.

    Raises:
        ValueError: if ``x`` is not 4-D, or ``H`` or ``W`` is not divisible by ``p``.
    """
    x = as_tensor(x, "x")
    p = _check_patch_size(patch_size)
    if x.ndim != 4:
        raise ValueError(f"x must have shape (batch, channels, height, width), got {tuple(x.shape)}.")
    b, c, h, w = x.shape
    if h % p or w % p:
        raise ValueError(f"the image's height and width {(h, w)} must be divisible by the patch size {p}.")
    # (B, C, H/p, p, W/p, p) → (B, H/p, W/p, C, p, p): patch grid first (row-major), then the patch's pixels
    tokens = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    return tokens.reshape(b, (h // p) * (w // p), c * p * p)


def unpatchify(tokens: Tensor, patch_size: int, height: int, width: int) -> Tensor:
    """The exact inverse of :func:`patchify`: tokens ``(B, N, C·p·p)`` → images ``(B, C, height, width)``.

    Raises:
        ValueError: if ``height`` or ``width`` is not divisible by ``p``, or the tokens do not
            fit ``(B, (height/p)·(width/p), C·p·p)`` for a whole number of channels ``C``.
    """
    tokens = as_tensor(tokens, "tokens")
    p = _check_patch_size(patch_size)
    validate_positive_int(height, "height")
    validate_positive_int(width, "width")
    if height % p or width % p:
        raise ValueError(f"height and width {(height, width)} must be divisible by the patch size {p}.")
    gh, gw = height // p, width // p
    if tokens.ndim != 3 or tokens.shape[1] != gh * gw or tokens.shape[2] % (p * p):
        raise ValueError(f"tokens must have shape (batch, {gh * gw}, channels·{p * p}) for {height}×{width} images "
                         f"in {p}×{p} patches, got {tuple(tokens.shape)}.")
    b, c = tokens.shape[0], tokens.shape[2] // (p * p)
    x = tokens.reshape(b, gh, gw, c, p, p).permute(0, 3, 1, 4, 2, 5)  # (B, C, H/p, p, W/p, p)
    return x.reshape(b, c, height, width)


def sincos_position_embedding(grid_height: int, grid_width: int, dim: int) -> Tensor:
    r"""Fixed 2-D sine-cosine codes of a patch grid, shape ``(grid_height · grid_width, dim)``.

    The rows follow the token order of :func:`patchify` (row-major).

    The first half of the ``dim`` numbers encodes the patch row :math:`i`, the second half the
    column :math:`j`, each as :math:`[\sin(\omega_k i), \cos(\omega_k i)]_{k < \text{dim}/4}` with
    frequencies :math:`\omega_k = 10000^{-k/(\text{dim}/4)}` from 1 down. No parameters: on 1,347
    training images there is nothing to gain from learning them, and the codes exist for any grid,
    so one network takes images and latents of any size.
    """
    validate_positive_int(grid_height, "grid_height")
    validate_positive_int(grid_width, "grid_width")
    validate_positive_int(dim, "dim")
    if dim % 4:
        raise ValueError(f"dim must be divisible by 4 (a sine and a cosine for rows and for columns), got {dim}.")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)

    def code(positions: Tensor) -> Tensor:
        angles = positions.double()[:, None] * omega  # (n, dim/4)
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)

    rows, cols = torch.meshgrid(torch.arange(grid_height), torch.arange(grid_width), indexing="ij")
    return torch.cat([code(rows.flatten()), code(cols.flatten())], dim=1).float()


def modulate(h: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    r"""Adaptive layer norm's modulation: :math:`h\,(1 + \gamma) + \beta` with one shift and one scale per example.

    Args:
        h: normalised tokens, shape ``(batch, n_tokens, width)``.
        shift, scale: :math:`\beta` and :math:`\gamma`, shape ``(batch, width)``: the same for every token
            of an example. The ``1 +`` makes :math:`\gamma = 0` the identity, so a zero-initialised
            modulation starts as a plain LayerNorm.

    Returns:
        Shape ``(batch, n_tokens, width)``.
    """
    return h * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class SelfAttention(nn.Module):
    r"""Multi-head self-attention: :math:`\mathrm{softmax}(QK^\top/\sqrt{d_h})V` per head, the heads concatenated
    and mixed by a linear map."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, h: Tensor) -> Tensor:
        """``h`` ``(batch, n_tokens, width)`` → the same shape."""
        b, n, w = h.shape
        # 3 × (B, heads, N, d_h): each head attends with its own slice of the width
        q, k, v = self.qkv(h).reshape(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v)
        return self.out(a.transpose(1, 2).reshape(b, n, w))


class DiTBlock(nn.Module):
    """One transformer block with adaLN-Zero conditioning (see the module's docstring for the formula).

    Args:
        width: the token width.
        heads: attention heads (must divide ``width``).
        mlp_ratio: the MLP's hidden width, in multiples of ``width``.
        cond_dim: size of the conditioning vector ``c``.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: float, cond_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)  # the modulation is the affine part
        self.attn = SelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(mlp_ratio * width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        # c → (shift, scale, gate) for the attention and for the MLP; zero at init: every gate is 0 (adaLN-Zero)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 6 * width))
        nn.init.zeros_(self.modulation[1].weight)
        nn.init.zeros_(self.modulation[1].bias)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        """Tokens ``h`` ``(batch, n_tokens, width)``, conditioning ``c`` ``(batch, cond_dim)``
        → ``(batch, n_tokens, width)``."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c).chunk(6, dim=1)
        h = h + gate1.unsqueeze(1) * self.attn(modulate(self.norm1(h), shift1, scale1))
        return h + gate2.unsqueeze(1) * self.mlp(modulate(self.norm2(h), shift2, scale2))


class FinalLayer(nn.Module):
    """Modulated LayerNorm then a linear map to ``C·p·p`` numbers per token; all zero at init (the output is 0)."""

    def __init__(self, width: int, out_dim: int, cond_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 2 * width))
        self.linear = nn.Linear(width, out_dim)
        for layer in (self.modulation[1], self.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        """``h`` ``(batch, n_tokens, width)``, ``c`` ``(batch, cond_dim)`` → ``(batch, n_tokens, out_dim)``."""
        shift, scale = self.modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm(h), shift, scale))


class DiT(nn.Module):
    r"""A diffusion transformer field :math:`u^\theta_t(x \mid y)` on images ``(image_channels, height, width)``.

    Args:
        num_classes: number of real labels; label ``num_classes`` is the null label :math:`\varnothing`.
        image_channels: channels of the images (1 for the digits; ``latent_channels`` on a latent).
        patch_size: side ``p`` of the square patches; ``height`` and ``width`` must be divisible by it.
        width: the token width (divisible by 4 for the position codes, and by ``heads``).
        depth: the number of transformer blocks.
        heads: attention heads.
        mlp_ratio: each block's MLP hidden width, in multiples of ``width``.
        n_frequencies: Fourier features of the time (see :class:`~labs_lib.models.FourierTime`).

    Example::

        model = DiT(num_classes=10, patch_size=2, width=64, depth=4, heads=4)
        CFGTrainer(model, path, Digits("train"), eta=0.1).train(1000, batch_size=128)
        images = generate_guided(model, torch.arange(10), guidance_scale=2.0)
    """

    def __init__(self, num_classes: int = 10, image_channels: int = 1, patch_size: int = 2, width: int = 64,
                 depth: int = 4, heads: int = 4, mlp_ratio: float = 4.0, n_frequencies: int = 8):
        super().__init__()
        self.num_classes = validate_positive_int(num_classes, "num_classes")
        self.null_label = num_classes
        self.image_channels = validate_positive_int(image_channels, "image_channels")
        self.patch_size = _check_patch_size(patch_size)
        self.width = validate_positive_int(width, "width")
        validate_positive_int(depth, "depth")
        validate_positive_int(heads, "heads")
        if width % 4:
            raise ValueError(f"width must be divisible by 4 (the 2-D sine-cosine position codes), got {width}.")
        if width % heads:
            raise ValueError(f"width ({width}) must be divisible by heads ({heads}): each head gets "
                             "width / heads numbers.")
        if isinstance(mlp_ratio, bool) or not isinstance(mlp_ratio, (int, float)) or int(mlp_ratio * width) < 1:
            raise ValueError(f"mlp_ratio must be a positive number, got {mlp_ratio!r}.")
        token_dim = image_channels * patch_size * patch_size
        self.embed = nn.Linear(token_dim, width)
        self.embedding = Embedding(num_classes, width, n_frequencies)  # the U-Net's time + label embedding
        self.blocks = nn.ModuleList([DiTBlock(width, heads, mlp_ratio, width) for _ in range(depth)])
        self.final = FinalLayer(width, token_dim, width)
        self._positions: dict[tuple[int, int], Tensor] = {}  # the fixed codes, cached per grid size

    def _position_codes(self, gh: int, gw: int, like: Tensor) -> Tensor:
        key = (gh, gw)
        if key not in self._positions:
            self._positions[key] = sincos_position_embedding(gh, gw, self.width)
        return self._positions[key].to(device=like.device, dtype=like.dtype)

    def forward(self, x: Tensor, t: Tensor | float, y: Tensor) -> Tensor:
        """``x`` ``(batch, c, h, w)``, ``t`` scalar or ``(batch,)``, ``y`` ``(batch,)`` int64 in
        ``0 .. num_classes`` (``num_classes`` = null label) → shape ``(batch, c, h, w)``."""
        x = as_tensor(x, "x")
        if x.ndim != 4 or x.shape[1] != self.image_channels:
            raise ValueError(f"x must have shape (batch, {self.image_channels}, height, width), got {tuple(x.shape)}.")
        if not torch.is_floating_point(x):
            raise TypeError(f"x must be a floating-point tensor, got {x.dtype}.")
        p = self.patch_size
        height, width = x.shape[2], x.shape[3]
        if height % p or width % p:
            raise ValueError(f"height and width {(height, width)} must be divisible by the patch size {p}.")
        y = _check_labels(y, x.shape[0], self.num_classes, x.device)
        c = self.embedding(batch_times(t, x), y)
        h = self.embed(patchify(x, p)) + self._position_codes(height // p, width // p, x)
        for block in self.blocks:
            h = block(h, c)
        return unpatchify(self.final(h, c), p, height, width)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
