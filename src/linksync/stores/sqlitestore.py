"""The SQLite store: one table per data type, in a file (stdlib sqlite3).

Each type has a table named after its ``type_name``: the shared fields as
columns (``id`` the primary key, ``name`` indexed) and the type's own
fields as one JSON object in the column ``fields``, so that a type can
gain fields without a migration. Every write is its own transaction; a
batch (``put_many``) is one.

>>> from linksync.stores.data import Link
>>> from twisted.internet.task import Clock
>>> store = SQLiteStore([Link], ':memory:', clock=Clock()).connect()
>>> _ = store.add(Link(name='http://example.com/', state='ok'))
>>> store.connection.execute('SELECT id, fields FROM links').fetchall()
[('http://example.com/', '{"reason": "", "state": "ok"}')]
"""

import json
import re
import sqlite3

from linksync.stores.accessor import Accessor, matches
from linksync.stores.data import BASE_FIELDS
from linksync.stores.errors import StoreError, StoreUnavailable
from linksync.stores.store import Store, Transaction

_IDENTIFIER = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')


def _columns():
    return ', '.join(BASE_FIELDS) + ', fields'


class SQLiteAccessor(Accessor):
    """Records of one type in one table."""

    def __init__(self, store, data_type):
        super().__init__(store, data_type)
        if not _IDENTIFIER.fullmatch(data_type.type_name):
            raise StoreError('%r cannot name an SQLite table' %
                             data_type.type_name)
        self.table = data_type.type_name

    def create_table(self, connection):
        connection.execute(
            'CREATE TABLE IF NOT EXISTS %s (id TEXT PRIMARY KEY, name TEXT, '
            'description TEXT, created REAL, updated REAL, fields TEXT)'
            % self.table)
        connection.execute('CREATE INDEX IF NOT EXISTS %s_name ON %s (name)'
                           % (self.table, self.table))

    def _record(self, row):
        record = dict(zip(BASE_FIELDS, row[:-1]))
        record.update(json.loads(row[-1]))
        return record

    def _row(self, record):
        own = {k: v for k, v in record.items() if k not in BASE_FIELDS}
        try:
            fields = json.dumps(own, sort_keys=True)
        except (TypeError, ValueError) as e:
            raise StoreError('%s cannot store the %s %r: %s' % (
                self.store.name, self.data_type.__name__, record['id'],
                e)) from None
        return tuple(record[k] for k in BASE_FIELDS) + (fields,)

    def get(self, id):
        rows = self.store.query('SELECT %s FROM %s WHERE id = ?' % (
            _columns(), self.table), (id,))
        return self._record(rows[0]) if rows else None

    def find(self, name=None, **fields):
        if name is None:
            rows = self.store.query('SELECT %s FROM %s ORDER BY rowid' % (
                _columns(), self.table))
        else:
            rows = self.store.query(
                'SELECT %s FROM %s WHERE name = ? ORDER BY rowid' % (
                    _columns(), self.table), (name,))
        return [r for r in map(self._record, rows) if matches(r, name,
                                                               fields)]

    def add(self, record):
        try:
            self.store.write('INSERT INTO %s (%s) VALUES (?, ?, ?, ?, ?, ?)'
                             % (self.table, _columns()), self._row(record))
        except sqlite3.IntegrityError:
            raise self.taken(record['id']) from None

    def update(self, record):
        row = self._row(record)
        count = self.store.write(
            'UPDATE %s SET name = ?, description = ?, created = ?, '
            'updated = ?, fields = ? WHERE id = ?' % self.table,
            row[1:] + row[:1])
        if not count:
            raise self.missing(record['id'])

    def remove(self, id):
        if not self.store.write('DELETE FROM %s WHERE id = ?' % self.table,
                                (id,)):
            raise self.missing(id)


class SQLiteStore(Store):
    """Data in an SQLite database file (``':memory:'`` for none)."""

    accessor_class = SQLiteAccessor
    atomic = True

    def __init__(self, types, path, name=None, clock=None, timeout=5.0):
        self.path = path
        self.timeout = timeout
        self.connection = None
        self._depth = 0
        super().__init__(types, name=name or path, clock=clock)

    def open(self):
        try:
            self.connection = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None)
            for accessor in self.accessors.values():
                accessor.create_table(self.connection)
        except sqlite3.Error as e:
            self.connection = None
            raise StoreError('cannot open %s: %s' % (self.path, e)) from None

    def close(self):
        self.connection.close()
        self.connection = None

    def query(self, sql, params=()):
        try:
            return self.connection.execute(sql, params).fetchall()
        except sqlite3.OperationalError as e:
            raise self._error(e) from None

    def write(self, sql, params):
        """Run one change; in its own transaction outside a batch.
        Returns the number of rows changed."""
        try:
            if self._depth:
                return self.connection.execute(sql, params).rowcount
            with self.transaction():
                return self.connection.execute(sql, params).rowcount
        except sqlite3.OperationalError as e:
            raise self._error(e) from None

    def _error(self, e):
        if 'locked' in str(e) or 'busy' in str(e):
            return StoreUnavailable('%s: %s' % (self.name, e))
        return StoreError('%s: %s' % (self.name, e))

    def transaction(self):
        return _Transaction(self)


class _Transaction(Transaction):
    def begin(self):
        try:
            self.store.connection.execute('BEGIN IMMEDIATE')
        except sqlite3.OperationalError as e:
            raise self.store._error(e) from None

    def commit(self):
        try:
            self.store.connection.execute('COMMIT')
        except sqlite3.Error as e:
            raise self.store._error(e) from None

    def abort(self):
        if self.store.connection.in_transaction:
            self.store.connection.execute('ROLLBACK')
