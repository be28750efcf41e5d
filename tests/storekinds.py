"""The stores the tests make, by kind (shared by the store tests)."""

from twisted.internet.task import Clock

from linksync.stores import (Data, MemoryStore, SQLiteStore, TrackedStore,
                             ZODBStore)


class Note(Data):
    type_name = 'notes'
    fields = {'text': '', 'tags': []}


def clock(now=1000):
    c = Clock()
    c.advance(now)
    return c


def make_store(kind, tmp_path, types=(Note,), name=None, **kw):
    """A connected store of `kind` keeping its data under tmp_path."""
    kw.setdefault('clock', clock())
    if kind == 'memory':
        return MemoryStore(types, name=name or 'memory', **kw).connect()
    if kind.startswith('tracked-'):
        extension = {'yaml': 'yaml', 'json': 'json', 'pickle': 'pickle',
                     'shelve': 'shelve', 'zodb': 'fs'}[kind[8:]]
        return TrackedStore(types, path=str(tmp_path / (
            '%s.%s' % (name or 'tracked', extension))), **kw).connect()
    if kind == 'zodb':
        return ZODBStore(types, path=str(tmp_path / ('%s.fs' % (
            name or 'zodb'))), **kw).connect()
    if kind == 'sqlite':
        return SQLiteStore(types, str(tmp_path / ('%s.sqlite' % (
            name or 'sqlite'))), **kw).connect()
    raise ValueError(kind)


KINDS = ['memory', 'tracked-yaml', 'tracked-json', 'tracked-pickle',
         'tracked-shelve', 'tracked-zodb', 'zodb', 'sqlite']
