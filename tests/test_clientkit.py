"""The client kit running: its link database, its callback, the server."""

import xmlrpc.client

import pytest
import yaml

from linksync import testing
from linksync.client import CallbackResource, LinkDatabase, StateChange
from linksync.client.service import ClientService
from linksync.stores import StoreError
from linksync.xmlrpc.site import LinkSyncSite

A = 'http://a.example/'
B = 'http://b.example/'
C = 'http://c.example/'


def links_in(path):
    """{url: state} in the file."""
    with open(path) as f:
        return {url: (record or {}).get('state', 'unknown')
                for url, record in yaml.safe_load(f)['links'].items()}


def server_urls(server, client_id='fred'):
    from linksync.server.interfaces import IClientProvider
    import zope.component
    return server.read(lambda app: sorted(zope.component.getUtility(
        IClientProvider).get(client_id).url_keys()))


def check(server, url, state, reason):
    """Store a check result on the server, as its checker would."""
    def store(app):
        app.urls.get(url).set_result(state, reason, server.clock.seconds())
    server.run(store)


def push(server):
    """Let the server's agents push what changed (two rounds: the bucket
    of the change closes, then it is sent)."""
    agents = server.service.getServiceNamed('agents')
    for _ in range(2):
        server.advance(15)
        server.rt.call(agents.idle)


# -- the callback resource ----------------------------------------------------

@pytest.fixture
def callback(tmp_path):
    """A LinkDatabase served by a CallbackResource on a free port."""
    db = LinkDatabase(str(tmp_path / 'links.yaml'))
    db.add(A, B)
    site = LinkSyncSite(CallbackResource(db, 'fred', 'secret'), 1024 * 1024)
    rt = testing.reactor_thread()

    def listen():
        from twisted.internet import endpoints
        return endpoints.TCP4ServerEndpoint(
            rt.reactor, 0, interface='127.0.0.1').listen(site)
    port = rt.call(listen)
    testing.on_cleanup(rt.call, port.stopListening)
    proxy = xmlrpc.client.ServerProxy('http://127.0.0.1:%d/'
                                      % port.getHost().port)
    return db, proxy


def test_callback_answers_the_server(callback):
    db, proxy = callback
    assert proxy.xmlrpc_getAllLinks('fred', 'secret') == [A, B]
    assert proxy.getAllLinks('fred', 'secret') == [A, B]
    assert proxy.updateManyStates('fred', 'secret', [
        [A, 'ok', '200 OK'], [C, 'ok', 'not ours']]) is True
    assert db.get(A).state == 'ok' and C not in db


@pytest.mark.parametrize('credentials', [('fred', 'wrong'),
                                         ('wilma', 'secret')])
def test_callback_checks_the_credentials(callback, credentials):
    db, proxy = callback
    for call in (lambda: proxy.xmlrpc_getAllLinks(*credentials),
                 lambda: proxy.updateManyStates(*credentials,
                                                [[A, 'ok', '']])):
        with pytest.raises(xmlrpc.client.ProtocolError) as caught:
            call()
        assert caught.value.errcode == 401
    assert db.get(A).state == 'unknown'


@pytest.mark.parametrize('rows, message', [
    ([[A, 'ok', ''], [B, 'sort of ok', '']], "unknown state 'sort of ok'"),
    ([[A, 'ok', ''], [B, 'ok']], 'three strings'),
    ([[A, 'ok', ''], 'garbage'], 'three strings'),
])
def test_a_bad_batch_of_states_stores_nothing(callback, rows, message):
    db, proxy = callback
    with pytest.raises(xmlrpc.client.Fault, match=message) as caught:
        proxy.updateManyStates('fred', 'secret', rows)
    assert caught.value.faultCode == -32602
    assert 'no state of this call was stored' in caught.value.faultString
    assert db.get(A).state == 'unknown'
    with pytest.raises(xmlrpc.client.Fault, match='must be array'):
        proxy.updateManyStates('fred', 'secret', 'not a list')


# -- the link database --------------------------------------------------------

def test_link_database(tmp_path):
    changes = []
    path = str(tmp_path / 'links.yaml')
    db = LinkDatabase(path, on_states=changes.extend)
    assert db.add(A, ' ' + B + ' ', A) == [A, B]
    assert db.add(A) == []
    with pytest.raises(ValueError, match='no link was added'):
        db.add(C, 'http://bad example/')
    assert db.urls() == [A, B] and len(db) == 2 and C not in db
    assert db.received([[A, 'unavailable', '404 Not Found'],
                        [C, 'ok', 'not ours']]) == 1
    assert db.received([[A, 'unavailable', '404 Not Found']]) == 1
    assert changes == [StateChange(A, 'unavailable', '404 Not Found',
                                   'unknown')]
    assert [link.name for link in db.links('unavailable')] == [A]
    assert db.remove(B, C) == [B]
    db.close()
    assert links_in(path) == {A: 'unavailable'}
    again = LinkDatabase.read(path)
    assert again.urls() == [A]
    with pytest.raises(StoreError, match='there is no link database'):
        LinkDatabase.read(str(tmp_path / 'none.yaml'))
    with pytest.raises(StoreError, match='is not connected to a server'):
        again.sync()


