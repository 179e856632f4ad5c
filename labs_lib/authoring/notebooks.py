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


WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _ints_for_whole_floats(value: object) -> tuple[object, int]:
    """``value`` with every float that is a whole number made an int; also how many were changed."""
    if isinstance(value, float) and value.is_integer():
        return int(value), 1
    if isinstance(value, dict):
        pairs = [(key, _ints_for_whole_floats(v)) for key, v in value.items()]
        return type(value)((key, v) for key, (v, _) in pairs), sum(n for _, (_, n) in pairs)
    if isinstance(value, list):
        items = [_ints_for_whole_floats(v) for v in value]
        return [v for v, _ in items], sum(n for _, n in items)
    return value, 0


def store_widget_state_as_jupyterlab_does(nb: nbformat.NotebookNode) -> int:
    """Write the whole numbers of ``nb``'s saved widget state as ints, in place; returns how many changed.

    Python's JSON writes a progress bar's ``max = 3000.0`` as ``3000.0``, JavaScript's as ``3000``. A
    notebook executed here and then merely opened and saved in JupyterLab would otherwise come back
    with dozens of changed lines and no change of content (measured on Lab 05: 15 values; after this,
    JupyterLab's save leaves the file byte for byte the same).
    """
    widgets = nb.metadata.get("widgets", {})
    if WIDGET_STATE not in widgets:
        return 0
    state, changed = _ints_for_whole_floats(widgets[WIDGET_STATE])
    if changed:
        widgets[WIDGET_STATE] = nbformat.from_dict(state)
    return changed
