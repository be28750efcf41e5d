# All metadata lives in setup.cfg; this file exists for tools (buildout,
# older pips) that still look for it.
from setuptools import setup

setup()
