"""What counts as a course notebook, shared by the generator and the course-map figures."""

from __future__ import annotations

import re

# solutions/NN_topic.ipynb and notebooks/NN_topic.ipynb: two digits, an underscore, a topic
NOTEBOOK_NAME = re.compile(r"^\d\d_[\w-]+\.ipynb$")


class AuthoringError(Exception):
    """A solution notebook cannot be turned into a student notebook (the message says why)."""
