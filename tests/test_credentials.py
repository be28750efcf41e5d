"""The callback credential: what the server presents to a client's callback."""

import io
import re

import pytest
import zope.component

from linksync import testing
from linksync.server.model import credentials
from linksync.server.model.credentials import CredentialError
from linksync.server.interfaces import IClientProvider
from linksync.server.model.client import Client


def test_seal_is_not_clear_and_differs_each_time():
    one = credentials.seal('pass-word', 'secret')
    two = credentials.seal('pass-word', 'secret')
    assert one != two
    assert 'pass-word' not in one
    assert credentials.unseal(two, 'secret') == 'pass-word'


@pytest.mark.parametrize('bad', ['', None, 42])
def test_seal_refuses_what_is_no_password(bad):
    with pytest.raises(CredentialError, match='non-empty string'):
        credentials.seal(bad, 'secret')


def test_no_secret_no_sealing():
    with pytest.raises(CredentialError, match='no management secret'):
        credentials.seal('password', '')


def test_garbage_token_is_a_clear_error():
    with pytest.raises(CredentialError, match='cannot be read'):
        credentials.unseal('not a token', 'secret')


def test_client_credentials():
    client = Client('fred', password='login')
    with pytest.raises(CredentialError,
                       match="no callback credential is stored for client "
                             "'fred'; set it with: linksync credential fred"):
        client.callback_credentials('secret')
    client.set_callback_password('call-me', 'secret')
    assert client.callback_credentials('secret') == ('fred', 'call-me')
    with pytest.raises(CredentialError,
                       match="client 'fred': .*was the secret changed.*"
                             "linksync credential fred"):
        client.callback_credentials('another secret')
    # The login password is unchanged by it.
    assert client.check_password('login')


def _client(server, name):
    return server.read(lambda app: zope.component.getUtility(
        IClientProvider).get(name).callback_credentials(server.secret))


def test_registration_keeps_the_password_sealed(server):
    server.register_client('fred', 'fred-Pa55word-in-clear')
    assert _client(server, 'fred') == ('fred', 'fred-Pa55word-in-clear')
    server.stop()
    with open(server.data + '/Data.fs', 'rb') as f:
        data = f.read()
    assert b'fred-Pa55word-in-clear' not in data
    assert b'fred' in data  # (the test can see what is stored)


def test_a_mailed_password_is_the_callback_credential(tmp_path, smtp_server):
    server = testing.ServerFixture(data=str(tmp_path / 'var'),
                                   smtp=smtp_server.address).start()
    assert server.proxy().registerClient(
        server.secret, 'bob', 'http://127.0.0.1:9/', 'Bob',
        'bob@example.com')
    mail = smtp_server.messages[0].get_payload()
    password = re.search(r'Its password is:\s+(\S+)', mail).group(1)
    assert _client(server, 'bob') == ('bob', password)
    server.stop()
    with open(server.data + '/Data.fs', 'rb') as f:
        assert password.encode() not in f.read()


def test_credential_command_sets_it_through_the_server(server, monkeypatch):
    from linksync import cli
    server.register_client('fred', 'login-password')
    monkeypatch.setattr('sys.stdin', io.StringIO('other-password\n'))
    status = cli.main(['credential', 'fred', '--data', server.data,
                       '--server', server.url, '--secret', server.secret])
    assert status == 0
    assert _client(server, 'fred') == ('fred', 'other-password')
    # The login password is still the one to log in with.
    assert server.proxy().checkConnection('fred', 'login-password') == 2


def test_credential_command_errors(server, monkeypatch, capsys):
    from linksync import cli
    monkeypatch.setattr('sys.stdin', io.StringIO('password\n'))
    assert cli.main(['credential', 'nobody', '--data', server.data,
                     '--server', server.url, '--secret', server.secret]) == 1
    assert "no client 'nobody'" in capsys.readouterr().err
    monkeypatch.setattr('sys.stdin', io.StringIO('\n'))
    assert cli.main(['credential', 'nobody', '--data', server.data,
                     '--server', server.url, '--secret', server.secret]) == 1
    assert 'no password given' in capsys.readouterr().err


def test_credential_command_in_its_own_process(server):
    import os
    import subprocess
    import sys
    server.register_client('fred', 'login-password')
    server.stop()
    done = subprocess.run(
        [sys.executable, '-m', 'linksync.cli', 'credential', 'fred',
         '--data', server.data], input='new-one\n', capture_output=True,
        text=True, timeout=120,
        env=dict(os.environ, LINKSYNC_SECRET=server.secret))
    assert (done.returncode, done.stdout, done.stderr) == (
        0, 'the callback credential of fred is set\n', '')
    server.start()
    assert _client(server, 'fred') == ('fred', 'new-one')
