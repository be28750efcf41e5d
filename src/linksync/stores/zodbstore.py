"""The ZODB store: data in a ZODB (a FileStorage file, or a DB given).

Under the root key ``linksync.stores``, each data type (its ``type_name``)
has a BTree of records by id and a BTree index of ids by name. Every
write is one ZODB transaction of the store's own connection (a batch,
``put_many``, is one); reads start from the latest committed state, so
writes of other connections and processes (ZEO) are seen. A write that
conflicts with another is StoreUnavailable: the Synchronizer tries it
again.

>>> from linksync.stores.data import Link
>>> from twisted.internet.task import Clock
>>> import ZODB
>>> store = ZODBStore([Link], db=ZODB.DB(None), clock=Clock()).connect()
>>> _ = store.add(Link(name='http://example.com/'))
>>> [link.name for link in store.find(Link, state='unknown')]
['http://example.com/']
"""

import transaction
from BTrees.OOBTree import OOBTree, OOTreeSet
from persistent import Persistent
from ZODB.POSException import ConflictError

from linksync.stores.accessor import Accessor, matches
from linksync.stores.errors import StoreError, StoreUnavailable
from linksync.stores.store import Store, Transaction
from linksync.tracked.errors import TrackedFileError
from linksync.tracked.zodbbackend import ZODBBackend

ROOT_KEY = 'linksync.stores'


class Collection(Persistent):
    """The records of one data type: by id, and ids by name."""

    def __init__(self):
        self.records = OOBTree()
        self.names = OOBTree()

    def put(self, record):
        old = self.records.get(record['id'])
        if old is not None and old['name'] != record['name']:
            self._unindex(old)
        self.records[record['id']] = dict(record)
        ids = self.names.get(record['name'])
        if ids is None:
            ids = self.names[record['name']] = OOTreeSet()
        ids.add(record['id'])

    def pop(self, id):
        old = self.records.pop(id)
        self._unindex(old)

    def _unindex(self, record):
        ids = self.names.get(record['name'])
        if ids is not None:
            ids.remove(record['id'])
            if not ids:
                del self.names[record['name']]


class ZODBAccessor(Accessor):
    """Records of one type in a Collection."""

    def _collection(self):
        return self.store.collection(self.data_type.type_name)

    def get(self, id):
        record = self.store.read(lambda: self._collection().records.get(id))
        return None if record is None else dict(record)

    def find(self, name=None, **fields):
        def read():
            collection = self._collection()
            if name is None:
                records = collection.records.values()
            else:
                records = [collection.records[id] for id in
                           collection.names.get(name, ())]
            return [dict(r) for r in records if matches(r, name, fields)]
        return self.store.read(read)

    def add(self, record):
        def add():
            collection = self._collection()
            if record['id'] in collection.records:
                raise self.taken(record['id'])
            collection.put(record)
        self.store.write(add)

    def update(self, record):
        def update():
            collection = self._collection()
            if record['id'] not in collection.records:
                raise self.missing(record['id'])
            collection.put(record)
        self.store.write(update)

    def remove(self, id):
        def remove():
            collection = self._collection()
            if id not in collection.records:
                raise self.missing(id)
            collection.pop(id)
        self.store.write(remove)


class ZODBStore(Store):
    """Data in a ZODB: the FileStorage at `path`, or the ZODB.DB `db`."""

    accessor_class = ZODBAccessor
    atomic = True

    def __init__(self, types, path=None, db=None, name=None, clock=None):
        if (path is None) == (db is None):
            raise ValueError('give a path or a db')
        self.path = path
        self.db = db
        self.own_db = db is None
        self.connection = None
        self._depth = 0
        super().__init__(types, name=name or path or repr(db), clock=clock)

    def open(self):
        if self.own_db:
            try:
                self.db = ZODBBackend(self.path)._open_storage()
            except TrackedFileError as e:
                raise StoreError(str(e)) from None
        self.tm = transaction.TransactionManager()
        self.connection = self.db.open(transaction_manager=self.tm)
        self.write(lambda: self._install())

    def _install(self):
        root = self.connection.root()
        if ROOT_KEY not in root:
            root[ROOT_KEY] = OOBTree()
        for data_type in self.types:
            if data_type.type_name not in root[ROOT_KEY]:
                root[ROOT_KEY][data_type.type_name] = Collection()

    def close(self):
        self.tm.abort()
        self.connection.close()
        self.connection = None
        if self.own_db:
            self.db.close()
            self.db = None

    def collection(self, type_name):
        return self.connection.root()[ROOT_KEY][type_name]

    def read(self, func):
        if not self._depth:
            self.tm.abort()     # see what others committed
        return func()

    def write(self, func):
        """Run func() in a transaction (the batch's, inside one)."""
        if self._depth:
            return func()
        with self.transaction():
            return func()

    def transaction(self):
        return _Transaction(self)


class _Transaction(Transaction):
    def begin(self):
        self.store.tm.begin()

    def commit(self):
        try:
            self.store.tm.commit()
        except ConflictError as e:
            raise StoreUnavailable('%s: %s (try again)' % (
                self.store.name, e)) from None
        except Exception as e:
            raise StoreError('%s: cannot commit: %s' % (
                self.store.name, e)) from None

    def abort(self):
        self.store.tm.abort()
