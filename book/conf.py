"""Sphinx settings of the course's website (``make book``; the sources come from labs_lib.authoring.book).

Every setting here keeps the site self-contained: it is read offline, so no page may load anything
from another server (the browser test, browser_tests/test_book.py, blocks and reports any such request).
"""

from pathlib import Path

project = "Flow Matching & Diffusion Labs"
author = "the course's authors"
copyright = "the course's authors"

extensions = [
    "myst_nb",  # notebooks and MyST markdown as pages (it includes myst_parser)
    # MathJax 3 as files of the site (its extension copies them into _static/mathjax and points
    # mathjax_path there): Sphinx's default loads MathJax from a CDN.
    "sphinx-mathjax-offline",
]

# The notebooks are shown with the outputs they stored: the solutions are committed executed.
nb_execution_mode = "off"
# MyST-NB would load require.js and the ipywidgets manager from a CDN for notebooks with widget state;
# the sources carry static stand-ins instead (labs_lib.authoring.book.widget_html).
nb_ipywidgets_js = {}
# Show the rich outputs a notebook stored, in JupyterLab's order of preference.
nb_mime_priority_overrides = [("html", "text/plain", None)]

# $...$ and $$...$$ as in Jupyter's markdown; amsmath for \begin{aligned} and friends; html_image makes
# the course map's <img> tags images of the site (copied into it), as markdown images are.
myst_enable_extensions = ["dollarmath", "amsmath", "html_image"]
myst_heading_anchors = 3

html_theme = "sphinx_book_theme"
html_title = project
html_static_path = [str(Path(__file__).parent / "_static")]
html_css_files = ["course.css"]
html_theme_options = {
    "show_toc_level": 2,
    "home_page_in_toc": True,
    "use_download_button": True,  # the page's notebook (.ipynb) and its source
    "navigation_with_keys": False,
}
html_show_sourcelink = False
html_last_updated_fmt = None
# The site is read from files as well as from a server.
html_copy_source = True

# The student notebooks are files to download from each lab's page, not pages of their own.
exclude_patterns = ["student_notebooks", "**.ipynb_checkpoints"]
# The theme's light colours by default (the figures are drawn on white); a reader can still switch.
# Without a default the theme logs an error in the console on a reader's first visit.
html_context = {"default_mode": "light"}
