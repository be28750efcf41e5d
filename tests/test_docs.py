"""Run the functional doctests of docs/ and the doctests of the modules."""

import doctest
import importlib
import pathlib
import pkgutil

import pytest

import linksync
from linksync import testing

DOCS = pathlib.Path(__file__).resolve().parent.parent / 'docs'
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _run(test):
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = []
    try:
        runner.run(test, out=report.append)
    finally:
        testing.cleanup()
    assert runner.failures == 0, ''.join(report)


@pytest.mark.parametrize(
    'path', sorted(DOCS.glob('*.txt')), ids=lambda p: p.name)
def test_document(path, tmp_path, monkeypatch):
    # Every document runs in an empty directory of its own.
    monkeypatch.chdir(tmp_path)
    text = path.read_text(encoding='utf-8')
    test = doctest.DocTestParser().get_doctest(
        text, {'__name__': path.stem}, path.name, str(path), 0)
    _run(test)


def _modules():
    names = []
    for info in pkgutil.walk_packages(linksync.__path__, 'linksync.'):
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize('name', _modules())
def test_module_docstrings(name):
    module = importlib.import_module(name)
    for test in doctest.DocTestFinder().find(module):
        if test.examples:
            _run(test)
