"""The course itself: each solution notebook's run time and every quality figure it prints.

Both are read from the committed solution notebooks: run times from the execution timestamps
that nbclient stores in each cell's metadata (:mod:`labs_lib.authoring.run_times`), quality figures
from the printed lines of the form ``W2 = … (noise floor …, ratio …)``. Nothing is re-run and
nothing is typed by hand.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from labs_lib.authoring.run_times import notebook_seconds

QUALITY = re.compile(r"noise floor|real-vs-real|floor\b|accura|trained in|off-support|yardstick|two-sample",
                     re.IGNORECASE)
# A row of a printed table, kept when it follows a quality header such as "w   accuracy   W2/floor"
# (the guidance sweep prints one row per scale): a row starts with a number, carries a verdict
# (✓/✗, Lab 10's table of floor ratios with one row per flow), or ends with one (a name, then figures).
TABLE_ROW = re.compile(r"^\s*[-+]?\d|[✓✗]|\d\s*$")


def quality_lines(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    found = []
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        # one cell's printed text as a whole: a table's header and rows may be separate outputs
        pieces = (o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in c.outputs)
        text = "\n".join(piece.rstrip("\n") for piece in pieces)
        in_table = False
        for line in text.splitlines():
            if not line.strip():
                continue  # a blank line inside a table does not end it
            if QUALITY.search(line):
                found.append(line.strip())
                in_table = True
            elif in_table and TABLE_ROW.search(line):
                found.append(line.strip())
            else:
                in_table = False
    return found


def run(solutions: Path = Path("solutions")) -> tuple[str, dict[str, float]]:
    rows = ["| notebook | execution time |", "|---|---:|"]
    quality = ["| notebook | measured quality (as printed by the notebook) |", "|---|---|"]
    times = {}
    for path in sorted(solutions.glob("*.ipynb")):
        seconds = notebook_seconds(nbformat.read(path, as_version=4))
        if seconds is not None:
            times[path.name] = seconds
        rows.append(f"| {path.stem} | {'not recorded' if seconds is None else f'{seconds:.0f} s'} |")
        for line in quality_lines(path):
            quality.append(f"| {path.stem} | `{line}` |")
    total = sum(times.values())
    text = ("**Solution notebooks: execution time on this machine** (from the timestamps stored when they "
            f"were last executed; total {total:.0f} s)\n\n" + "\n".join(rows))
    if len(quality) > 2:
        text += "\n\n**Every sample-quality figure the notebooks print, against its floor**\n\n" + "\n".join(quality)
    return text, times
