"""Plotting smoke tests on the Agg backend (set in conftest.py): every function returns an
Axes (or HTML) for valid input, draws what it should, and explains bad input."""

from __future__ import annotations

import math
import shutil

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.axes import Axes

from labs_lib import Gaussian, GaussianMixture
from labs_lib.plotting import (animate_particles, grid, plot_density, plot_histogram_1d, plot_samples,
                               plot_trajectories_1d, plot_trajectories_2d, plot_vector_field, set_style)

BOUNDS = (-3.0, 3.0, -2.0, 4.0)
BAD_BOUNDS = [((0.0, 1.0, 2.0), r"bounds must be \(xmin, xmax, ymin, ymax\), got"),
              ((1.0, 0.0, 0.0, 1.0), r"bounds must satisfy xmin < xmax and ymin < ymax, got"),
              ((0.0, 1.0, 1.0, 1.0), r"bounds must satisfy xmin < xmax and ymin < ymax")]


def test_backend_is_agg():
    assert matplotlib.get_backend().lower() == "agg"


def test_set_style_runs():
    set_style()
    assert matplotlib.rcParams["image.cmap"] == "viridis"


# --- grid and densities ----------------------------------------------------------------------------------


@pytest.mark.parametrize("resolution", [1, 2, 7])
def test_grid_shapes_and_corners(resolution):
    X, Y, pts = grid(BOUNDS, resolution)
    assert X.shape == Y.shape == (resolution, resolution) and pts.shape == (resolution**2, 2)
    if resolution > 1:
        assert float(X.min()) == -3.0 and float(X.max()) == 3.0
        assert float(Y.min()) == -2.0 and float(Y.max()) == 4.0
        assert torch.all(X[:, 1:] > X[:, :-1]) and torch.all(Y[1:, :] > Y[:-1, :])  # "xy" indexing
    torch.testing.assert_close(pts, torch.stack([X.reshape(-1), Y.reshape(-1)], 1))


@pytest.mark.parametrize("bounds, pattern", BAD_BOUNDS)
def test_grid_rejects_bad_bounds(bounds, pattern):
    with pytest.raises(ValueError, match=pattern):
        grid(bounds)
    with pytest.raises(ValueError, match=pattern):
        plot_density(Gaussian.isotropic(2), bounds)


def test_grid_rejects_bad_resolution():
    with pytest.raises(ValueError, match="resolution must be a positive integer"):
        grid(BOUNDS, 0)


@pytest.mark.parametrize("kind", ["image", "contour"])
@pytest.mark.parametrize("log", [False, True])
def test_plot_density_returns_axes_and_draws_the_density(kind, log):
    gm = GaussianMixture.symmetric_2d(3, radius=1.5, std=0.5)
    ax = plot_density(gm, BOUNDS, kind=kind, resolution=30, log=log)
    assert isinstance(ax, Axes)
    if kind == "image":
        img = np.asarray(ax.images[0].get_array())
        _, _, pts = grid(BOUNDS, 30)
        logp = gm.log_density(pts).reshape(30, 30)
        expected = (logp if log else logp.exp()).numpy()
        np.testing.assert_allclose(img, expected, rtol=1e-5, atol=1e-6)
        assert tuple(ax.images[0].get_extent()) == BOUNDS
    else:
        assert ax.collections, "no contour lines drawn"


def test_plot_density_draws_on_a_given_axes():
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    assert plot_density(Gaussian.isotropic(2), BOUNDS, ax=ax, resolution=10) is ax


def test_plot_density_rejects_bad_kind():
    with pytest.raises(ValueError, match=r"kind must be 'image' or 'contour', got 'surface'"):
        plot_density(Gaussian.isotropic(2), BOUNDS, kind="surface")


# --- samples ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["scatter", "hist", "kde"])
@pytest.mark.parametrize("bounds", [None, BOUNDS])
def test_plot_samples_returns_axes(kind, bounds, gen):
    x = torch.randn(200, 2, generator=gen)
    ax = plot_samples(x, kind=kind, bounds=bounds)
    assert isinstance(ax, Axes)
    if bounds is not None:
        assert ax.get_xlim() == pytest.approx(BOUNDS[:2]) and ax.get_ylim() == pytest.approx(BOUNDS[2:])
    if kind == "scatter":
        np.testing.assert_allclose(ax.collections[0].get_offsets(), x.numpy())


@pytest.mark.parametrize("shape", [(10,), (10, 3), (10, 1), (2, 10, 2)])
def test_plot_samples_rejects_bad_shapes(shape):
    with pytest.raises(ValueError,
                       match=rf"x must have shape \(n, 2\) to be drawn in the plane, got {re_shape(shape)}"):
        plot_samples(torch.zeros(shape))


