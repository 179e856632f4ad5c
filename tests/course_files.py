"""Small course folders for the tooling tests: notebooks with figures, slide types and course-map cells.

``python -m labs_lib.authoring --check`` passes only on a complete course (student notebooks,
front matter, slide types and figures all current); :func:`finish_course` makes a test course
complete in everything but what the test is about.
"""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_output

from labs_lib.authoring.course_map import TAG, write_figures
from labs_lib.authoring.slides import fill_slide_types, fill_slideshow_settings


def png(red: int, green: int, blue: int) -> bytes:
    """A valid 1×1 RGB PNG of one colour: signature, IHDR, IDAT and IEND chunks with their CRCs."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1×1, 8 bits, RGB, no interlace
    pixels = zlib.compress(bytes([0, red, green, blue]))  # filter byte 0, then the pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


PNG_A, PNG_B = png(200, 30, 30), png(30, 30, 200)


def image_output(data: bytes, lines: bool = False) -> nbformat.NotebookNode:
    """A matplotlib-like ``display_data`` output holding the PNG ``data``."""
    text = base64.b64encode(data).decode()
    if lines:  # some writers split the base64 text into lines; the figure must not change
        text = "\n".join(text[i:i + 20] for i in range(0, len(text), 20)) + "\n"
    return new_output("display_data", data={"image/png": text, "text/plain": "<Figure size 640x480 with 1 Axes>"})


def figure_cell(*outputs: nbformat.NotebookNode, tagged: bool = True, source: str = "plot()") -> nbformat.NotebookNode:
    """A code cell with the given outputs, tagged ``course-map`` unless ``tagged=False``."""
    cell = new_code_cell(source)
    cell.outputs = list(outputs)
    if tagged:
        cell.metadata["tags"] = ["nbval-ignore-output", TAG]
    return cell


def write_notebook(path: Path, nb: nbformat.NotebookNode) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def finish_course(solutions: Path, figures: Path) -> None:
    """Give every solution in ``solutions`` a course-map figure (if it has none), slide types and RISE settings, and
    write the figures into ``figures``: what a real course always has."""
    for path in sorted(solutions.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if not any(TAG in cell.get("metadata", {}).get("tags", []) for cell in nb.cells):
            nb.cells.append(figure_cell(image_output(PNG_A)))
        fill_slide_types(nb)
        fill_slideshow_settings(nb)
        nbformat.write(nb, path)
    write_figures(solutions, figures)
