"""Progress bars of several trainings in one cell, as Lab 05 shows them, start one under the other."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from views import PANEL, copy_notebook, open_notebook, run_all

if TYPE_CHECKING:
    from labserver import LabServer
    from playwright.sync_api import Page

# Descriptions as short and as long as the labs' ("DSM", "circles → checkerboard").
TRAININGS = '''import torch
from torch import nn

import labs_lib as ll


class Fit(ll.training.Trainer):
    def loss(self, batch_size):
        x = torch.randn(batch_size, 1)
        return (self.model(x) - x).pow(2).mean()


for description in ("DSM", "moons", "circles → checkerboard", "U-Net (CFG)"):
    Fit(nn.Linear(1, 1)).train(200, batch_size=8, description=description)'''


def test_progress_bars_line_up(lab_server: LabServer, page: Page, artifacts: Path) -> None:
    nb = new_notebook(cells=[new_markdown_cell("# Progress bars"), new_code_cell(TRAININGS)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    source = artifacts / "work" / "bars-source.ipynb"
    source.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, source)
    path, nb = copy_notebook(source, artifacts / "work" / "bars", strip_outputs=True)
    open_notebook(page, lab_server.url(f"lab/tree/{path}"), nb)
    run_all(page, 120_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(artifacts / "progress-bars.png"))
    # Only this notebook's bars: in the full run the notebooks of earlier tests stay open in hidden tabs.
    starts = page.evaluate("(panel) => [...document.querySelectorAll(`${panel} .jp-OutputArea-output "
                           ".widget-hprogress .progress`)].map(bar => Math.round(bar.getBoundingClientRect().x))",
                           PANEL)
    assert len(starts) == 4, f"expected four progress bars, saw {len(starts)} (screenshot progress-bars.png)"
    assert max(starts) - min(starts) <= 1, f"the bars start at different places: x = {starts} (progress-bars.png)"