def re_shape(shape) -> str:
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")


def test_plot_samples_rejects_bad_kind_and_bounds():
    with pytest.raises(ValueError, match=r"kind must be 'scatter', 'hist' or 'kde', got 'violin'"):
        plot_samples(torch.zeros(5, 2), kind="violin")
    with pytest.raises(ValueError, match="xmin < xmax"):
        plot_samples(torch.zeros(5, 2), bounds=(1.0, 0.0, 0.0, 1.0))
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got ndarray"):
        plot_samples(np.zeros((5, 2)))


# --- vector fields and trajectories -------------------------------------------------------------------------


def test_plot_vector_field_draws_the_field():
    def field(x, t):
        return torch.stack([-x[:, 1], x[:, 0]], 1) * (1 + t)

    ax = plot_vector_field(field, BOUNDS, t=0.5, n=6)
    assert isinstance(ax, Axes)
    q = ax.collections[0]
    _, _, pts = grid(BOUNDS, 6)
    np.testing.assert_allclose(q.U, 1.5 * -pts[:, 1].numpy(), rtol=1e-6)
    np.testing.assert_allclose(q.V, 1.5 * pts[:, 0].numpy(), rtol=1e-6)


def test_plot_vector_field_rejects_wrong_output_shape():
    with pytest.raises(ValueError, match=r"field\(x, t\) must return shape \(16, 2\) for x of that shape, got \(16,\)"):
        plot_vector_field(lambda x, t: x.sum(1), BOUNDS, n=4)
    with pytest.raises(TypeError, match=r"field\(x, t\) must be a torch.Tensor"):
        plot_vector_field(lambda x, t: x.numpy(), BOUNDS, n=4)


@pytest.mark.parametrize("batch, n_show", [(3, 20), (30, 5)])
def test_plot_trajectories_2d(batch, n_show, gen):
    states = torch.randn(7, batch, 2, generator=gen).cumsum(0)
    ax = plot_trajectories_2d(states, n_show=n_show)
    assert isinstance(ax, Axes)
    assert len(ax.lines) == min(batch, n_show)
    np.testing.assert_allclose(ax.lines[0].get_xydata(), states[:, 0].numpy())


@pytest.mark.parametrize("shape", [(7, 3), (7, 3, 3), (7, 3, 2, 1)])
def test_plot_trajectories_2d_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match=r"states must have shape \(k, batch, 2\), got"):
        plot_trajectories_2d(torch.zeros(shape))


@pytest.mark.parametrize("shape", [(9, 4), (9, 4, 1)])
def test_plot_trajectories_1d(shape, gen):
    times = torch.linspace(0, 1, 9)
    states = torch.randn(shape, generator=gen)
    ax = plot_trajectories_1d(times, states, n_show=3)
    assert isinstance(ax, Axes) and len(ax.lines) == 3 and ax.get_xlabel() == "t"
    np.testing.assert_allclose(ax.lines[1].get_xdata(), times.numpy())


@pytest.mark.parametrize("shape", [(8, 4), (9, 4, 2), (9,)])
def test_plot_trajectories_1d_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match=r"states must have shape \(k, batch\) with k = len\(times\) = 9, got"):
        plot_trajectories_1d(torch.linspace(0, 1, 9), torch.zeros(shape))


# --- animation ------------------------------------------------------------------------------------------------


def test_animate_particles_returns_html(gen):
    import matplotlib.pyplot as plt

    states = torch.randn(3, 10, 2, generator=gen)
    n_figs = len(plt.get_fignums())
    html = animate_particles(states, times=torch.linspace(0, 1, 3))
    assert isinstance(html, str) and "<script" in html
    assert len(plt.get_fignums()) == n_figs  # the animation's figure is closed
    html2 = animate_particles(states, bounds=BOUNDS, background=GaussianMixture.symmetric_2d(2, radius=1.0))
    assert "<script" in html2


@pytest.mark.parametrize("shape", [(3, 10), (3, 10, 3)])
def test_animate_particles_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match=r"states must have shape \(k, batch, 2\), got"):
        animate_particles(torch.zeros(shape))


def test_animate_particles_rejects_bad_bounds():
    with pytest.raises(ValueError, match="xmin < xmax"):
        animate_particles(torch.zeros(3, 10, 2), bounds=(0.0, -1.0, 0.0, 1.0))
    # all particles at one point: the automatic bounds are degenerate and say so
    with pytest.raises(ValueError, match="xmin < xmax"):
        animate_particles(torch.zeros(3, 10, 2))


# --- plot_histogram_1d -------------------------------------------------------------------------------

