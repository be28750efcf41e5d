"""Sphinx configuration: the functional doctests (*.txt) are chapters."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'src'))
sys.path.insert(0, os.path.join(HERE, '_ext'))

project = 'linksync'
author = 'the linksync developers'
copyright = '2026, the linksync developers'
extensions = ['sphinx.ext.autodoc', 'linksync_docs']
source_suffix = {'.rst': 'restructuredtext', '.txt': 'restructuredtext'}
master_doc = 'index'
exclude_patterns = ['_build', '_ext']
html_theme = 'alabaster'
autodoc_member_order = 'bysource'
nitpicky = False
