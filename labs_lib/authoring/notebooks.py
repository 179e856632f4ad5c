"""What counts as a course notebook, and how the tooling lists and reads them (written once here)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

# solutions/NN_topic.ipynb and notebooks/NN_topic.ipynb: two digits, an underscore, a topic
NOTEBOOK_NAME = re.compile(r"^\d\d_[\w-]+\.ipynb$")


class AuthoringError(Exception):
    """A course notebook cannot be processed by the tooling (the message says why and what to do)."""


def course_notebooks(folder: Path, error: type[AuthoringError] = AuthoringError) -> list[Path]:
    """The ``NN_topic.ipynb`` files of ``folder``, sorted; any other ``.ipynb`` name is an error.

    ``error`` is the subclass of :class:`AuthoringError` to raise, so that a caller's own
    failures (the course-map figures, say) keep their type.
    """
    if not folder.is_dir():
        raise error(f"no notebook folder at {folder}.")
    files = sorted(folder.glob("*.ipynb"))
    for path in files:
        if not NOTEBOOK_NAME.match(path.name):
            raise error(f"{path.name}: notebooks are named NN_topic.ipynb (two digits, an underscore).")
    return files


def read_notebook(path: Path, error: type[AuthoringError] = AuthoringError) -> nbformat.NotebookNode:
    """``path`` read as an nbformat-4 notebook; a file that does not parse raises ``error`` naming it."""
    try:
        return nbformat.read(path, as_version=4)
    except Exception as err:  # any parse failure: say which file, not a bare traceback
        raise error(f"{path} is not a readable notebook: {err}") from err
