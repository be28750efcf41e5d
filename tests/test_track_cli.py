"""linksync list, agent and destroy: alone, and while a server runs."""

import io
import json
import os
import re
import subprocess
import sys

import pytest
import zope.component

from linksync import cli, testing
from linksync.server import storage
from linksync.server.database import Database
from linksync.server.interfaces import IURLProvider
from linksync.server.model.client import Client

START = 1297082000.0
BIN = os.path.join(os.path.dirname(sys.executable), 'linksync')


def run_cli(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def local_database(data, fill=True):
    """A database in `data` (no server) with a client, URLs and changes."""
    database = Database(storage.open_storage(str(data)))
    session = database.session()

    def setup(app):
        client = Client('fred', 'http://127.0.0.1:9/', 'Fred',
                        'fred@example.com')
        client.created = START
        app.clients.add(client)
        from linksync.server.model import registration
        registration.register(client, ['http://a.example/',
                                       'http://b.example/'], START + 1)
        provider = zope.component.getUtility(IURLProvider)
        provider.get('http://a.example/').set_result('ok', '200 OK',
                                                     START + 12)
        provider.get('http://b.example/').set_result('unavailable', '404',
                                                     START + 25)
        app.sync.close(START + 40)
    try:
        if fill:
            session.run(setup)
    finally:
        session.close()
        database.close()


LINE = re.compile(r"(\d+) <ActionWrapper@0x[0-9a-f]+ \((.*)\) \[(.*)\] "
                  r"(\d+)>")


def parse(out):
    return [LINE.fullmatch(line).groups() for line in out.splitlines()]


# -- errors ------------------------------------------------------------------------

def test_no_database(capsys, tmp_path):
    for argv in (['list'], ['agent', 'list'], ['agent', 'simulate', 'x']):
        status, out, err = run_cli(capsys, *argv, '--data', tmp_path / 'no')
        assert status == 1 and out == ''
        assert err == 'linksync: error: no database at %s\n' % (
            tmp_path / 'no' / 'Data.fs')


def test_empty_track(capsys, tmp_path):
    local_database(tmp_path, fill=False)
    status, out, err = run_cli(capsys, 'list', '--data', tmp_path)
    assert (status, out, err) == (1, '', 'linksync: error: the track is '
                                  'empty\n')
    status, out, err = run_cli(capsys, 'agent', 'list', '--data', tmp_path)
    assert (status, out) == (0, 'no agents\n')


def test_unknown_agent(capsys, tmp_path):
    local_database(tmp_path)
    for argv in (['list', '--pointer', 'nope'], ['agent', 'remove', 'nope'],
                 ['agent', 'simulate', 'nope'], ['agent', 'run', 'nope'],
                 ['agent', 'export', 'nope']):
        status, out, err = run_cli(capsys, *argv, '--data', tmp_path)
        assert (status, err) == (1, "linksync: error: no agent 'nope'\n"), \
            argv


def test_bad_usage_exits_2(capsys, tmp_path):
    for argv in (['list', '--from', '1', '--pointer', 'a'],
                 ['list', '--from', 'x'], ['agent'], ['agent', 'add', 'jsonl'],
                 ['destroy', '--agents-only', '--track-only']):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv + ['--data', str(tmp_path)])
        assert exc.value.code == 2, argv
    capsys.readouterr()


@pytest.mark.parametrize('argv, message', [
    (['agent', 'add', 'carrier-pigeon', 'x'],
     "no agent kind 'carrier-pigeon' (known: jsonl, xmlrpc)"),
    (['agent', 'add', 'notifier', 'x'],
     'notifier agents come and go with their client (registerClient)'),
    (['agent', 'add', 'jsonl', 'x'], 'a jsonl agent needs: --file, '
     '--max-bytes, --keep'),
    (['agent', 'add', 'xmlrpc', 'x', '--url', 'ftp://x/'],
     "an xmlrpc agent needs an http or https --url, not 'ftp://x/'"),
    (['agent', 'add', 'jsonl', 'x', '--file', 'f', '--url', 'http://x/'],
     'a jsonl agent has no option --url'),
    (['agent', 'add', 'jsonl', 'x', '--file', 'f', '--keep', '-1'],
     '--max-bytes must be at least 1 and --keep at least 0'),
    (['agent', 'remove', 'client:fred'], "client:fred is the notifier of "
     "client 'fred': it goes when the client is removed"),
])
def test_agent_add_and_remove_errors(capsys, tmp_path, argv, message):
    local_database(tmp_path)
    status, out, err = run_cli(capsys, *argv, '--data', tmp_path)
    assert err.startswith('linksync: error: ' + message), err
    assert status == 1
    status, out, err = run_cli(capsys, 'agent', 'list', '--data', tmp_path)
    assert len(out.splitlines()) == 2           # nothing added


