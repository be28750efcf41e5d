"""The shelve format: a dict kept one pickled value per key, in SQLite.

The file is a :mod:`shelve` whose database is SQLite, in the layout of
Python 3.13's ``dbm.sqlite3`` (one table ``Dict(key BLOB, value BLOB)``;
``shelve.open(path)`` reads it there). SQLite rather than ``dbm.dumb`` (the
only dbm every Python has) because a save is one SQLite transaction: atomic
across all the keys it writes, durable, and as costly for one key of a
hundred thousand as for one key of ten; ``dbm.dumb`` rewrites its whole
index on every sync.

Values are read when first used (:class:`LazyDictWrapper`); a save writes
the top-level keys that changed, in one transaction. Keys must be strings.
"""

import os
import shelve
import sqlite3
from collections.abc import MutableMapping

from linksync.tracked.changes import MISSING
from linksync.tracked.errors import TrackedFileError
from linksync.tracked.persistence import LazyBackend

_BUILD_TABLE = ('CREATE TABLE IF NOT EXISTS Dict ('
                'key BLOB UNIQUE NOT NULL, value BLOB NOT NULL)')
_HAS_TABLE = ("SELECT name FROM sqlite_master "
              "WHERE type = 'table' AND name = 'Dict'")
_LOOKUP = 'SELECT value FROM Dict WHERE key = CAST(? AS BLOB)'
_STORE = ('REPLACE INTO Dict (key, value) '
          'VALUES (CAST(? AS BLOB), CAST(? AS BLOB))')
_DELETE = 'DELETE FROM Dict WHERE key = CAST(? AS BLOB)'
_KEYS = 'SELECT key FROM Dict'
_SIZE = 'SELECT COUNT(key) FROM Dict'


class SQLiteDBM(MutableMapping):
    """A dbm-style mapping (bytes to bytes) over one SQLite connection.

    Changes are made in the connection's current transaction; the owner
    commits them.
    """

    def __init__(self, connection):
        self.cx = connection

    def __getitem__(self, key):
        row = self.cx.execute(_LOOKUP, (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return row[0]

    def __setitem__(self, key, value):
        self.cx.execute(_STORE, (key, value))

    def __delitem__(self, key):
        if self.cx.execute(_DELETE, (key,)).rowcount == 0:
            raise KeyError(key)

    def __iter__(self):
        return (row[0] for row in self.cx.execute(_KEYS).fetchall())

    def __len__(self):
        return self.cx.execute(_SIZE).fetchone()[0]

    def close(self):
        self.cx.close()


class ShelveBackend(LazyBackend):
    """Saves a dict with string keys to a shelve file (SQLite)."""

    extension = '.shelve'
    format = 'shelve'

    def __init__(self, path, protocol=None):
        self.path = os.fspath(path)
        self.protocol = protocol
        self.shelf = None

    def connect(self, tracker):
        """Open the file; True when it held a structure already."""
        existed = os.path.exists(self.path) and \
            os.path.getsize(self.path) > 0
        try:
            cx = sqlite3.connect(self.path, check_same_thread=False)
        except sqlite3.Error as e:
            raise TrackedFileError(self.path, None, str(e)) from None
        try:
            if existed:
                if cx.execute(_HAS_TABLE).fetchone() is None:
                    raise TrackedFileError(
                        self.path, 'the SQLite schema',
                        'an SQLite database without the Dict table of a '
                        'shelve')
            else:
                with cx:
                    cx.execute(_BUILD_TABLE)
        except sqlite3.DatabaseError as e:
            cx.close()
            raise TrackedFileError(self.path, 'byte 0 (the SQLite header)',
                                   str(e)) from None
        except BaseException:
            cx.close()
            raise
        self.shelf = shelve.Shelf(SQLiteDBM(cx), protocol=self.protocol)
        return existed

    def keys(self):
        try:
            return [key.decode(self.shelf.keyencoding)
                    for key in self.shelf.dict]
        except (sqlite3.DatabaseError, UnicodeDecodeError) as e:
            raise TrackedFileError(self.path, 'the keys', str(e)) from None

    def load_value(self, key):
        try:
            return self.shelf[key]
        except Exception as e:
            raise TrackedFileError(self.path, 'key %r' % (key,), '%s: %s' % (
                type(e).__name__, e)) from None

    def store(self, updates, replace=False):
        bad = next((key for key in updates if type(key) is not str), None)
        if bad is not None:
            raise TypeError('the shelve format needs string keys, not %r'
                            % (bad,))
        cx = self.shelf.dict.cx
        with cx:  # one transaction: all of it or nothing
            if replace:
                cx.execute('DELETE FROM Dict')
            for key, value in updates.items():
                if value is MISSING:
                    cx.execute(
                        _DELETE, (key.encode(self.shelf.keyencoding),))
                else:
                    self.shelf[key] = value

    def close(self):
        if self.shelf is not None:
            shelf, self.shelf = self.shelf, None
            shelf.close()
