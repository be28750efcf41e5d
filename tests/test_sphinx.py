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
    # The client kit: its chapters in the table of contents, its classes
    # in the reference.
    index = (tmp_path / 'html' / 'index.html').read_text()
    assert 'href="stores.html"' in index and 'href="client.html"' in index
    assert 'LMSClient.register_urls' in api and \
        'Synchronizer.sync' in api and 'LinkDatabase' in api
    # Every layer's interfaces, with their members.
    for name in ('linksync.tracked.interfaces.ITracker',
                 'linksync.stores.interfaces.IStore',
                 'linksync.agents.interfaces.ISyncManager',
                 'linksync.client.interfaces.ILMSClient',
                 'linksync.server.interfaces.IURLProvider',
                 'linksync.server.interfaces.IURL.set_result'):
        assert 'id="%s"' % name in api, name
    assert 'id="linksync.tracked.track"' in api
    # The chapters in a reader's order: running it first, the reference
    # last.
    chapters = ['operations', 'xmlrpc', 'checker', 'sync', 'livesync',
                'status', 'tracked', 'stores', 'client', 'scaling', 'design',
                'api']
    places = [index.find('href="%s.html"' % c) for c in chapters]
    assert -1 not in places and places == sorted(places), places
