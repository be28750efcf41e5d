"""Operating a server: ZEO, backup and pack while it runs."""

import os
import subprocess
import sys
import time
import xmlrpc.client

from ZODB.FileStorage import FileStorage

from linksync.server.database import Database
from linksync.testing import free_port

from test_serve import Serve, run_cli


def _with_fred(server):
    """A proxy of the started `server`, with client fred registered."""
    proxy = server.proxy()
    proxy.registerClient('sesame', 'fred', 'http://127.0.0.1:9/', 'Fred',
                         'fred@example.com', 'pw')
    return proxy


def test_backup_and_pack_while_the_server_runs(tmp_path):
    data = str(tmp_path / 'var')
    server = Serve('--data', data, '--secret', 'sesame').start()
    try:
        proxy = _with_fred(server)
        for n in range(5):
            proxy.registerURLs('fred', 'pw', ['http://example.com/%d/%d' % (
                n, i) for i in range(100)])
        proxy.unregisterURLs('fred', 'pw', ['http://example.com/0/%d' % i
                                            for i in range(100)])
        backup = str(tmp_path / 'backup.fs')
        result = run_cli('backup', '--data', data, backup)
        assert result.returncode == 0, result.stderr
        assert 'transactions copied' in result.stdout
        # The server kept working meanwhile; the backup is consistent.
        assert proxy.checkConnection('fred', 'pw') == 2
        db = Database(FileStorage(backup, read_only=True))
        session = db.session()
        assert session.read(lambda app: (
            len(app.clients), app.clients.get('fred').url_count)) == (1, 400)
        session.close()
        db.close()
        # A second backup to the same file is refused, nothing overwritten.
        result = run_cli('backup', '--data', data, backup)
        assert result.returncode == 1
        assert 'exists already' in result.stderr

        size = os.path.getsize(os.path.join(data, 'Data.fs'))
        listen = 'tcp:%d:interface=127.0.0.1' % server.port
        result = run_cli('pack', '--data', data, '--listen', listen,
                         '--secret', 'sesame')
        assert result.returncode == 0, result.stderr
        assert os.path.getsize(os.path.join(data, 'Data.fs')) < size
        assert proxy.getURLStates('fred', 'pw', ['http://example.com/4/1'])
    finally:
        server.stop()


def test_two_servers_on_one_zeo_database(tmp_path):
    port = free_port()
    zeo = subprocess.Popen(
        [sys.executable, '-m', 'linksync.cli', 'zeo', '--data',
         str(tmp_path / 'zeo'), '--listen', '127.0.0.1:%d' % port],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    servers = []
    try:
        assert 'ZEO server' in zeo.stdout.readline()
        for name in ('a', 'b'):
            servers.append(Serve('--zeo', '127.0.0.1:%d' % port, '--data',
                                 str(tmp_path / name), '--secret',
                                 'sesame').start())
        first, second = (s.proxy() for s in servers)
        first.registerClient('sesame', 'fred', 'http://127.0.0.1:9/',
                             'Fred', 'fred@example.com', 'pw')
        first.registerURLs('fred', 'pw', ['http://a.example/'])
        # The other process sees both commits once ZEO's invalidations
        # arrive (first the client, then its URL).
        deadline = time.time() + 30
        rows = []
        while not rows:
            try:
                rows = second.getURLStates('fred', 'pw', [
                    'http://a.example/'])
            except xmlrpc.client.ProtocolError:
                pass
            if not rows:
                assert time.time() < deadline, 'not seen in 30 s'
                time.sleep(0.1)
        assert rows[0][0] == 'http://a.example/'
        result = run_cli('stats', '--zeo', '127.0.0.1:%d' % port)
        assert 'clients: 1' in result.stdout and 'urls: 1' in result.stdout
    finally:
        for server in servers:
            server.stop()
        zeo.terminate()
        zeo.wait(30)


def test_purge_removes_what_no_client_has_referenced_for_the_grace(tmp_path):
    from linksync import testing
    server = testing.ServerFixture(data=str(tmp_path / 'var')).start()
    server.clock.advance(1_760_000_000)
    server.register_client('wiki', 'pw')
    server.register_client('blog', 'pw')
    proxy = server.proxy()
    a, b, c = ('http://%s.example/' % n for n in 'abc')
    proxy.registerURLs('wiki', 'pw', [a, b, c])
    proxy.registerURLs('blog', 'pw', [b])
    proxy.unregisterURLs('wiki', 'pw', [a, b])        # b: blog still has it
    server.clock.advance(3600)
    proxy.unregisterURLs('wiki', 'pw', [c])
    server.clock.advance(60)
    admin = proxy.admin
    # Orphaned an hour ago (a) and a minute ago (c).
    assert admin.purge(server.secret, 600.0, True) == {
        'purged': 1, 'urls': [a]}
    assert server.read(lambda app: a in app.urls)       # a dry run
    assert admin.purge(server.secret, 600.0) == {'purged': 1, 'urls': [a]}
    assert server.read(lambda app: (a in app.urls, b in app.urls,
                                    c in app.urls)) == (False, True, True)
    # Registered again, an orphan is no orphan.
    proxy.registerURLs('blog', 'pw', [c])
    assert admin.purge(server.secret, 0.0) == {'purged': 0, 'urls': []}
    assert proxy.getURLStates('blog', 'pw', [b, c])
    for bad in (-1.0, float('inf')):
        try:
            admin.purge(server.secret, bad)
        except xmlrpc.client.Fault as fault:
            assert 'grace period' in fault.faultString
        else:
            raise AssertionError('purge took %r' % bad)
    try:
        admin.purge('guess', 0.0)
    except xmlrpc.client.ProtocolError as e:
        assert e.errcode == 401
    else:
        raise AssertionError('purge without the secret')


def test_linksync_purge_asks_the_running_server(tmp_path):
    data = str(tmp_path / 'var')
    server = Serve('--data', data, '--secret', 'sesame').start()
    try:
        proxy = _with_fred(server)
        urls = ['http://example.com/%d' % i for i in range(150)]
        proxy.registerURLs('fred', 'pw', urls)
        proxy.unregisterURLs('fred', 'pw', urls[:120])
        listen = 'tcp:%d:interface=127.0.0.1' % server.port
        common = ['--data', data, '--listen', listen, '--secret', 'sesame']
        result = run_cli('purge', *common)          # a week's grace
        assert result.returncode == 0, result.stderr
        assert result.stdout == ('removed 0 URL(s) no client has referenced '
                                 'for 604800 s\n')
        result = run_cli('purge', '--older-than', '0', '--dry-run', *common)
        lines = result.stdout.splitlines()
        assert len(lines) == 102 and lines[100] == '... and 20 more'
        assert lines[-1] == ('would remove 120 URL(s) no client has '
                             'referenced for 0 s')
        result = run_cli('purge', '--older-than', '0', *common)
        assert result.stdout.splitlines()[-1] == (
            'removed 120 URL(s) no client has referenced for 0 s')
        stats = run_cli('stats', *common).stdout
        assert 'urls: 30' in stats
        result = run_cli('purge', '--older-than', 'soon', *common)
        assert result.returncode == 2 and 'invalid seconds value' in \
            result.stderr
    finally:
        server.stop()
