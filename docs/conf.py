"""Sphinx configuration of numbaq's documentation site.

Build (warnings are errors, as in CI)::

    pip install -e ".[docs]"
    python -m sphinx -W -b html docs docs/_build/html

The API reference is generated from the docstrings (numpydoc format); the notebooks
are rendered from their committed outputs and never executed here
(``python notebooks/build.py`` regenerates them).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import ClassVar

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from docutils.statemachine import StringList

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")

import numbaq  # noqa: E402

project = "numbaq"
author = "the numbaq developers"
copyright = "2026, the numbaq developers"
version = release = numbaq.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "notebooks/.ipynb_checkpoints", "**/README.md"]
templates_path: list[str] = []

# Notebooks: rendered from the outputs committed with them, never executed at build time.
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# Docstrings: numpydoc sections; class members listed by autodoc, not numpydoc tables.
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_mock_imports: list[str] = []
suppress_warnings = ["myst.header"]

html_theme = "pydata_sphinx_theme"
html_title = f"numbaq {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path: list[str] = []
html_show_sourcelink = False


class OptionalAutomodule(Directive):
    """``.. optional-automodule:: numbaq.torch``: the module's API if it imports.

    numbaq has optional parts (``numbaq.torch`` needs PyTorch); a part that does not
    import in this build gets a note instead of a warning, so ``-W`` still passes.
    """

    required_arguments = 1
    option_spec: ClassVar[dict] = {
        "members": directives.unchanged,
        "requires": directives.unchanged,
        "objects-only": directives.flag,  # the listed members without the module's docstring
    }

    def run(self):
        name = self.arguments[0]
        try:
            importlib.import_module(name)
        except ImportError as exc:
            requires = self.options.get("requires", "")
            text = f"{name} is not available in this build ({exc})"
            text += f"; it needs {requires}." if requires else "."
            return [nodes.note("", nodes.paragraph(text=text))]
        members = self.options.get("members")
        if members:  # the module's docstring, then each listed object with its members
            lines = []
            if "objects-only" not in self.options:
                lines = [f".. automodule:: {name}", "   :no-members:", ""]
            module = sys.modules[name]
            for member in (m.strip() for m in members.split(",")):
                if not hasattr(module, member):  # an optional part of the module
                    continue
                kind = "autoclass" if isinstance(getattr(module, member), type) else "autofunction"
                lines += [f".. {kind}:: {name}.{member}", ""]
        else:
            lines = [f".. automodule:: {name}", "   :members:"]
        node = nodes.container()
        self.state.nested_parse(StringList(lines, source="optional-automodule"), 0, node)
        return node.children


def setup(app):
    app.add_directive("optional-automodule", OptionalAutomodule)
