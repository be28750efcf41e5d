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


def test_backup_and_pack_while_the_server_runs(tmp_path):
    data = str(tmp_path / 'var')
    server = Serve('--data', data, '--secret', 'sesame').start()
    try:
        proxy = server.proxy()
        proxy.registerClient('sesame', 'fred', 'http://127.0.0.1:9/', 'Fred',
                             'fred@example.com', 'pw')
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
