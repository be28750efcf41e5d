"""The ZODB format: a large dict kept one persistent object per key.

The structure lives in a ZODB (a FileStorage ``NAME.fs`` of its own, or a
database given as ``ZODBBackend(db=...)``), under
``root['linksync.tracked'][NAME]``: an OOBTree mapping every top-level key
to a small persistent :class:`TrackedValue` holding that key's value as
plain data. A save changes only the holders of the keys that changed (and
the tree bucket of a key added or removed) in one ZODB transaction, so it
costs the same for a dict of ten keys or of a million; transactions are
atomic (a crash in the middle of one leaves the one before).

Top-level keys must be comparable with each other (all strings, say): the
OOBTree keeps them in order. The file grows with every save, as
FileStorages do: :meth:`ZODBBackend.pack` reclaims the space.
"""

import os

from persistent import Persistent

from linksync.tracked.changes import MISSING
from linksync.tracked.errors import TrackedFileError
from linksync.tracked.persistence import LazyBackend

ROOT_KEY = 'linksync.tracked'


class TrackedValue(Persistent):
    """The value of one top-level key (plain data)."""

    def __init__(self, value):
        self.value = value


class ZODBBackend(LazyBackend):
    """Saves a dict to a ZODB, one object per top-level key."""

    extension = '.fs'
    format = 'zodb'

    def __init__(self, path=None, db=None, name=None):
        if (path is None) == (db is None):
            raise TypeError('ZODBBackend takes a path or a db')
        self.path = os.fspath(path) if path is not None else repr(db)
        self.db = db
        self.own_db = db is None
        self.name = name
        self.connection = None

    def connect(self, tracker):
        import transaction
        from BTrees.OOBTree import OOBTree
        if self.name is None:
            self.name = tracker.name if tracker.name is not None else 'data'
        if self.db is None:
            self.db = self._open_storage()
        self.tm = transaction.TransactionManager()
        self.connection = self.db.open(transaction_manager=self.tm)
        try:
            self.tm.begin()
            root = self.connection.root()
            container = root.get(ROOT_KEY)
            if container is None:
                container = root[ROOT_KEY] = OOBTree()
            self.tree = container.get(self.name)
            if self.tree is not None:
                self.tm.abort()
                return True
            self.tree = container[self.name] = OOBTree()
            self.tm.commit()
            return False
        except BaseException:
            self.tm.abort()
            self.close()
            raise

    def _open_storage(self):
        import ZODB
        from ZODB.FileStorage import FileStorage
        from ZODB.FileStorage.FileStorage import FileStorageFormatError
        storage = None
        try:
            storage = FileStorage(self.path)
            return ZODB.DB(storage)
        except Exception as e:
            if storage is not None:
                storage.close()
            position = getattr(e, 'pos', None)
            if position is not None:
                position = 'byte %d' % position
            elif isinstance(e, FileStorageFormatError):
                position = 'byte 0 (the FileStorage header)'
            raise TrackedFileError(self.path, position, '%s: %s' % (
                type(e).__name__, e)) from None

    def keys(self):
        return list(self.tree.keys())

    def load_value(self, key):
        try:
            holder = self.tree[key]
            value = holder.value
            holder._p_deactivate()  # the tracked copy is the one in use
            return value
        except Exception as e:
            raise TrackedFileError(self.path, 'key %r' % (key,), '%s: %s' % (
                type(e).__name__, e)) from None

    def store(self, updates, replace=False):
        tree = self.tree
        self.tm.begin()
        try:
            if replace:
                tree.clear()
            written = []
            for key, value in updates.items():
                if value is MISSING:
                    tree.pop(key, None)
                    continue
                holder = tree.get(key)
                if holder is None:
                    holder = tree[key] = TrackedValue(value)
                else:
                    holder.value = value
                written.append(holder)
            self.tm.commit()
        except BaseException:
            self.tm.abort()
            raise
        for holder in written:
            holder._p_deactivate()

    def pack(self):
        """Reclaim the space of old revisions in the file."""
        self.db.pack()

    def close(self):
        if self.connection is not None:
            connection, self.connection = self.connection, None
            connection.close()
        if self.own_db and self.db is not None:
            db, self.db = self.db, None
            db.close()
