"""Sphinx configuration of the chapter's HTML book (built by ``python -m book.build``).

The source tree is staged by book/build.py under _build/book/src: this folder's pages
(index.md, bibliography.md), the executed notebooks/NN-*.ipynb (outputs as committed; nothing
is executed), img/ and references.bib. Everything the built site needs -- theme assets and
MathJax -- is served from the site itself: no page fetches anything from the network.
"""

from __future__ import annotations

import dataclasses

import sphinxcontrib.bibtex.plugin
from sphinxcontrib.bibtex.style.referencing import BracketStyle
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle

project = "Sequence Modeling and RNNs"
author = "The chapter's authors"
copyright = "the chapter's authors (MIT licence)"

extensions = [
    "myst_nb",  # MyST markdown + .ipynb reader (also loads myst_parser)
    "sphinxcontrib.bibtex",
    "sphinx.ext.mathjax",
]

root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
# the ipynb files are the sources; their .md twins are not staged (see build.py)
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}

# --- notebooks: render the committed outputs, never execute -----------------------------
nb_execution_mode = "off"
nb_merge_streams = True
nb_ipywidgets_js = {}  # no require.js / widget bundle from a CDN
# a cell's text/markdown output (notebook 05's scoreboard) is parsed as MyST, which has tables;
# myst-nb's default, CommonMark, has none and shows a table as a paragraph of pipes
nb_render_markdown_format = "myst"

# --- MyST ---------------------------------------------------------------------------------
myst_enable_extensions = [
    "dollarmath",  # $x$, $$ ... $$ (label)
    "amsmath",
    "colon_fence",
    "deflist",
    "substitution",
]
myst_dmath_double_inline = True
myst_heading_anchors = 3

# --- numbering of figures, tables and equations ({numref}, {eq}) ----------------------------
numfig = True
numfig_format = {
    "figure": "Fig. %s",
    "table": "Table %s",
    "code-block": "Listing %s",
    "section": "Section %s",
}
math_numfig = True
math_eqref_format = "({number})"

# --- citations ------------------------------------------------------------------------------
bibtex_bibfiles = ["references.bib"]
# {cite}`key` -> (Author, year); {cite:t}`key` -> Author (year). The reference list is
# sorted by author ("plain"); book.css hides its numeric labels.
bibtex_default_style = "plain"


def _round() -> BracketStyle:
    return BracketStyle(left="(", right=")")


@dataclasses.dataclass
class RoundAuthorYear(AuthorYearReferenceStyle):
    bracket_parenthetical: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_textual: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_author: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_label: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_year: BracketStyle = dataclasses.field(default_factory=_round)


sphinxcontrib.bibtex.plugin.register_plugin(
    "sphinxcontrib.bibtex.style.referencing", "author_year_round", RoundAuthorYear, force=True
)
bibtex_reference_style = "author_year_round"

# --- MathJax 3, served from the site ----------------------------------------------------------
# build.py copies the es5 build of MathJax 3 (PyPI: django-static-mathjax) into _static/mathjax/.
mathjax_path = "mathjax/tex-chtml.js"  # relative to _static/
# (myst-parser adds options.processHtmlClass so that only math nodes are typeset)
mathjax3_config = {"options": {"enableMenu": True}}

# --- HTML -----------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["_static"]  # book.css, and MathJax under mathjax/
html_css_files = ["book.css"]
# one search field (the theme's header has one already)
html_sidebars = {"**": ["navbar-logo.html", "icon-links.html", "sbt-sidebar-nav.html"]}
html_last_updated_fmt = None
html_copy_source = True  # the download button offers the .ipynb
html_show_sourcelink = False
html_theme_options = {
    "home_page_in_toc": False,  # the title above the table of contents links home
    "show_toc_level": 2,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "navigation_with_keys": False,
    "show_navbar_depth": 1,
}
