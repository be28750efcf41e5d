"""linksync sync: in a running server, or in its own process."""

import os
import subprocess
import sys

import pytest
import zope.component

from linksync import cli, testing
from linksync.server import options as config
from linksync.server.interfaces import IClientProvider

# The notifier (role agents) would push states too; these tests watch the
# syncer's calls alone.
SYNC_ROLES = ('api', 'syncer')

E = 'http://example.com/'


def urls_of(server, client_id='fred'):
    return server.read(lambda app: list(zope.component.getUtility(
        IClientProvider).get(client_id).url_keys()))


def add_clients(server, dummy):
    proxy = server.proxy()
    for name in ('fred', 'wilma'):
        proxy.registerClient(server.secret, name, dummy.url, name,
                             name + '@example.com', name + '-pw')
        proxy.registerURLs(name, name + '-pw', [E + '1', E + '2'])


def linksync(server, *args):
    return cli.main(['sync', *args, '--data', server.data, '--server',
                     server.url, '--secret', server.secret])


def test_sync_through_the_running_server(tmp_path, capsys):
    dummy = testing.install_xmlrpcdummy()
    server = testing.ServerFixture(data=str(tmp_path / 'var'),
                                   sync_tick=10 ** 9, roles=SYNC_ROLES).start()
    add_clients(server, dummy)
    assert linksync(server, '--force', 'fred') == 0
    assert capsys.readouterr().out == (
        'fred: ok: 2 links, 1 registered, 1 unregistered, 2 states sent\n')
    assert urls_of(server) == [E + '1', E + '3']
    assert urls_of(server, 'wilma') == [E + '1', E + '2']
    # --all: only wilma is due.
    assert linksync(server, '--all') == 0
    assert capsys.readouterr().out == (
        'wilma: ok: 2 links, 1 registered, 1 unregistered, 2 states sent\n')
    assert linksync(server, '--all') == 0
    assert capsys.readouterr().out == 'no client is due\n'
    # Failures: exit status 1, one line each.
    dummy.links = 'garbage'
    assert linksync(server, '--force', 'wilma', '--force', 'nobody') == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith('wilma: failed: http://127.0.0.1:')
    assert out[0].endswith('answered getAllLinks with str, not an array of '
                           'URLs')
    assert out[1] == "nobody: failed: no client 'nobody'"


def test_sync_in_its_own_process(tmp_path):
    dummy = testing.install_xmlrpcdummy()
    data = str(tmp_path / 'var')
    server = testing.ServerFixture(data=data, roles=SYNC_ROLES).start()
    add_clients(server, dummy)
    server.stop()                   # the command opens the database itself
    env = dict(os.environ, LINKSYNC_SECRET=server.secret)

    def run(*args, allow=('--allow-network', '127.0.0.0/8')):
        return subprocess.run(
            [sys.executable, '-m', 'linksync.cli', 'sync', *args,
             '--data', data, *allow], env=env, capture_output=True,
            text=True, timeout=120)
    # The callback listens on loopback: refused until the option opens it.
    done = run('--force', 'fred', allow=())
    assert (done.returncode, done.stderr) == (1, '')
    assert done.stdout == (
        'fred: failed: %s (xmlrpc_getAllLinks): blocked by policy: '
        '127.0.0.1 is a loopback address (--allow-network 127.0.0.1/32 '
        'opens it)\n' % dummy.url)
    assert dummy.credentials == []
    done = run('--force', 'fred')
    assert (done.returncode, done.stdout, done.stderr) == (
        0, 'fred: ok: 2 links, 1 registered, 1 unregistered, 2 states '
           'sent\n', '')
    assert dummy.credentials[-1] == ('fred', 'fred-pw')
    done = run('--all', '--sync-interval', '0')
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        'fred: ok: 2 links, 0 registered, 0 unregistered, 2 states sent',
        'wilma: ok: 2 links, 1 registered, 1 unregistered, 2 states sent']
    # A wrong secret cannot open the callback credentials.
    env['LINKSYNC_SECRET'] = 'not the secret'
    done = run('--force', 'fred')
    assert done.returncode == 1
    assert "fred: failed: client 'fred': the stored callback credential " \
        'cannot be read' in done.stdout
    server.start()
    assert urls_of(server) == [E + '1', E + '3']


def test_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(['sync'])
    assert exit.value.code == 2
    assert 'one of the arguments --force --all is required' in \
        capsys.readouterr().err
    with pytest.raises(SystemExit) as exit:
        cli.main(['sync', '--all', '--force', 'fred'])
    assert exit.value.code == 2


@pytest.mark.parametrize('option, value', [
    ('--sync-tick', '0'), ('--sync-interval', '-1'),
    ('--sync-timeout', 'soon'), ('--sync-max-links', '0'),
    ('--sync-concurrency', '0')])
def test_bad_syncer_options(option, value, capsys):
    parser = config.argument_parser('linksync serve', config.SERVER_OPTIONS)
    with pytest.raises(SystemExit):
        parser.parse_args([option, value])
    assert option in capsys.readouterr().err


def test_syncer_options_from_the_ini_file(tmp_path):
    ini = tmp_path / 'linksync.ini'
    ini.write_text('[linksync]\nsync-tick = 0.5\nsync_retry = 60\n'
                   'sync-concurrency = 2\n')
    parser = config.argument_parser('linksync serve', config.SERVER_OPTIONS)
    settings = config.resolve(parser.parse_args(['--config', str(ini)]),
                              config.SERVER_OPTIONS)
    assert (settings.sync_tick, settings.sync_retry,
            settings.sync_interval) == (0.5, 60, 24 * 3600)
    assert settings.sync_concurrency == 2
    assert config.resolve(parser.parse_args([]),
                          config.SERVER_OPTIONS).sync_concurrency == 4
    ini.write_text('[linksync]\nsync-tick = 0\n')
    with pytest.raises(config.ConfigError, match='--sync-tick: must be more'):
        config.resolve(parser.parse_args(['--config', str(ini)]),
                       config.SERVER_OPTIONS)
