"""The documentation builds, without a single warning."""

import pathlib
import subprocess
import sys

import pytest

DOCS = pathlib.Path(__file__).resolve().parent.parent / 'docs'


def test_sphinx_builds_without_warnings(tmp_path):
    pytest.importorskip('sphinx', reason='install the docs extra: '
                        "pip install -e '.[docs]'")
    result = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-q', '-W', '--keep-going', '-b',
         'html', str(DOCS), str(tmp_path / 'html')],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / 'html' / 'operations.html').exists()
    # The generated parts are there.
    api = (tmp_path / 'html' / 'api.html').read_text()
    assert 'registerURLs' in api and 'admin.stats' in api
    guide = (tmp_path / 'html' / 'operations.html').read_text()
    assert '--per-host-delay' in guide