# -- on a database no server holds -----------------------------------------------

def test_list_newest_first_with_bounds(capsys, tmp_path):
    local_database(tmp_path)
    status, out, err = run_cli(capsys, 'list', '--data', tmp_path)
    assert status == 0 and err == ''
    assert parse(out) == [
        ('129708202', "<URL 'http://b.example/'>", 'state_changed',
         '1297082025'),
        ('129708201', "<URL 'http://a.example/'>", 'state_changed',
         '1297082012'),
        ('129708200', "<URL 'http://b.example/'>, <Client 'fred'>",
         'registered', '1297082001'),
        ('129708200', "<URL 'http://a.example/'>, <Client 'fred'>",
         'registered', '1297082001')]
    status, out, err = run_cli(capsys, 'list', '--from', 129708200, '--to',
                               129708201, '--data', tmp_path)
    assert [g[0] for g in parse(out)] == ['129708201']
    status, out, err = run_cli(capsys, 'list', '--to', 129708200,
                               '--data', tmp_path)
    assert [g[0] for g in parse(out)] == ['129708200', '129708200']
    status, out, err = run_cli(capsys, 'list', '--pointer', 'client:fred',
                               '--data', tmp_path)
    assert [g[0] for g in parse(out)] == ['129708202', '129708201',
                                          '129708200', '129708200']


def test_agents_locally(capsys, tmp_path):
    local_database(tmp_path)
    export = tmp_path / 'changes.jsonl'
    status, out, err = run_cli(capsys, 'agent', 'add', 'jsonl', 'archive',
                               '--file', export, '--description', 'archive',
                               '--data', tmp_path)
    assert status == 0, err
    assert re.fullmatch(r'jsonl agent archive added at bucket \d+: file '
                        r'\S+changes.jsonl \(rotated past 67108864 bytes, '
                        r'5 kept\)\n', out)
    status, out, err = run_cli(capsys, 'agent', 'add', 'jsonl', 'archive',
                               '--file', export, '--data', tmp_path)
    assert err == "linksync: error: an agent 'archive' exists already\n"
    status, out, err = run_cli(capsys, 'agent', 'list', '--data', tmp_path)
    lines = out.splitlines()
    assert lines[0].split() == ['NAME', 'KIND', 'POINTER', 'PENDING',
                                'STATUS', 'TARGET']
    assert lines[1].split()[:5] == ['archive', 'jsonl', lines[1].split()[2],
                                    '0', 'ok']
    assert lines[2].split()[:5] == ['client:fred', 'notifier', '129708199',
                                    '4', 'ok']
    status, out, err = run_cli(capsys, 'agent', 'simulate', 'client:fred',
                               '--data', tmp_path)
    assert out.splitlines()[0].startswith(
        'agent client:fred would send 2 item(s) for ]129708199, ')
    assert sorted(out.splitlines()[1:]) == [
        "updateManyStates fred ['http://a.example/', 'ok', '200 OK']",
        "updateManyStates fred ['http://b.example/', 'unavailable', '404']"]
    status, out, err = run_cli(capsys, 'agent', 'simulate', 'archive',
                               '--data', tmp_path)
    assert out.startswith('agent archive: nothing to send for ]')
    status, out, err = run_cli(capsys, 'agent', 'remove', 'archive',
                               '--data', tmp_path)
    assert (status, out) == (0, 'agent archive removed\n')
    assert not export.exists()                  # nothing ever ran


