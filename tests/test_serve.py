"""`linksync serve` and the command line, as a user runs them."""

import os
import signal
import subprocess
import sys
import time
import xmlrpc.client

import pytest

from linksync.testing import free_port

LINKSYNC = [sys.executable, '-m', 'linksync.cli']


class Serve:
    """A `linksync serve` process."""

    def __init__(self, *args, env=None):
        self.port = free_port()
        self.args = list(args)
        self.env = dict(os.environ)
        self.env.pop('LINKSYNC_SECRET', None)
        self.env.update(env or {})
        self.output = []

    def start(self):
        self.process = subprocess.Popen(
            LINKSYNC + ['serve', '--listen',
                        'tcp:%d:interface=127.0.0.1' % self.port] + self.args,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=self.env, preexec_fn=_interruptible)
        # Wait for the line saying where it listens.
        for line in self.process.stdout:
            self.output.append(line)
            if 'listening on' in line:
                return self
        raise AssertionError('server did not start:\n' + ''.join(self.output))

    def stop(self, sig=signal.SIGTERM):
        self.process.send_signal(sig)
        rest, _ = self.process.communicate(timeout=30)
        self.output.append(rest)
        return self.process.returncode

    @property
    def text(self):
        return ''.join(self.output)

    def proxy(self):
        return xmlrpc.client.ServerProxy(
            'http://127.0.0.1:%d/RPC2' % self.port)


