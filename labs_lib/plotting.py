"""Plots in one consistent style: densities, samples, vector fields, trajectories, animations.

Every function draws on a Matplotlib ``Axes`` (a new one if none is given) and returns it,
so that notebooks compose panels freely. Animations are embedded as JavaScript/HTML
(``FuncAnimation.to_jshtml``): no ffmpeg and no extra package.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from matplotlib import animation
from matplotlib.axes import Axes
from torch import Tensor

from ._validation import as_tensor, validate_positive_int
from .distributions import Density

Bounds = tuple[float, float, float, float]  # (xmin, xmax, ymin, ymax)

PALETTE = sns.color_palette("colorblind")
SAMPLE_COLOR = PALETTE[0]
TARGET_COLOR = PALETTE[1]
EXACT_COLOR = "0.2"


def set_style() -> None:
    """The course's look: seaborn's ticks theme, colour-blind palette, compact figures."""
    sns.set_theme(style="ticks", palette="colorblind", context="notebook")
    plt.rcParams.update({"figure.figsize": (5, 4), "figure.dpi": 90, "axes.titlesize": "medium",
                         "image.cmap": "viridis", "animation.embed_limit": 40})


def _ax(ax: Axes | None) -> Axes:
    return ax if ax is not None else plt.subplots()[1]


def _check_bounds(bounds: Sequence[float]) -> Bounds:
    if len(bounds) != 4:
        raise ValueError(f"bounds must be (xmin, xmax, ymin, ymax), got {bounds!r}.")
    xmin, xmax, ymin, ymax = map(float, bounds)
    if not (xmin < xmax and ymin < ymax):
        raise ValueError(f"bounds must satisfy xmin < xmax and ymin < ymax, got {bounds!r}.")
    return xmin, xmax, ymin, ymax


def _points(x: Tensor, name: str = "x") -> np.ndarray:
    x = as_tensor(x, name)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n, 2) to be drawn in the plane, got {tuple(x.shape)}.")
    return x.detach().cpu().numpy()


def grid(bounds: Sequence[float], resolution: int = 200) -> tuple[Tensor, Tensor, Tensor]:
    """A ``resolution × resolution`` grid over ``bounds``.

    Returns ``(X, Y, points)``: ``X`` and ``Y`` of shape ``(r, r)`` and the flattened
    points of shape ``(r*r, 2)``.
    """
    xmin, xmax, ymin, ymax = _check_bounds(bounds)
    validate_positive_int(resolution, "resolution")
    xs, ys = torch.linspace(xmin, xmax, resolution), torch.linspace(ymin, ymax, resolution)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    return X, Y, torch.stack([X.reshape(-1), Y.reshape(-1)], dim=1)


def plot_density(density: Density, bounds: Sequence[float], ax: Axes | None = None, kind: str = "image",
                 resolution: int = 200, levels: int = 12, log: bool = False, **kwargs) -> Axes:
    """Draw a 2-D density as an image (``kind="image"``) or contour lines (``kind="contour"``)."""
    if kind not in ("image", "contour"):
        raise ValueError(f"kind must be 'image' or 'contour', got {kind!r}.")
    ax = _ax(ax)
    X, Y, pts = grid(bounds, resolution)
    dev = density.device if isinstance(density, Density) else pts.device
    with torch.no_grad():
        logp = density.log_density(pts.to(dev)).reshape(resolution, resolution).cpu()
    z = (logp if log else logp.exp()).numpy()
    if kind == "image":
        ax.imshow(z, origin="lower", extent=_check_bounds(bounds), aspect="auto",
                  cmap=kwargs.pop("cmap", "Blues"), **kwargs)
    else:
        ax.contour(X.numpy(), Y.numpy(), z, levels=levels, cmap=kwargs.pop("cmap", "Greys"),
                   linewidths=kwargs.pop("linewidths", 0.8), **kwargs)
    ax.set_aspect("equal")
    return ax


def plot_samples(x: Tensor, ax: Axes | None = None, kind: str = "scatter",
                 bounds: Sequence[float] | None = None, **kwargs) -> Axes:
    """Draw 2-D samples of shape ``(n, 2)`` as ``"scatter"``, ``"hist"`` (2-D histogram) or ``"kde"``."""
    pts = _points(x)
    ax = _ax(ax)
    if kind == "scatter":
        kwargs.setdefault("s", 3)
        kwargs.setdefault("alpha", 0.5)
        kwargs.setdefault("color", SAMPLE_COLOR)
        ax.scatter(pts[:, 0], pts[:, 1], linewidths=0, **kwargs)
    elif kind == "hist":
        rng = None if bounds is None else [_check_bounds(bounds)[:2], _check_bounds(bounds)[2:]]
        ax.hist2d(pts[:, 0], pts[:, 1], bins=kwargs.pop("bins", 80), range=rng,
                  cmap=kwargs.pop("cmap", "Blues"), **kwargs)
    elif kind == "kde":
        sns.kdeplot(x=pts[:, 0], y=pts[:, 1], ax=ax, fill=kwargs.pop("fill", True),
                    cmap=kwargs.pop("cmap", "Blues"), **kwargs)
    else:
        raise ValueError(f"kind must be 'scatter', 'hist' or 'kde', got {kind!r}.")
    if bounds is not None:
        b = _check_bounds(bounds)
        ax.set_xlim(b[:2])
        ax.set_ylim(b[2:])
    ax.set_aspect("equal")
    return ax


def plot_vector_field(field: Callable[[Tensor, Tensor], Tensor], bounds: Sequence[float], t: float = 0.0,
                      ax: Axes | None = None, n: int = 20, **kwargs) -> Axes:
    """Quiver plot of ``field(x, t)`` on an ``n × n`` grid; ``field`` maps ``(m, 2)`` to ``(m, 2)``."""
    ax = _ax(ax)
    X, Y, pts = grid(bounds, n)
    with torch.no_grad():
        v = field(pts, torch.tensor(float(t)))
    v = as_tensor(v, "field(x, t)")
    if v.shape != pts.shape:
        raise ValueError(f"field(x, t) must return shape {tuple(pts.shape)} for x of that shape, got {tuple(v.shape)}.")
    v = v.detach().cpu().reshape(n, n, 2).numpy()
    kwargs.setdefault("color", "0.45")
    kwargs.setdefault("alpha", 0.8)
    ax.quiver(X.numpy(), Y.numpy(), v[..., 0], v[..., 1], **kwargs)
    ax.set_aspect("equal")
    return ax


def plot_trajectories_2d(states: Tensor, ax: Axes | None = None, n_show: int = 20, **kwargs) -> Axes:
    """Draw the paths of the first ``n_show`` particles; ``states`` has shape ``(k, batch, 2)``."""
    states = as_tensor(states, "states")
    if states.ndim != 3 or states.shape[2] != 2:
        raise ValueError(f"states must have shape (k, batch, 2), got {tuple(states.shape)}.")
    ax = _ax(ax)
    s = states[:, :n_show].detach().cpu().numpy()
    kwargs.setdefault("lw", 1.2)
    kwargs.setdefault("color", SAMPLE_COLOR)
    for i in range(s.shape[1]):
        ax.plot(s[:, i, 0], s[:, i, 1], **kwargs)
    ax.scatter(s[0, :, 0], s[0, :, 1], s=12, color="0.3", zorder=3, label="start")
    ax.scatter(s[-1, :, 0], s[-1, :, 1], s=12, color=TARGET_COLOR, zorder=3, label="end")
    ax.set_aspect("equal")
    return ax


def plot_trajectories_1d(times: Tensor, states: Tensor, ax: Axes | None = None, n_show: int = 20,
                         **kwargs) -> Axes:
    """Draw 1-D paths against time; ``times`` is ``(k,)`` and ``states`` is ``(k, batch)`` or ``(k, batch, 1)``."""
    times, states = as_tensor(times, "times"), as_tensor(states, "states")
    if states.ndim == 3 and states.shape[2] == 1:
        states = states[..., 0]
    if states.ndim != 2 or states.shape[0] != times.shape[0]:
        raise ValueError(f"states must have shape (k, batch) with k = len(times) = {times.shape[0]}, "
                         f"got {tuple(states.shape)}.")
    ax = _ax(ax)
    kwargs.setdefault("lw", 0.8)
    kwargs.setdefault("alpha", 0.7)
    ax.plot(times.cpu().numpy(), states[:, :n_show].detach().cpu().numpy(), **kwargs)
    ax.set_xlabel("t")
    return ax


def animate_particles(states: Tensor, times: Tensor | None = None, bounds: Sequence[float] | None = None,
                      background: Density | None = None, interval: int = 80, s: float = 3) -> str:
    """An animation of particles moving in the plane, as embeddable HTML/JavaScript.

    Args:
        states: shape ``(k, batch, 2)``, one frame per recorded time.
        times: shape ``(k,)``, shown in the title.
        background: a density drawn as contours under the particles.

    Returns:
        HTML text; show it with ``IPython.display.HTML(...)``.
    """
    states = as_tensor(states, "states")
    if states.ndim != 3 or states.shape[2] != 2:
        raise ValueError(f"states must have shape (k, batch, 2), got {tuple(states.shape)}.")
    s_np = states.detach().cpu().numpy()
    if bounds is None:
        lo, hi = s_np.reshape(-1, 2).min(0), s_np.reshape(-1, 2).max(0)
        bounds = (lo[0], hi[0], lo[1], hi[1])
    bounds = _check_bounds(bounds)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    if background is not None:
        plot_density(background, bounds, ax=ax, kind="contour", resolution=120)
    scat = ax.scatter(s_np[0, :, 0], s_np[0, :, 1], s=s, color=SAMPLE_COLOR, alpha=0.6, linewidths=0)
    ax.set_xlim(bounds[:2])
    ax.set_ylim(bounds[2:])
    ax.set_aspect("equal")

    def update(i: int):
        scat.set_offsets(s_np[i])
        if times is not None:
            ax.set_title(f"t = {float(times[i]):.2f}")
        return (scat,)

    anim = animation.FuncAnimation(fig, update, frames=len(s_np), interval=interval, blit=False)
    html = anim.to_jshtml(default_mode="once")
    plt.close(fig)
    return _robust_jshtml(html)


# matplotlib's player draws its buttons with Font Awesome 4, a stylesheet and font it links from a CDN:
# offline (a classroom, the course's website) the buttons are blank. Each icon is drawn as a small
# inline SVG instead (paths on a 14×14 grid), so nothing is fetched and every browser shows them.
_JSHTML_ICON_FONT = re.compile(r'<link rel="stylesheet"\s+href="https?://[^"]*font-awesome[^"]*">\s*')
_JSHTML_ICON = re.compile(r'<i class="fa fa-([a-z-]+)(?: fa-flip-horizontal)?"></i>')
_ICON_PATHS = {
    "minus": "M2 6h10v2H2z",
    "plus": "M2 6h10v2H2zM6 2h2v10H6z",
    "fast-backward": "M1 2h2v10H1zM8 2 3 7l5 5zM13 2 8 7l5 5z",
    "step-backward": "M2 2h2v10H2zM12 2 5 7l7 5z",
    "play-reverse": "M11 2 3 7l8 5z",
    "pause": "M3 2h3v10H3zM8 2h3v10H8z",
    "play": "M3 2l8 5-8 5z",
    "step-forward": "M10 2h2v10h-2zM2 2l7 5-7 5z",
    "fast-forward": "M11 2h2v10h-2zM1 2l5 5-5 5zM6 2l5 5-5 5z",
}


def _svg_icon(match: re.Match) -> str:
    name = "play-reverse" if "flip-horizontal" in match.group(0) else match.group(1)
    if name not in _ICON_PATHS:  # an icon of a later matplotlib: leave it, rather than draw a wrong one
        return match.group(0)
    return (f'<svg width="14" height="14" viewBox="0 0 14 14" fill="currentColor" aria-hidden="true" '
            f'style="vertical-align: middle"><path d="{_ICON_PATHS[name]}"/></svg>')


_JSHTML_FIRST_FRAME = re.compile(r'frames\[0\] = "(data:image/[a-z]+;base64,[^"]*)"')
_JSHTML_IMG = re.compile(r'<img id="(_anim_img\w+)">')
_JSHTML_INIT = re.compile(r"setTimeout\(function\(\) \{\s*(\w+ = new Animation\([^;]*\);)\s*\}, 0\);")


def _robust_jshtml(html: str) -> str:
    """matplotlib's JavaScript animation, made to show in every JupyterLab windowing mode.

    As matplotlib writes it, the frame ``<img>`` has no picture until a script sets it one tick after
    the output is inserted; JupyterLab's default windowing can insert the output before it is in the
    page, and the student then sees the controls and no figure. Here the first frame is written into
    the ``<img>`` itself, and the player starts only once its elements are in the page. Its buttons'
    icons are inline SVG instead of a web font from a CDN, so that they show offline.
    """
    html = _JSHTML_ICON.sub(_svg_icon, _JSHTML_ICON_FONT.sub("", html))
    first, img, init = _JSHTML_FIRST_FRAME.search(html), _JSHTML_IMG.search(html), _JSHTML_INIT.search(html)
    if not (first and img and init):  # another matplotlib template: leave it as matplotlib wrote it
        return html
    frame0 = first.group(1).replace("\\\n", "")  # the JS string continues its lines with a backslash
    html = html.replace(img.group(0), f'<img id="{img.group(1)}" src="{frame0}" alt="animation, frame 1">', 1)
    # The leading ";" ends matplotlib's last statement, `frames[n] = "..."`, which has none: without it
    # the string would be called as a function (a TypeError that stops the player).
    start = (";(function start(wait) {\n"
             "        if (!document.getElementById(img_id) || !document.getElementById(slider_id)) {\n"
             "            // not in the page yet (a cell JupyterLab has not attached): "
             "look again, less and less often\n"
             "            setTimeout(function() { start(Math.min(2 * wait, 1000)); }, wait);\n"
             "            return;\n"
             "        }\n"
             f"        {init.group(1)}\n"
             "    })(25);")
    return html.replace(init.group(0), start, 1)


def plot_histogram_1d(samples: Tensor, ax: Axes | None = None, density: Density | None = None,
                      bins: int = 60, x_range: tuple[float, float] | None = None, label: str = "samples",
                      density_label: str = "density", **kwargs) -> Axes:
    """A normalised histogram of 1-D samples, with an exact density drawn over it.

    Args:
        samples: shape ``(n,)`` or ``(n, 1)``.
        density: a normalised 1-D :class:`~labs_lib.distributions.Density` (its ``log_density``
            takes shape ``(m, 1)``), e.g. ``ll.Gaussian.isotropic(1, std)``; drawn as a line.
        bins: the number of histogram bins.
        x_range: ``(low, high)``, the histogram's and the density's span (by default the
            samples' range, widened by 5% on each side).
        kwargs: passed to ``Axes.hist``.
    """
    samples = as_tensor(samples, "samples")
    if samples.ndim == 2 and samples.shape[1] == 1:
        samples = samples[:, 0]
    if samples.ndim != 1 or samples.numel() == 0:
        raise ValueError(f"samples must have shape (n,) or (n, 1) with n ≥ 1, got {tuple(samples.shape)}.")
    validate_positive_int(bins, "bins")
    if density is not None and not isinstance(density, Density):
        raise TypeError(f"density must be a labs_lib Density (e.g. ll.Gaussian.isotropic(1, std)), "
                        f"got {type(density).__name__}.")
    values = samples.detach().cpu().double().numpy()
    if not np.isfinite(values).all():
        raise ValueError("samples contains NaN or infinite values.")
    if x_range is None:
        lo, hi = float(values.min()), float(values.max())
        pad = 0.05 * (hi - lo) if hi > lo else 0.5
        x_range = (lo - pad, hi + pad)
    if len(x_range) != 2 or not float(x_range[0]) < float(x_range[1]):
        raise ValueError(f"x_range must be (low, high) with low < high, got {x_range!r}.")
    lo, hi = map(float, x_range)
    ax = _ax(ax)
    kwargs.setdefault("color", SAMPLE_COLOR)
    kwargs.setdefault("alpha", 0.6)
    ax.hist(values, bins=bins, range=(lo, hi), density=True, label=label, **kwargs)
    if density is not None:
        grid_x = torch.linspace(lo, hi, 400)
        dev = density.device if isinstance(density, Density) else grid_x.device
        with torch.no_grad():
            pdf = density.log_density(grid_x[:, None].to(dev)).exp().cpu()
        ax.plot(grid_x.numpy(), pdf.numpy(), color=EXACT_COLOR, lw=1.5, label=density_label)
    ax.set_ylabel("density")
    return ax


def plot_image_grid(images: Tensor, n_cols: int, ax: Axes | None = None, row_labels: Sequence[str] | None = None,
                    col_labels: Sequence[str] | None = None, vmin: float = -1.0, vmax: float = 1.0,
                    cmap: str = "gray_r", gap: int = 1) -> Axes:
    """Tile grey-scale images into one picture, ``n_cols`` per row, row by row.

    Args:
        images: shape ``(n, 1, h, w)`` or ``(n, h, w)``; ``n`` a multiple of ``n_cols``.
        row_labels, col_labels: written beside the rows and above the columns.
        vmin, vmax: the pixel values shown as white and black (with ``cmap="gray_r"``); values
            outside are clipped. The digits of Lab 07 live in ``[-1, 1]``.
        gap: pixels of light grey between neighbouring images, so that each image's white
            background is seen to end.
    """
    images = as_tensor(images, "images")
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3:
        raise ValueError(f"images must have shape (n, 1, h, w) or (n, h, w), got {tuple(images.shape)}.")
    validate_positive_int(n_cols, "n_cols")
    n, h, w = images.shape
    if n == 0 or n % n_cols:
        raise ValueError(f"the number of images ({n}) must be a positive multiple of n_cols = {n_cols}.")
    n_rows = n // n_cols
    for name, labels, count in (("row_labels", row_labels, n_rows), ("col_labels", col_labels, n_cols)):
        if labels is not None and len(labels) != count:
            raise ValueError(f"{name} needs {count} entries, got {len(labels)}.")
    canvas = np.full((n_rows * (h + gap) - gap, n_cols * (w + gap) - gap), np.nan)
    pix = images.detach().cpu().float().clamp(vmin, vmax).numpy()
    for k in range(n):
        r, c = divmod(k, n_cols)
        canvas[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = pix[k]
    ax = _ax(ax)
    colormap = plt.get_cmap(cmap).with_extremes(bad="0.82")  # the gaps between images: light grey
    ax.imshow(canvas, cmap=colormap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([c * (w + gap) + (w - 1) / 2 for c in range(n_cols)] if col_labels is not None else [])
    ax.set_yticks([r * (h + gap) + (h - 1) / 2 for r in range(n_rows)] if row_labels is not None else [])
    if col_labels is not None:
        ax.set_xticklabels(col_labels)
        ax.xaxis.tick_top()
    if row_labels is not None:
        ax.set_yticklabels(row_labels)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return ax