def test_agent_run_and_export_in_their_own_process(tmp_path):
    # Networking operations run under the command's own reactor.
    local_database(tmp_path)
    export = tmp_path / 'changes.jsonl'
    env = dict(os.environ, LINKSYNC_SECRET='s')

    def linksync(*argv):
        return subprocess.run([BIN] + [str(a) for a in argv] +
                              ['--data', str(tmp_path)], env=env,
                              capture_output=True, text=True, timeout=60)
    done = linksync('agent', 'add', 'jsonl', 'archive', '--file', export)
    assert done.returncode == 0, done.stderr
    done = linksync('agent', 'export', 'archive')
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r'agent archive: exported 4 item\(s\); pointer at '
                        r'bucket \d+\n', done.stdout)
    items = [json.loads(line) for line in export.read_text().splitlines()]
    assert sorted((i['object'], i['url'], i['action']) for i in items) == [
        ('registration', 'http://a.example/', 'created'),
        ('registration', 'http://b.example/', 'created'),
        ('url', 'http://a.example/', 'created'),
        ('url', 'http://b.example/', 'created')]
    done = linksync('agent', 'run', 'archive')
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('agent archive: sent 0 item(s); pointer '
                                  'at bucket ')
    # The notifier cannot reach its client (port 9): a clear failure.
    done = linksync('agent', 'run', 'client:fred')
    assert done.returncode == 1
    assert done.stderr.startswith('linksync: error: agent client:fred: the '
                                  'run failed: cannot call client ')


def test_destroy_asks_twice(capsys, tmp_path, monkeypatch):
    local_database(tmp_path)
    for answers in ('', 'n\n', 'y\nn\n', 'yes\n'):
        monkeypatch.setattr(sys, 'stdin', io.StringIO(answers))
        status, out, err = run_cli(capsys, 'destroy', '--data', tmp_path)
        assert status == 1
        assert err == ('linksync: error: not confirmed: nothing was erased '
                       '(--yes confirms)\n')
    status, out, err = run_cli(capsys, 'list', '--data', tmp_path)
    assert len(out.splitlines()) == 4
    monkeypatch.setattr(sys, 'stdin', io.StringIO('y\nyes\n'))
    status, out, err = run_cli(capsys, 'destroy', '--data', tmp_path)
    assert status == 0
    assert out.endswith('erased the change track and all its agents; 1 '
                        'client notifier agent(s) recreated\n')
    status, out, err = run_cli(capsys, 'list', '--data', tmp_path)
    assert err == 'linksync: error: the track is empty\n'
    status, out, err = run_cli(capsys, 'agent', 'list', '--data', tmp_path)
    assert [line.split()[0] for line in out.splitlines()] == [
        'NAME', 'client:fred']


def test_destroy_parts(capsys, tmp_path):
    local_database(tmp_path)
    run_cli(capsys, 'agent', 'add', 'jsonl', 'a', '--file', tmp_path / 'f',
            '--data', tmp_path)
    status, out, err = run_cli(capsys, 'destroy', '--yes', '--track-only',
                               '--data', tmp_path)
    assert status == 0 and 'erased the records of the change track' in out
    status, out, err = run_cli(capsys, 'agent', 'list', '--data', tmp_path)
    assert [line.split()[0] for line in out.splitlines()] == [
        'NAME', 'a', 'client:fred']
    status, out, err = run_cli(capsys, 'destroy', '--yes', '--agents-only',
                               '--data', tmp_path)
    status, out, err = run_cli(capsys, 'agent', 'list', '--data', tmp_path)
    assert [line.split()[0] for line in out.splitlines()] == [
        'NAME', 'client:fred']


# -- while a server runs on the database -------------------------------------------

