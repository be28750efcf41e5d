"""linksync client ...: with and without a running client kit."""

import os
import subprocess
import sys

import pytest
import yaml

from linksync import cli, testing

A = 'http://a.example/'
B = 'http://b.example/'


def run(*args):
    return cli.main(['client', *args])


def urls_of(server, client_id='fred'):
    return server.read(lambda app: sorted(
        app.clients.get(client_id).url_keys()))


@pytest.fixture
def ini(tmp_path, server):
    """An ini file for client fred (registered) of the server."""
    server.register_client('fred', 'secret')
    path = tmp_path / 'client.ini'
    path.write_text('[client]\ndb = %s\nserver = %s\nid = fred\n'
                    'password = secret\n' % (tmp_path / 'links.yaml',
                                             server.url))
    return str(path)


def test_add_remove_status_without_a_kit(ini, server, tmp_path, capsys):
    assert run('add', A, B, '--config', ini) == 0
    assert capsys.readouterr().out == 'added 2 link(s) to %s\n' % (
        tmp_path / 'links.yaml')
    assert urls_of(server) == [A, B]            # told to the server at once
    assert run('remove', B, 'http://unknown.example/', '--config', ini) == 0
    assert capsys.readouterr().out.startswith('removed 1 link(s) from ')
    assert urls_of(server) == [A]
    assert run('status', '--config', ini) == 0
    assert capsys.readouterr().out == (
        'STATE    URL                REASON\n'
        'unknown  http://a.example/\n'
        '1 of 1 link(s): 1 unknown\n')
    assert run('status', '--state', 'ok', '--config', ini) == 0
    assert capsys.readouterr().out == ("no links in state 'ok'\n"
                                       '0 of 1 link(s)\n')


def test_without_a_server_the_file_alone_changes(tmp_path, capsys):
    db = str(tmp_path / 'links.yaml')
    assert run('add', A, '--db', db) == 0
    assert yaml.safe_load(open(db))['links'][A]['state'] == 'unknown'
    assert run('remove', A, '--db', db) == 0
    assert yaml.safe_load(open(db)) == {'links': {}}


def test_the_server_away(ini, server, capsys):
    server.stop()
    assert run('add', A, '--config', ini, '--timeout', '5') == 0
    captured = capsys.readouterr()
    assert captured.out.startswith('added 1 link(s)')
    assert captured.err.startswith('linksync: warning: the server does not '
                                   'know yet (cannot reach')
    assert captured.err.endswith('it will at the next `linksync client '
                                 'sync` or `serve`\n')
    server.restart()
    assert run('sync', '--config', ini) == 0
    assert capsys.readouterr().out == \
        '<SyncReport added 1 in %s>\n' % server.url
    assert urls_of(server) == [A]


def test_through_a_running_kit(ini, server, tmp_path, capsys):
    kit = testing.ClientKit(server, str(tmp_path / 'links.yaml'),
                            register=False, retries=0).start()
    assert run('add', A, B, '--config', ini) == 0
    assert capsys.readouterr().out == 'added 2 link(s) to %s\n' % kit.path
    assert kit.call(kit.db.urls) == [A, B] and urls_of(server) == [A, B]
    assert run('remove', B, '--config', ini) == 0
    assert kit.call(kit.db.urls) == [A] and urls_of(server) == [A]
    assert run('sync', '--config', ini) == 0
    assert capsys.readouterr().out.endswith('<SyncReport nothing to do>\n')
    # What the kit could not send yet shows in the status.
    server.stop()
    assert run('add', B, '--config', ini) == 0
    err = capsys.readouterr().err
    assert 'the server does not know yet' in err
    assert err.endswith('the running `linksync client serve` tries again '
                        'until it does\n')
    assert run('status', '--config', ini) == 0
    out = capsys.readouterr().out
    assert '1 change(s) not sent to the server yet:\n' \
           "  <Propagation put Link 'http://b.example/'" in out
    # The kit checks the credentials of the command too.
    assert run('add', A, '--config', ini, '--password', 'wrong') == 1
    assert "refused the credentials of client 'fred'" in \
        capsys.readouterr().err


def test_register(server, tmp_path, capsys):
    args = ['register', '--server', server.url, '--id', 'wilma',
            '--password', 'wilma-pw', '--secret', server.secret,
            '--contact-email', 'wilma@example.com', '--listen',
            'tcp:8123:interface=127.0.0.1', '--db',
            str(tmp_path / 'links.yaml')]
    assert run(*args) == 0
    assert capsys.readouterr().out == (
        "client 'wilma' registered with %s; it calls the client back on "
        "http://127.0.0.1:8123/RPC2\n" % server.url)
    assert server.proxy().checkConnection('wilma', 'wilma-pw') == 2
    assert run(*args) == 1
    assert 'is registered already' in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        run('register', '--server', server.url, '--id', 'x', '--password',
            'p', '--secret', server.secret, '--contact-email', 'x@e.org',
            '--listen', 'tcp:8123')
    assert caught.value.code == 2
    assert '--callback is needed' in capsys.readouterr().err


