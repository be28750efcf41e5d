"""A database written by an earlier version of the server opens and serves.

``tests/data/main-2026-12-03.fs.gz`` is a FileStorage written by the
server's code of 2026-12-03 (tests/fixtures/make_main_fixture.py made it:
three clients with 300 URLs, some under spellings that are not their
normal form, states with a history, a client removed whose URLs are now
orphans, notifications of one client off, a sync asked for, an export
agent and the notifiers with the whole change track still to send).
``main-2026-12-03.json`` beside it holds what that server answered.

Each test unpacks a copy into a data directory of its own, laid out as
``linksync serve --data DIR`` has it (``DIR/Data.fs``, ``DIR/secret``),
opens it with the server of today and holds it to those answers, over
XML-RPC and HTTP where a user sees them.
"""

import ast
import errno
import gzip
import importlib.util
import json
import os
import shutil
import socket
import time
import xmlrpc.client

import pytest
import zope.component

from linksync import cli, states, testing, urlnorm
from linksync.commands.agent import format_table
from linksync.server import options as config
from linksync.server.interfaces import IURLProvider
from linksync.testing import servers as testservers

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = os.path.join(HERE, 'data', 'main-2026-12-03')
with open(NAME + '.json', encoding='utf-8') as _f:
    EXPECTED = json.load(_f)
SECRET = EXPECTED['secret']
CLIENTS = EXPECTED['clients']


