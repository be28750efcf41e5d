"""Stores and the Synchronizer: one change, made everywhere.

A :class:`Store` is a set of data (:class:`Data`) reached through one
:class:`Accessor` per data type; a :class:`Synchronizer` links several
stores and makes every add, update and remove of one in all the others,
without echo loops, and never drops a write it could not make (it stays
pending, is retried, and can be seen). The stores shipped:

* :class:`MemoryStore` (dicts);
* :class:`TrackedStore` (a tracked structure: a file in any format of
  :mod:`linksync.tracked`);
* :class:`ZODBStore` (a ZODB: FileStorage, ZEO, ...);
* :class:`SQLiteStore` (the standard library's ``sqlite3``);
* :class:`RemoteStore` (a client's links on a linksync server).

A new backend is a Store subclass and an Accessor with five methods; see
:mod:`linksync.stores.accessor`. docs/stores.txt tells the story.
"""

from linksync.stores.accessor import Accessor
from linksync.stores.data import Data, Link
from linksync.stores.errors import (AlreadyExists, NotConnected, NotFound,
                                    StoreError, StoreUnavailable,
                                    Unsupported)
from linksync.stores.memory import MemoryStore
from linksync.stores.remote import RemoteStore
from linksync.stores.sqlitestore import SQLiteStore
from linksync.stores.store import Store, StoreEvent
from linksync.stores.synchronizer import (Propagation, SyncReport,
                                          Synchronizer)
from linksync.stores.trackedstore import TrackedStore
from linksync.stores.zodbstore import ZODBStore

__all__ = [
    'Accessor', 'AlreadyExists', 'Data', 'Link', 'MemoryStore',
    'NotConnected', 'NotFound', 'Propagation', 'RemoteStore', 'SQLiteStore',
    'Store', 'StoreError', 'StoreEvent', 'StoreUnavailable', 'SyncReport',
    'Synchronizer', 'TrackedStore', 'Unsupported', 'ZODBStore',
]