@pytest.mark.parametrize('args, message', [
    (['status', '--db', 'nowhere.yaml'], 'there is no link database'),
    (['add', 'not a url'], 'no link was added'),
    (['remove', A, '--db', 'nowhere.yaml'], 'there is no link database'),
])
def test_failures_are_one_line(args, message, tmp_path, capsys,
                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(*args) == 1
    err = capsys.readouterr().err
    assert err.startswith('linksync: error: ') and message in err
    assert err.count('\n') == 1


@pytest.mark.parametrize('args, message', [
    (['sync'], '--server, --id, --password are needed when no'),
    (['serve', '--id', 'x', '--password', 'y'], '--server is needed'),
    (['status', '--state', 'grand'], 'invalid choice'),
])
def test_bad_usage(args, message, capsys):
    with pytest.raises(SystemExit) as caught:
        run(*args)
    assert caught.value.code == 2 and message in capsys.readouterr().err


def test_ini_file_mistakes(tmp_path, capsys):
    ini = tmp_path / 'client.ini'
    ini.write_text('[linksync]\ndata = var\n')
    assert run('status', '--config', str(ini)) == 1
    assert 'has no [client] section' in capsys.readouterr().err
    ini.write_text('[client]\ndatabase = x.yaml\n')
    assert run('status', '--config', str(ini)) == 1
    assert "unknown option 'database' in [client]" in \
        capsys.readouterr().err
    ini.write_text('[client]\ntimeout = soon\n')
    assert run('status', '--config', str(ini)) == 1
    assert '--timeout: not a number of seconds' in capsys.readouterr().err


def test_serve_in_a_process(ini, server, tmp_path):
    kit = testing.ClientProcess('--config', ini, '--listen',
                                'tcp:0:interface=127.0.0.1').start()
    assert kit.serving.startswith('linksync client: serving %s on '
                                  'http://127.0.0.1:' % (tmp_path /
                                                         'links.yaml'))
    # A second one on the same database refuses to start.
    env = dict(os.environ, LINKSYNC_CLIENT_PASSWORD='secret')
    done = subprocess.run(
        [sys.executable, '-m', 'linksync.cli', 'client', 'serve',
         '--db', str(tmp_path / 'links.yaml'), '--server', server.url,
         '--id', 'fred', '--listen', 'tcp:0:interface=127.0.0.1'],
        env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith('linksync: error: %s is served already'
                                  % (tmp_path / 'links.yaml'))
    assert kit.stop() == 0
    # It called the server: its log says so, in one line per call.
    assert 'synchronised with %s' % server.url in kit.text
    assert 'Starting factory' not in kit.text


def test_through_a_running_kit_without_credentials(server, tmp_path, capsys):
    """The kit's own credentials serve the command: only --db is given."""
    server.register_client('fred', 'secret')
    path = str(tmp_path / 'links.yaml')
    kit = testing.ClientKit(server, path, register=False, retries=0,
                            client_id='fred', password='secret').start()
    lock = yaml.safe_load(open(path + '.lock'))
    assert lock['id'] == 'fred' and len(lock['key']) >= 40
    assert oct(os.stat(path + '.lock').st_mode & 0o777) == '0o600'
    assert run('add', A, B, '--db', path) == 0
    captured = capsys.readouterr()
    assert captured.out == 'added 2 link(s) to %s\n' % path
    assert captured.err == ''
    assert kit.call(kit.db.urls) == [A, B] and urls_of(server) == [A, B]
    assert run('remove', B, '--db', path) == 0
    assert kit.call(kit.db.urls) == [A] and urls_of(server) == [A]
    assert run('sync', '--db', path) == 0
    assert capsys.readouterr().out.endswith('<SyncReport nothing to do>\n')
    server.stop()
    assert run('add', B, '--db', path) == 0
    capsys.readouterr()
    assert run('status', '--db', path) == 0
    assert '1 change(s) not sent to the server yet:\n' in \
        capsys.readouterr().out
    # A wrong key is refused like a wrong password.
    from linksync.client.errors import LMSError
    from linksync.client.service import LocalClient
    with pytest.raises(LMSError, match='refused the credentials'):
        LocalClient(lock['url'], 'fred', 'x' * 43, timeout=5).pending()
    with pytest.raises(LMSError, match='refused the credentials'):
        LocalClient(lock['url'], 'wilma', lock['key'], timeout=5).pending()


def test_without_a_kit_the_command_says_what_it_needs(tmp_path, capsys):
    db = str(tmp_path / 'links.yaml')
    assert run('add', A, '--db', db) == 0
    captured = capsys.readouterr()
    assert captured.out == 'added 1 link(s) to %s\n' % db
    assert captured.err == (
        'linksync: note: the server was not told (no `linksync client serve` '
        'of %s is running, and --server, --id, --password are not given); '
        'it learns at the next `linksync client sync` or `serve`\n' % db)
    with pytest.raises(SystemExit) as caught:
        run('sync', '--db', db, '--id', 'fred')
    assert caught.value.code == 2
    assert ('--server, --password are needed when no `linksync client '
            'serve` of %s is running (on the command line, or in the '
            '[client] section of --config)' % db) in capsys.readouterr().err
