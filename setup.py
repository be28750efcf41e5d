# Metadata lives in setup.cfg; this file exists for tools (buildout, older
# pips) that still look for it, and for the one C extension.
from setuptools import Extension, setup

setup(
    ext_modules=[
        # The hot mutations of tracked structures, in C: optional, so
        # that without a C compiler the install goes on and
        # linksync.tracked runs its pure-Python code (as it does when
        # LINKSYNC_PURE_PYTHON=1 is set).
        Extension('linksync.tracked._speedups',
                  ['src/linksync/tracked/_speedups.c'],
                  optional=True),
    ],
)
