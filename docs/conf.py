"""Sphinx configuration: the functional doctests (*.txt) are chapters."""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__),
                                                '..', 'src')))

project = 'linksync'
author = 'the linksync developers'
copyright = '2026, the linksync developers'
extensions = ['sphinx.ext.autodoc']
source_suffix = {'.rst': 'restructuredtext', '.txt': 'restructuredtext'}
master_doc = 'index'
exclude_patterns = ['_build']
html_theme = 'alabaster'
autodoc_member_order = 'bysource'
nitpicky = False
