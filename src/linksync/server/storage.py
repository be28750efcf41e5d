"""Opening the storage the server runs on.

* embedded FileStorage under a directory (the default, ``var/Data.fs``);
* ZEO (``--zeo HOST:PORT``), for several processes on one database;
* RelStorage (``--storage postgresql://...``), with the ``postgresql`` extra.
"""

import os


class StorageError(Exception):
    """The storage could not be opened; the message says why."""


FILESTORAGE_NAME = 'Data.fs'


def parse_hostport(text):
    """'host:port' or 'port' -> (host, int port); ValueError when bad."""
    host, sep, port = text.rpartition(':')
    if not sep:
        host, port = '127.0.0.1', text
    host = host.strip('[]') or '127.0.0.1'
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError('not HOST:PORT: %r' % text)
    return host, int(port)


def open_storage(data=None, zeo=None, dsn=None, read_only=False,
                 zeo_wait_timeout=30):
    """Open and return a ZODB storage; raise StorageError naming the problem.

    With none of `zeo` and `dsn` given, a FileStorage in directory `data`
    (default ``var``) is opened, the directory being created when missing.
    """
    if zeo and dsn:
        raise StorageError('give either --zeo or --storage, not both')
    if zeo:
        return _open_zeo(zeo, read_only, zeo_wait_timeout)
    if dsn:
        return _open_relstorage(dsn, read_only)
    return _open_filestorage(data or 'var', read_only)


def _create_private(data, path):
    """Create the data directory (0700) and an empty Data.fs (0600) when
    they do not exist yet: the database holds password hashes and sealed
    credentials, for nobody else's eyes. Whatever ZODB writes beside it
    (index, pack files) is inside the private directory."""
    os.makedirs(data, mode=0o700, exist_ok=True)
    if not os.path.exists(path):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def _open_filestorage(data, read_only):
    from ZODB.FileStorage import FileStorage
    from zc.lockfile import LockError
    path = os.path.join(data, FILESTORAGE_NAME)
    if read_only and not os.path.exists(path):
        raise StorageError('no database at %s' % path)
    try:
        if not read_only:
            _create_private(data, path)
        return FileStorage(path, read_only=read_only)
    except LockError:
        raise StorageError(
            '%s is in use by another process (a running server?); use its '
            'ZEO server, or a read-only command' % path) from None
    except OSError as e:
        raise StorageError('cannot open %s: %s' % (path, e)) from None


def _open_zeo(address, read_only, wait_timeout):
    try:
        from ZEO.ClientStorage import ClientStorage
    except ImportError:
        raise StorageError(
            'ZEO is not installed (pip install linksync[zeo])') from None
    try:
        host, port = parse_hostport(address)
    except ValueError as e:
        raise StorageError(str(e)) from None
    try:
        return ClientStorage((host, port), read_only=read_only,
                             wait_timeout=wait_timeout)
    except Exception as e:
        raise StorageError('cannot reach the ZEO server at %s:%d: %s' % (
            host, port, e)) from None


def _open_relstorage(dsn, read_only):
    try:
        from relstorage.adapters.postgresql import PostgreSQLAdapter
        from relstorage.options import Options
        from relstorage.storage import RelStorage
    except ImportError:
        raise StorageError('RelStorage is not installed (pip install '
                           'linksync[postgresql])') from None
    if dsn.startswith(('postgresql://', 'postgres://')):
        dsn = _uri_to_libpq(dsn)
    options = Options(read_only=read_only, keep_history=False)
    try:
        adapter = PostgreSQLAdapter(dsn=dsn, options=options)
        return RelStorage(adapter, options=options)
    except Exception as e:
        raise StorageError('cannot open the PostgreSQL storage: %s' % e) \
            from None


def _uri_to_libpq(uri):
    """postgresql://user:pw@host:port/db?opts -> a libpq key=value string.

    libpq itself reads the URI (percent-escapes, query options); its
    parameters are then written back with libpq's quoting, so a password
    with a space, a quote or a backslash survives. RelStorage needs the
    key=value form: it appends `` application_name='...'`` to the string.

    >>> print(_uri_to_libpq("postgresql://ann:it%27s%20me@127.0.0.1:5432/db"
    ...                     "?sslmode=disable"))
    user=ann password='it\\'s me' dbname=db host=127.0.0.1 port=5432 sslmode=disable
    """
    from psycopg2 import ProgrammingError
    from psycopg2.extensions import make_dsn, parse_dsn
    try:
        params = parse_dsn(uri)
    except ProgrammingError as e:
        raise StorageError('not a PostgreSQL address: %s' % _without_secrets(
            str(e).strip().replace('invalid dsn: ', ''), uri)) from None
    return make_dsn(**params)


def _without_secrets(message, uri):
    """libpq's message with the quoted parts that show the URI's user and
    password (or the whole URI) hidden."""
    import re
    rest = uri.split('://', 1)[-1]
    userinfo = rest.rsplit('@', 1)[0] if '@' in rest else ''

    def hide(match):
        quoted = match.group(1)
        if userinfo and (quoted in userinfo or userinfo in quoted):
            return '"..."'
        return match.group(0)
    return re.sub(r'"([^"]*)"', hide, message)