# -- the client kit and the server --------------------------------------------

def test_links_added_are_checked_and_their_states_arrive(server, tmp_path):
    changes = []
    kit = testing.ClientKit(server, str(tmp_path / 'links.yaml'),
                            on_states=changes.extend).start()
    kit.call(kit.db.add, A, B)
    kit.call(kit.db.synchronizer.settled)
    assert server_urls(server) == [A, B]
    check(server, A, 'ok', '200 OK')
    check(server, B, 'unavailable', '404 Not Found')
    push(server)
    assert links_in(kit.path) == {A: 'ok', B: 'unavailable'}
    assert sorted(changes) == [
        StateChange(A, 'ok', '200 OK', 'unknown'),
        StateChange(B, 'unavailable', '404 Not Found', 'unknown')]
    kit.call(kit.db.remove, B)
    kit.call(kit.db.synchronizer.settled)
    assert server_urls(server) == [A]
    # The server's daily synchronisation finds the same links.
    [result] = testing.sync_now(server, 'fred')
    assert (result.status, result.registered, result.unregistered) == (
        'ok', 0, 0)


def test_a_database_edited_offline_is_reconciled(server, tmp_path):
    kit = testing.ClientKit(server, str(tmp_path / 'links.yaml')).start()
    kit.call(kit.db.add, A, B)
    kit.call(kit.db.synchronizer.settled)
    server.register_client('wilma', 'wilma-pw')  # another client has C,
    server.proxy().registerURLs('wilma', 'wilma-pw', [C])
    check(server, C, 'ok', '200 OK')            # and it was checked
    testing.sync_now(server)            # fred is not due for a day now
    kit.stop()
    # By hand, while the client kit does not run: B goes, C comes.
    with open(kit.path) as f:
        data = yaml.safe_load(f)
    del data['links'][B]
    data['links'][C] = None
    with open(kit.path, 'w') as f:
        yaml.safe_dump(data, f)
    kit.start()
    # Its first synchronisation registered C (and took its state), and
    # asked for a forced synchronisation, which unregisters B.
    assert links_in(kit.path) == {A: 'unknown', C: 'ok'}
    assert server_urls(server) == [A, B, C]
    [result] = testing.sync_now(server)
    assert (result.client_id, result.status, result.unregistered) == (
        'fred', 'ok', 1)
    assert server_urls(server) == [A, C]


def test_the_kit_keeps_working_across_a_server_restart(server, tmp_path):
    # Calls are not tried again at once (retries=0): what fails is seen
    # pending, and tried again by the Synchronizer after 30 s.
    kit = testing.ClientKit(server, str(tmp_path / 'links.yaml'),
                            retries=0, retry_delay=30).start()
    kit.call(kit.db.add, A)
    kit.call(kit.db.synchronizer.settled)
    server.restart()            # kept-alive connections go stale
    kit.call(kit.db.add, B)
    kit.call(kit.db.synchronizer.settled)
    assert server_urls(server) == [A, B]
    server.stop()
    kit.call(kit.db.add, C)
    kit.call(kit.db.synchronizer.settled)
    [pending] = kit.db.synchronizer.pending
    assert 'connection refused' in pending.error
    server.restart()
    kit.advance(29)
    assert kit.db.synchronizer.pending == [pending]
    kit.advance(1)
    assert kit.db.synchronizer.pending == []
    assert server_urls(server) == [A, B, C]
    check(server, C, 'ok', '200 OK')
    push(server)
    assert links_in(kit.path)[C] == 'ok'


def test_the_first_sync_is_tried_until_the_server_answers(server,
                                                          tmp_path):
    path = str(tmp_path / 'links.yaml')
    db = LinkDatabase(path)
    db.add(A)
    db.close()
    kit = testing.ClientKit(server, path, retries=0, retry_delay=5)
    server.stop()
    kit.start()
    assert 'connection refused' in kit.service.sync_error
    server.restart()
    kit.advance(5)
    assert kit.service.sync_error == '' and server_urls(server) == [A]


def test_one_database_is_served_once(server, tmp_path):
    kit = testing.ClientKit(server, str(tmp_path / 'links.yaml')).start()
    other = ClientService(kit.path, server.url, 'fred', 'secret',
                          'tcp:0:interface=127.0.0.1', kit.rt.reactor)
    with pytest.raises(StoreError, match='is served already .process'):
        kit.call(other.startService)
    assert not other.running


def test_the_status_page(server, tmp_path):
    kit = testing.ClientKit(server, str(tmp_path / 'links.yaml')).start()
    import urllib.request
    page = urllib.request.urlopen(kit.callback_url.replace('/RPC2', '/'))
    assert b'0 links in' in page.read()
