"""A database written before the layered layout opens and serves.

``tests/data/layout-0.fs`` was written by linksync's code as it was before
the modules were grouped into layers (``linksync.model``,
``linksync.agents``, ``linksync.interfaces``, ... as flat modules): two
clients, seven URLs (three checked), two export agents beside the
notifiers, a forced sync.
"""

import shutil

import pytest
from ZODB.FileStorage import FileStorage

from linksync.interfaces import IClientProvider, ISynchronization
from linksync.server.database import Database
from linksync.server.model.client import Client
from linksync.server.model.url import URL

FIXTURE = __file__.rsplit('/', 1)[0] + '/data/layout-0.fs'


@pytest.fixture
def old_database(tmp_path):
    path = tmp_path / 'Data.fs'
    shutil.copy(FIXTURE, path)
    database = Database(FileStorage(str(path)))
    yield database, path
    database.close()


def test_every_client_and_url_is_served_with_its_state(old_database):
    database, _ = old_database
    session = database.session()

    def read(app):
        import zope.component
        clients = zope.component.getUtility(IClientProvider)
        assert sorted(c.id for c in clients) == ['fred', 'wilma']
        fred = clients.get('fred')
        assert isinstance(fred, Client)
        assert fred.check_password('fred-password')
        assert not fred.check_password('wilma-password')
        assert sorted(u.url for u in fred.urls) == [
            'http://a.example/', 'http://b.example/x', 'https://c.example/']
        states = {u.url: (u.state, u.reason) for u in app.urls}
        assert states == {
            'http://a.example/': ('ok', '200 OK'),
            'http://b.example/x': ('unavailable', '404 Not Found'),
            'https://c.example/': ('temporary unavailable',
                                   'connection refused'),
            'ftp://d.example/file': (None, ''),
            'mailto:ann@e.example': (None, ''),
        }
        assert all(isinstance(u, URL) for u in app.urls)
        assert app.urls.get('http://b.example/x').clients == frozenset(
            {'fred', 'wilma'})
        assert ISynchronization(clients.get('wilma')).force is True
        assert app.state_counts.counts()['ok'] == 1
        assert sorted(a.id for a in app.sync.agents()) == [
            'client:fred', 'client:wilma', 'export', 'push']
        assert app.sync.track.count() > 0
        return True
    assert session.read(read)
    session.close()


def test_an_old_database_takes_new_changes_and_stores_new_names(
        old_database):
    database, path = old_database
    session = database.session()

    def change(app):
        app.urls.get('http://a.example/').set_result(
            'unavailable', '410 Gone', 1_700_000_100.0)
        app.clients.get('fred').set_password('a-new-password')
    session.run(change)
    session.close()
    database.close()
    data = path.read_bytes()
    # What was written again names the new modules.
    tail = data[-4000:]
    assert b'linksync.server.model.url' in tail
    assert b'linksync.server.model.client' in tail
    again = Database(FileStorage(str(path)))
    session = again.session()
    assert session.read(lambda app: (
        app.urls.get('http://a.example/').state,
        app.clients.get('fred').check_password('a-new-password'))) == (
        'unavailable', True)
    assert session.read(
        lambda app: app.problems is not None and app.schedule is not None)
    session.close()
    again.close()