def _interruptible():
    """SIGINT as at a terminal: a shell starting the tests in the
    background (``make test &``) makes its children ignore SIGINT, and
    an ignored SIGINT stays ignored (Python and Twisted leave it so)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(*args, **kw):
    return subprocess.run(LINKSYNC + list(args), capture_output=True,
                          text=True, timeout=60, **kw)


def test_first_start_generates_a_secret_and_a_restart_finds_the_data(
        tmp_path):
    data = str(tmp_path / 'var')
    server = Serve('--data', data).start()
    try:
        secret = open(os.path.join(data, 'secret')).read().strip()
        assert 'management secret' in server.text
        assert secret in server.text
        assert oct(os.stat(os.path.join(data, 'secret')).st_mode)[-3:] == \
            '600'
        proxy = server.proxy()
        proxy.registerClient(secret, 'fred', 'http://127.0.0.1:9/', 'Fred',
                             'fred@example.com', 'fred-password')
        proxy.registerURLs('fred', 'fred-password', ['http://a.example/'])
    finally:
        assert server.stop() == 0
    assert 'database is closed' in server.text
    # Never a password in the log.
    assert 'fred-password' not in server.text
    assert 'fred registerURLs ok' in server.text

    again = Serve('--data', data).start()
    try:
        # The secret is kept, and not printed again.
        assert secret not in again.text
        proxy = again.proxy()
        assert proxy.checkConnection('fred', 'fred-password') == 2
        assert proxy.getURLStates('fred', 'fred-password', [
            'http://a.example/'])[0][0] == 'http://a.example/'
    finally:
        assert again.stop(signal.SIGINT) == 0


def test_options_from_ini_file_and_environment(tmp_path):
    data = tmp_path / 'var'
    ini = tmp_path / 'linksync.ini'
    ini.write_text('[linksync]\ndata = %s\nmax-request-bytes = 2000\n' % data)
    server = Serve('--config', str(ini),
                   env={'LINKSYNC_SECRET': 'from-env'}).start()
    try:
        proxy = server.proxy()
        proxy.registerClient('from-env', 'fred', 'http://127.0.0.1:9/',
                             'Fred', 'fred@example.com', 'pw')
        with pytest.raises(xmlrpc.client.ProtocolError) as info:
            proxy.registerURLs('fred', 'pw', ['http://example.com/%d' % i
                                              for i in range(100)])
        assert info.value.errcode == 413
    finally:
        server.stop()
    assert not (data / 'secret').exists()


def test_port_in_use_is_a_clear_failure(tmp_path):
    first = Serve('--data', str(tmp_path / 'a')).start()
    try:
        result = run_cli('serve', '--data', str(tmp_path / 'b'), '--listen',
                         'tcp:%d:interface=127.0.0.1' % first.port)
        assert result.returncode == 1
        assert 'cannot listen' in result.stderr
    finally:
        first.stop()


@pytest.mark.parametrize('args, status, message', [
    ([], 2, 'required: COMMAND'),
    (['nonsense'], 2, 'invalid choice'),
    (['serve', '--max-request-bytes', 'lots'], 2, 'invalid number value'),
    (['serve', '--config', '/nonexistent.ini'], 1, 'cannot read'),
    (['serve', '--log-level', 'chatty', '--data', '{tmp}'], 1,
     'unknown log level'),
])
def test_usage_errors(tmp_path, args, status, message):
    args = [a.replace('{tmp}', str(tmp_path)) for a in args]
    result = run_cli(*args)
    assert result.returncode == status
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()[-1]) < 300


def test_bad_ini_file(tmp_path):
    ini = tmp_path / 'bad.ini'
    ini.write_text('[linksync]\nper-host-speed = 3\n')
    result = run_cli('stats', '--config', str(ini))
    assert result.returncode == 1
    assert "unknown option 'per-host-speed'" in result.stderr
    ini.write_text('no section here\n')
    result = run_cli('stats', '--config', str(ini))
    assert result.returncode == 1
    assert 'bad.ini' in result.stderr


def test_commands_work_while_the_server_runs(tmp_path):
    data = str(tmp_path / 'var')
    # Without a server the command opens the database itself.
    result = run_cli('stats', '--data', data)
    assert result.returncode == 0, result.stderr
    assert 'clients: 0' in result.stdout
    server = Serve('--data', data).start()
    try:
        secret = open(os.path.join(data, 'secret')).read().strip()
        server.proxy().registerClient(secret, 'fred', 'http://127.0.0.1:9/',
                                      'Fred', 'fred@example.com', 'pw')
        listen = 'tcp:%d:interface=127.0.0.1' % server.port
        # The FileStorage is locked: the command asks the server.
        result = run_cli('stats', '--data', data, '--listen', listen)
        assert result.returncode == 0, result.stderr
        assert 'clients: 1' in result.stdout
        # A server it cannot reach is a one-line error.
        result = run_cli('stats', '--data', data, '--server',
                         'http://127.0.0.1:%d/RPC2' % free_port())
        assert result.returncode == 1
        assert 'cannot be reached' in result.stderr
    finally:
        server.stop()


def test_help_describes_every_option():
    result = run_cli('serve', '--help')
    assert result.returncode == 0
    for option in ('--data', '--zeo', '--storage', '--listen', '--secret',
                   '--smtp', '--max-request-bytes', '--config'):
        assert option in result.stdout


def test_metrics_port_in_use_is_a_clear_failure(tmp_path):
    first = Serve('--data', str(tmp_path / 'a')).start()
    try:
        result = run_cli('serve', '--data', str(tmp_path / 'b'), '--role',
                         'checker', '--metrics-listen',
                         'tcp:%d:interface=127.0.0.1' % first.port)
        assert result.returncode == 1
        assert 'cannot listen on tcp:%d' % first.port in result.stderr
        assert 'Unhandled' not in result.stderr
    finally:
        first.stop()


def test_the_server_collects_young_objects_less_often_while_it_runs():
    # Every role gains: an API-only process too (registrations allocate
    # as many short-lived objects as checks do).
    import gc

    from linksync import testing
    from linksync.server.service import LinkSyncService
    before = gc.get_threshold()
    gc.set_threshold(700, *before[1:])
    try:
        server = testing.ServerFixture(roles={'api'}).start()
        assert gc.get_threshold()[0] == LinkSyncService.GC_THRESHOLD
        server.stop()
        assert gc.get_threshold()[0] == 700
    finally:
        gc.set_threshold(*before)


def test_the_database_caches_are_an_option(tmp_path):
    from linksync import testing
    from linksync.server import options as config
    server = testing.ServerFixture(data=str(tmp_path / 'var'),
                                   cache_objects=1234, cache_mib=7,
                                   roles=('api',)).start()
    db = server.service.database.db
    assert db.getCacheSize() == 1234
    assert db.getCacheSizeBytes() == 7 * 2 ** 20
    assert server.service.api.session.connection._cache.cache_size == 1234
    with pytest.raises(ValueError, match='at least 1'):
        config.positive_int('0')
    result = run_cli('serve', '--data', str(tmp_path / 'x'),
                     '--cache-objects', '0')
    assert result.returncode != 0 and '--cache-objects' in result.stderr
    result = run_cli('serve', '--help')
    assert '--cache-objects' in result.stdout and '--cache-mib' in \
        result.stdout


@pytest.mark.parametrize('level, shown', [
    ('info', ['moved', 'a library warns']),
    ('debug', ['retrying', 'moved', 'a library warns']),
    ('warn', ['a library warns'])])
def test_the_log_level_applies_to_linksyncs_standard_library_logging(
        level, shown):
    """Some of linksync's modules log through the standard library (the
    database's conflict retries at debug, the generations at info):
    --log-level applies to them; other libraries' logging shows warnings
    and worse."""
    program = '''
import logging, sys
from linksync.commands.serve import start_logging
start_logging(%r)
logging.getLogger('linksync.server.database').debug('retrying x')
logging.getLogger('linksync.server.model.generations').info('moved')
logging.getLogger('somelibrary').info('a library chats')
logging.getLogger('somelibrary').warning('a library warns')
''' % level
    out = subprocess.run([sys.executable, '-c', program], capture_output=True,
                         text=True, timeout=60).stdout
    lines = out.splitlines()
    assert [m for m in ('retrying', 'moved', 'a library chats',
                        'a library warns') if m in out] == shown
    assert any('[linksync.server.model.generations#INFO] moved' in line
               for line in lines) == ('moved' in shown)