def _load_maker():
    """The script that made the fixture: its readers of the database are
    the ones the answers were taken with."""
    spec = importlib.util.spec_from_file_location(
        'make_main_fixture', os.path.join(HERE, 'fixtures',
                                          'make_main_fixture.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKER = _load_maker()


def unpack(data):
    """A data directory `data` holding a copy of the fixture (the fixture
    itself is never opened: opening writes)."""
    os.makedirs(data, mode=0o700)
    with gzip.open(NAME + '.fs.gz', 'rb') as f, \
            open(os.path.join(data, 'Data.fs'), 'wb') as out:
        shutil.copyfileobj(f, out)
    os.chmod(os.path.join(data, 'Data.fs'), 0o600)
    # The management secret, where `linksync serve --data DIR` keeps it:
    # the callback credentials are sealed with it.
    with open(os.path.join(data, 'secret'), 'w', encoding='utf-8') as f:
        f.write(SECRET + '\n')
    return str(data)


@pytest.fixture
def data(tmp_path):
    return unpack(tmp_path / 'var')


def open_server(data, **settings):
    """The server of today on `data`, its clock where the old one left it."""
    server = testing.ServerFixture(data=data, secret=SECRET, **settings)
    server.clock.advance(EXPECTED['now'])
    return server.start()


def multicall(proxy, method, *calls):
    batch = xmlrpc.client.MultiCall(proxy)
    for args in calls:
        getattr(batch, method)(*args)
    return list(batch())


def assert_answers_as_recorded(proxy, base_url):
    """Every client's answers over XML-RPC and HTTP are the recorded ones."""
    for client_id, want in sorted(CLIENTS.items()):
        password = want['password']
        assert proxy.checkConnection(client_id, password) == 2
        with pytest.raises(xmlrpc.client.ProtocolError) as e:
            proxy.checkConnection(client_id, password + 'x')
        assert e.value.errcode == 401
        assert proxy.getClientNotifications(client_id, password) is \
            want['notifications']
        assert proxy.getURLStates(client_id, password,
                                  want['spellings']) == want['states'], \
            client_id
        assert multicall(proxy, 'getStatus', *[
            (client_id, password, url) for url in want['spellings']
        ]) == want['statuses'], client_id
        alerts = testing.fetch('%s/alerts/%s?format=json' % (
            base_url, client_id), password=password, user=client_id,
            accept=None)
        assert alerts.status == 200
        assert json.loads(alerts.text) == want['alerts'], client_id
    # The removed client is gone for good.
    with pytest.raises(xmlrpc.client.ProtocolError) as e:
        proxy.checkConnection('doomed', 'doomed-password-0123456789')
    assert e.value.errcode == 401
    assert proxy.admin.stats(SECRET) == EXPECTED['stats']
    # The management secret of the directory is the one of old.
    with pytest.raises(xmlrpc.client.Fault) as e:
        proxy.registerClient(SECRET, 'alpha', 'http://127.0.0.1:9/', 'A',
                             'a@example.com', 'another-password-0123')
    assert e.value.faultCode == 409


def cli_lines(capsys, *args):
    assert cli.main([str(a) for a in args]) == 0
    return capsys.readouterr().out.splitlines()


# -- opened as a user opens it -------------------------------------------------------

def test_linksync_serve_on_the_directory_answers_as_the_old_server_did(
        data, capsys):
    # An API process (no checker, syncer or agents: nothing changes the
    # states while they are compared), on the directory alone: the secret
    # comes from DIR/secret.
    api = testing.Command(
        'serve', '--role', 'api', '--data', data, '--listen',
        'tcp:%d:interface=127.0.0.1' % testing.free_port(),
        ready='listening on').start()
    base_url = 'http://127.0.0.1:%d' % int(
        api.text.split('listening on http://127.0.0.1:')[1].split('/')[0])
    proxy = xmlrpc.client.ServerProxy(base_url + '/RPC2')
    assert_answers_as_recorded(proxy, base_url)
    # The commands that read the database while a server runs on it.
    agents = EXPECTED['agents']
    header = ('NAME', 'KIND', 'POINTER', 'PENDING', 'STATUS', 'TARGET')
    assert cli_lines(capsys, 'agent', 'list', '--data', data) == list(
        format_table([header] + [tuple(agents[name]['row'][h]
                                       for h in header)
                                 for name in sorted(agents)]))
    for name in sorted(agents):
        assert cli_lines(capsys, 'agent', 'simulate', name, '--data',
                         data) == agents[name]['simulation'], name
    # `stats` asks the server that holds the database.
    assert cli_lines(capsys, 'stats', '--data', data, '--server',
                     base_url + '/RPC2') == [
        'clients: %d' % EXPECTED['stats']['clients'],
        'urls: %d' % EXPECTED['stats']['urls']]
    assert api.stop() == 0


def test_the_database_holds_what_the_old_server_left(data):
    server = open_server(data)
    assert_answers_as_recorded(server.proxy(), server.base_url)
    for client_id, want in sorted(CLIENTS.items()):
        got = server.read(MAKER.client_record, client_id, SECRET)
        assert got == {key: want[key] for key in got}, client_id
    # Every URL: its state, schedule, clients and history.
    assert server.read(MAKER.url_records) == EXPECTED['urls']
    assert sorted(url for url, record in EXPECTED['urls'].items()
                  if not record['clients']) == EXPECTED['orphans']
    assert server.read(MAKER.agent_records) == EXPECTED['agents']
    # The samples of the charts and uptimes of the status pages.
    assert server.read(MAKER.trend_records) == EXPECTED['trends']


def read_as_stored(data, func):
    """func(app) on the fixture's database as the old server left it
    (opened read-only: nothing is migrated)."""
    from ZODB.FileStorage import FileStorage

    from linksync.server.database import Database
    old = Database(FileStorage(os.path.join(data, 'Data.fs'),
                               read_only=True), create=False)
    session = old.session()
    try:
        return session.read(func)
    finally:
        session.close()
        old.close()


def test_the_back_off_of_temporary_failures_is_kept(data):
    """That server kept the temporary failures in a row in a tree of the
    schedule; opened by today's, each URL keeps its own."""
    kept = read_as_stored(
        data, lambda app: dict(app.schedule._failures.items()))
    assert len(kept) == 43
    server = open_server(data)

    def failures(app):
        provider = zope.component.getUtility(IURLProvider)
        return ({url.url: url.failures for url in provider if url.failures},
                '_failures' in app.schedule.__dict__)
    assert server.read(failures) == (kept, False)


def test_the_histories_move_into_the_trees_of_their_shards(data):
    """That server kept every URL's history in one tree; opened by
    today's, each is in the tree of its host's shard, and reads the same
    (the records of every URL are compared in the test above)."""
    from linksync.server.model import partition
    kept = read_as_stored(data, lambda app: sorted(app.history._urls.keys()))
    assert len(kept) > 100
    server = open_server(data)

    def shards(app):
        history = app.history
        return (history._urls, len(history), sorted(
            (key, shard) for shard, tree in enumerate(history._shards)
            for key in tree.keys()))
    old_tree, count, placed = server.read(shards)
    assert old_tree is None and count == len(kept)
    assert [key for key, _ in placed] == kept
    assert all(shard == partition.shard_of(key) for key, shard in placed)


# -- changed after opening, and opened again ------------------------------------------

def state_of(server, url):
    def read(app):
        found = zope.component.getUtility(IURLProvider).get(url)
        return None if found is None else (found.state, found.reason)
    return server.read(read)


def test_the_opened_database_takes_changes_and_opens_again(data):
    web = testservers.HTTPTestServer('127.0.0.2')
    server = open_server(data, per_host_delay=0.0,
                         allow_network=[config.network('127.0.0.0/8')])
    web.clock = server.clock
    web.start()
    proxy = server.proxy()
    alpha = ('alpha', CLIENTS['alpha']['password'])
    beta = ('beta', CLIENTS['beta']['password'])
    new = web.url('/status/200')
    gone = CLIENTS['beta']['spellings'][-1]
    # Registered anew, a URL of old, and a URL no one had any more.
    orphan = EXPECTED['orphans'][0]
    shared = CLIENTS['alpha']['spellings'][0]
    answer = proxy.registerURLs(*alpha, [new, shared, orphan])
    old = {row[0]: row[1:3] for row in CLIENTS['alpha']['states']}
    assert [shared] + old[shared] in answer
    assert proxy.unregisterURLs(*beta, [gone]) is True
    assert proxy.getURLStates(*beta, [gone]) == []
    # The checker checks the new URL (and the others that are due) on
    # the old database.
    for _ in range(600):
        if (state_of(server, new) or (None,))[0] is not None:
            break
        server.advance(1.0)
        time.sleep(0.01)
    assert state_of(server, new) == (states.OK, '200 OK')
    [row] = proxy.getURLStates(*alpha, [new])
    assert row[:3] == [new, states.OK, '200 OK'] and row[3]
    before = {client_id: proxy.getURLStates(
        client_id, want['password'], want['spellings'] + [new, orphan])
        for client_id, want in CLIENTS.items()}
    records = server.read(MAKER.url_records)
    assert records[orphan]['clients'] == ['alpha']
    assert 'beta' not in records[urlnorm.normalize(gone)]['clients']
    server.stop()

    # Opened again, by a server of its own: all of it is there.
    again = testing.ServerFixture(data=data, secret=SECRET)
    again.clock.advance(server.clock.seconds())
    again.start()
    proxy = again.proxy()
    for client_id, want in CLIENTS.items():
        assert proxy.getURLStates(
            client_id, want['password'],
            want['spellings'] + [new, orphan]) == before[client_id]
    assert again.read(MAKER.url_records) == records


# -- what the old server had still to send ----------------------------------------

def _free(port):
    with socket.socket() as s:
        try:
            s.bind(('127.0.0.1', port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def parse_notifier_lines(lines):
    """The rows of `agent simulate` lines of a notifier."""
    rows = []
    for line in lines[1:]:
        method, client_id, row = line.split(' ', 2)
        assert method == 'updateManyStates'
        rows.append(ast.literal_eval(row))
    return rows


def test_the_callbacks_get_what_the_old_server_had_to_send(data):
    ports = MAKER.CALLBACK
    busy = [port for port in ports.values() if not _free(port)]
    if busy:
        pytest.skip('the callback ports the database names are in use: %s'
                    % busy)
    callbacks = {}
    for client_id in CLIENTS:
        client_id_, password = CLIENTS[client_id]['callback_credentials']
        callbacks[client_id] = testing.CallbackServer(
            client_id_, password,
            links=CLIENTS[client_id]['spellings']).start(ports[client_id])
        assert callbacks[client_id].url == \
            CLIENTS[client_id]['callback_url']
    target = testing.CallbackServer().start(ports['audit'])
    assert target.url == EXPECTED['export']['url']
    # Without a checker: the states stay what the old server left.
    server = open_server(data, roles=('api', 'syncer', 'agents'))
    agents = EXPECTED['agents']
    audit = [json.loads(line) for line in
             agents[EXPECTED['export']['name']]['simulation'][1:]]
    notified = {client_id: parse_notifier_lines(
        agents['client:' + client_id]['simulation'])
        for client_id in CLIENTS}

    def arrived():
        return len(target.pushed) >= len(audit) and all(
            len(callbacks[c].rows()) >= len(notified[c])
            for c in ('alpha', 'beta')) and \
            server.read(MAKER.client_record, 'beta', SECRET)[
                'synchronization']['last'] is not None
    for _ in range(300):
        if arrived():
            break
        server.advance(5.0)
        time.sleep(0.02)
    assert arrived()
    testing.wait_for_syncer(server)
    # The export agent gets the whole change track, as it was reduced.
    assert [json.dumps(item, sort_keys=True) for item in target.pushed] \
        == [json.dumps(item, sort_keys=True) for item in audit]
    # Alpha gets the state changes it missed, under its own spellings,
    # called with its own credentials (unsealed with the old secret).
    assert callbacks['alpha'].rows() == notified['alpha']
    assert set(map(tuple, callbacks['alpha'].credentials)) == {
        tuple(CLIENTS['alpha']['callback_credentials'])}
    # Beta, whose sync was asked for, is synchronised too: its links are
    # unchanged and it gets the state of every URL ('unknown', with no
    # reason, for those not checked yet).
    sync_states = {url: [state, reason if state != 'unknown' else '']
                   for url, state, reason in CLIENTS['beta']['statuses']}
    assert callbacks['beta'].states == {**{
        row[0]: list(row[1:]) for row in notified['beta']}, **sync_states}
    assert set(map(tuple, callbacks['beta'].credentials)) == {
        tuple(CLIENTS['beta']['callback_credentials'])}
    record = server.read(MAKER.client_record, 'beta', SECRET)
    assert record['synchronization']['force'] is False
    assert record['synchronization']['last_error'] == ''
    assert server.proxy().getURLStates(
        'beta', CLIENTS['beta']['password'],
        CLIENTS['beta']['spellings']) == CLIENTS['beta']['states']
    # Gamma's notifications are off: nothing is sent to it.
    assert callbacks['gamma'].calls == []