def test_everything_works_while_the_server_runs(capsys, tmp_path):
    data = tmp_path / 'var'
    server = testing.ServerFixture(data=str(data), notify_attempts=1)
    server.clock.advance(START)
    server.start()
    callback = testing.CallbackServer('fred', 'pw').start()
    server.register_client('fred', 'pw', callback_url=callback.url)
    server.proxy().registerURLs('fred', 'pw', ['http://a.example/'])
    opts = ['--data', data, '--server', server.url, '--secret',
            server.secret]

    status, out, err = run_cli(capsys, 'agent', 'add', 'xmlrpc', 'mirror',
                               '--url', callback.url, '--method',
                               'pushChanges', *opts)
    assert status == 0, err
    assert out.startswith('xmlrpc agent mirror added at bucket 129708199')

    def check(app):
        zope.component.getUtility(IURLProvider).get(
            'http://a.example/').set_result('ok', '200 OK', START + 3)
    server.run(check)
    server.advance(11)                          # bucket 200 is closing
    status, out, err = run_cli(capsys, 'list', *opts)     # read-only
    assert [g[2] for g in parse(out)] == ['state_changed', 'registered']
    status, out, err = run_cli(capsys, 'agent', 'simulate', 'mirror', *opts)
    # The agent reads the bucket open when it was added: the registration
    # made just before is in it.
    assert out.splitlines() == [
        'agent mirror: nothing to send for ]129708199, 129708199] (0 '
        'record(s) read)', '(2 more record(s) in the open bucket)']

    status, out, err = run_cli(capsys, 'agent', 'run', 'mirror', *opts)
    assert status == 0, err
    assert out == 'agent mirror: sent 2 item(s); pointer at bucket ' \
        '129708200\n'
    assert sorted((i['object'], i['url'], i['action'], i['flags'],
                   i.get('state')) for i in callback.pushed) == [
        ('registration', 'http://a.example/', 'created', [], None),
        ('url', 'http://a.example/', 'modified', ['state_changed'], 'ok')]

    status, out, err = run_cli(capsys, 'agent', 'export', 'mirror', *opts)
    assert status == 0, err
    assert [(i['object'], i['action']) for i in callback.pushed[2:]] == [
        ('url', 'created'), ('registration', 'created')]

    status, out, err = run_cli(capsys, 'agent', 'remove', 'mirror', *opts)
    assert status == 0
    status, out, err = run_cli(capsys, 'destroy', '--yes', *opts)
    assert status == 0
    assert server.read(lambda app: [a.id for a in app.sync.agents()]) == [
        'client:fred']

    # A wrong secret is refused with a clear message.
    status, out, err = run_cli(capsys, 'agent', 'remove', 'x', '--data',
                               data, '--server', server.url, '--secret',
                               'wrong')
    assert status == 1 and 'refused the secret' in err


def test_commands_on_a_zeo_database_next_to_the_server(capsys, tmp_path):
    # With ZEO the command opens the database itself, beside the server.
    import ZEO
    address, stop = ZEO.server(path=str(tmp_path / 'Data.fs'))
    testing.on_cleanup(stop)
    zeo = '%s:%d' % address
    server = testing.ServerFixture(data=str(tmp_path / 'var'), zeo=zeo,
                                   notify_attempts=1)
    # The command runs on the wall clock: so does this server (no timed
    # assertion depends on it).
    import time
    server.clock.advance(time.time())
    server.start()
    server.register_client('fred', 'pw')
    sink = testing.CallbackServer().start()
    status, out, err = run_cli(capsys, 'agent', 'add', 'xmlrpc', 'mirror',
                               '--url', sink.url, '--method', 'pushChanges',
                               '--zeo', zeo)
    assert status == 0, err
    server.proxy().registerURLs('fred', 'pw', ['http://a.example/'])
    status, out, err = run_cli(capsys, 'list', '--zeo', zeo)
    assert [g[2] for g in parse(out)] == ['registered']
    # The server's agents run the agent the command added.
    server.advance(30)
    server.rt.call(server.service.getServiceNamed('agents').idle)
    assert [(i['object'], i['url']) for i in sink.pushed] == [
        ('registration', 'http://a.example/')]
    status, out, err = run_cli(capsys, 'agent', 'list', '--zeo', zeo)
    rows = [line.split()[:4] for line in out.splitlines()[1:]]
    assert [(name, kind, pending) for name, kind, _, pending in rows] == [
        ('client:fred', 'notifier', '0'), ('mirror', 'xmlrpc', '0')]
    assert rows[0][2] == rows[1][2]             # both read to the end
