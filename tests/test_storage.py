"""Opening storages: the PostgreSQL address as users write it."""

import os
import urllib.parse

import pytest
import transaction
import ZODB

from linksync import testing
from linksync.server import storage
from linksync.server.storage import StorageError

#: A password with what breaks a hand-built libpq string: spaces, quotes,
#: a backslash, an equals sign.
ODD_PASSWORD = "it's a \\ \"pass\" = word"


def test_a_uri_keeps_every_character_of_the_password_and_its_options():
    from psycopg2.extensions import parse_dsn
    uri = 'postgresql://ann:%s@127.0.0.1:5432/db?sslmode=disable' % (
        urllib.parse.quote(ODD_PASSWORD, safe=''))
    params = parse_dsn(storage._uri_to_libpq(uri))
    assert params == {'user': 'ann', 'password': ODD_PASSWORD,
                      'host': '127.0.0.1', 'port': '5432', 'dbname': 'db',
                      'sslmode': 'disable'}


@pytest.mark.parametrize('uri, says', [
    ('postgresql://ann@127.0.0.1/db?nosuch=1',
     'invalid URI query parameter: "nosuch"'),
    ('postgresql://[::1/db', 'IPv6 host address'),
    ('postgresql://ann:s%zzcret@127.0.0.1/db', 'percent-encoded token: "..."'),
])
def test_a_malformed_uri_is_named_as_such_without_its_password(uri, says):
    with pytest.raises(StorageError, match='not a PostgreSQL address') as e:
        storage.open_storage(dsn=uri)
    assert says in str(e.value) and 'zz' not in str(e.value)


def test_relstorage_logs_in_with_an_odd_password(tmp_path):
    reason = testing.PostgreSQLServer.unavailable()
    if reason:
        pytest.skip('no PostgreSQL server: %s' % reason)
    try:
        server = testing.PostgreSQLServer().start()
    except RuntimeError as e:
        pytest.skip('PostgreSQL cannot start here: %s' % e)
    escaped = ODD_PASSWORD.replace("'", "''")
    server._run('psql', '-h', '127.0.0.1', '-p', str(server.port), '-U',
                server._user(), '-d', 'linksync', '-c',
                "CREATE ROLE odd LOGIN PASSWORD '%s'; "
                "GRANT ALL ON SCHEMA public TO odd" % escaped)
    # The cluster trusts everybody; this role has to give its password.
    hba = os.path.join(server.dir, 'data', 'pg_hba.conf')
    with open(hba) as f:
        rules = f.read()
    with open(hba, 'w') as f:
        f.write('host all odd 127.0.0.1/32 scram-sha-256\n' + rules)
    server._run('pg_ctl', '-D', os.path.join(server.dir, 'data'), 'reload')

    def uri(password):
        return 'postgresql://odd:%s@127.0.0.1:%d/linksync' % (
            urllib.parse.quote(password, safe=''), server.port)

    # The postmaster rereads pg_hba.conf when it gets to it: until then, a
    # wrong password still gets in.
    for attempt in range(200):
        try:
            storage.open_storage(dsn=uri('wrong')).close()
        except StorageError as e:
            assert 'password authentication failed' in str(e)
            assert 'wrong' not in str(e)
            break
    else:
        pytest.fail('the server never asked for the password')
    db = ZODB.DB(storage.open_storage(dsn=uri(ODD_PASSWORD)))
    try:
        conn = db.open()
        conn.root()['greeting'] = 'hello'
        transaction.commit()
        conn.close()
    finally:
        db.close()
    db = ZODB.DB(storage.open_storage(dsn=uri(ODD_PASSWORD)))
    try:
        assert db.open().root()['greeting'] == 'hello'
    finally:
        transaction.abort()
        db.close()