# labs_lib.plotting.plot_histogram_1d: a normalised histogram with the exact density over it.
@pytest.mark.parametrize("shape", [(2000,), (2000, 1)])
def test_histogram_is_normalised_and_density_is_drawn(shape, gen):
    std = 1.5
    samples = std * torch.randn(shape, generator=gen)
    ax = plot_histogram_1d(samples, density=Gaussian.isotropic(1, std), bins=40)
    heights = np.array([p.get_height() for p in ax.patches])
    widths = np.array([p.get_width() for p in ax.patches])
    assert len(heights) == 40
    assert (heights * widths).sum() == pytest.approx(1.0)
    (line,) = ax.lines
    xs, ys = line.get_data()
    assert ys == pytest.approx(np.exp(-xs**2 / (2 * std**2)) / (std * math.sqrt(2 * math.pi)), rel=1e-4)
    # By default the span is the samples' range, widened by 5% on each side.
    lo, hi = float(samples.min()), float(samples.max())
    assert xs[0] == pytest.approx(lo - 0.05 * (hi - lo), rel=1e-5)
    assert xs[-1] == pytest.approx(hi + 0.05 * (hi - lo), rel=1e-5)


def test_draws_on_the_given_axes_with_a_fixed_range(gen):
    fig, ax = plt.subplots()
    out = plot_histogram_1d(torch.randn(100, generator=gen), ax=ax, x_range=(-4, 4), bins=8)
    assert out is ax and not ax.lines
    assert ax.patches[0].get_x() == pytest.approx(-4.0)
    assert ax.patches[-1].get_x() + ax.patches[-1].get_width() == pytest.approx(4.0)


def test_a_single_value_still_plots():
    ax = plot_histogram_1d(torch.full((5,), 2.0))
    assert len(ax.patches) == 60


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(samples=np.zeros(5)), TypeError, "torch.Tensor"),
    (dict(samples=torch.zeros(5, 2)), ValueError, r"\(n,\) or \(n, 1\)"),
    (dict(samples=torch.zeros(0)), ValueError, "n ≥ 1"),
    (dict(samples=torch.tensor([0.0, float("inf")])), ValueError, "NaN or infinite"),
    (dict(samples=torch.zeros(5), bins=0), ValueError, "bins"),
    (dict(samples=torch.zeros(5), x_range=(1.0, -1.0)), ValueError, "low < high"),
    (dict(samples=torch.zeros(5), density=lambda x: x), TypeError, "Density"),
])
def test_bad_input_is_explained(kwargs, error, match):
    with pytest.raises(error, match=match):
        plot_histogram_1d(**kwargs)


def test_animation_shows_its_first_frame_before_any_script_runs():
    import base64
    import re

    html = animate_particles(torch.randn(4, 30, 2, generator=torch.Generator().manual_seed(0)))
    img = re.search(r'<img id="(_anim_img\w+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert img, "the frame <img> carries no picture of its own"
    assert base64.b64decode(img.group(2)).startswith(b"\x89PNG\r\n\x1a\n")
    # the player starts only once its elements are in the page, not one tick after insertion
    assert "}, 0);" not in html and ";(function start(wait)" in html and "new Animation(frames, img_id" in html
    assert html.count(img.group(1)) >= 2  # the <img> and the script still refer to the same element


def test_animation_loads_nothing_from_the_web():
    """The player's buttons are drawn inline: no stylesheet or font from a CDN, nine icons, no font glyph left."""
    import re

    html = animate_particles(torch.randn(3, 10, 2, generator=torch.Generator().manual_seed(0)))
    assert not re.search(r"(src|href)=\"https?://", html), "the animation fetches a file from the web"
    assert 'class="fa ' not in html
    assert html.count("<svg") == 9 and html.count("<button") == 9


# Runs each <script> of the player in one shared context, as a page does, with a document that has no
# elements yet: the scripts must evaluate without an error (the player then waits for its elements).
_PLAYER_RUNNER = """
const vm = require('vm');
const ctx = vm.createContext({document: {getElementById: () => null}, setTimeout: () => 0,
                              navigator: {userAgent: ''}, console});
for (const script of JSON.parse(require('fs').readFileSync(0, 'utf8'))) vm.runInContext(script, ctx);
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to run the player's JavaScript")
def test_animation_scripts_run_without_an_error():
    """The player's scripts, run by a JavaScript engine: without the ';' before the start call they throw
    "TypeError: ... is not a function" (matplotlib's last statement has no semicolon), checked."""
    import json
    import re
    import subprocess

    html = animate_particles(torch.randn(3, 10, 2, generator=torch.Generator().manual_seed(0)))
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", html, flags=re.S)
    assert len(scripts) == 2
    run = subprocess.run(["node", "-e", _PLAYER_RUNNER], input=json.dumps(scripts), capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr[:500]
