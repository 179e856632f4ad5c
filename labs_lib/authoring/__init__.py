"""The course tooling, kept apart from the mathematics: nothing in the rest of labs_lib imports it.

==================  ================================================================
module              what it holds
==================  ================================================================
``notebooks``       what a course notebook is called, and listing and reading them
``generator``       the student-notebook generator: ``solutions/`` → ``notebooks/``
``solutions``       executing the solutions and refreshing their front matter and slide types
``front_matter``    the Colab badge and Colab-only setup cell that open every notebook
``slides``          RISE slide types for presenting the notebooks
``course_map``      the README's course-map figures, cut from the solutions' own outputs
``book``            the course's website: the solutions' stored outputs as HTML pages
``execution``       headless execution that cannot stall silently (``make stress``)
``cli``             ``python -m labs_lib.authoring`` (``--help`` is the manual)
==================  ================================================================
"""

from .generator import generate, make_student_notebook, plan, stale
from .notebooks import AuthoringError, course_notebooks, read_notebook

__all__ = ["AuthoringError", "course_notebooks", "generate", "make_student_notebook", "plan", "read_notebook",
           "stale"]
