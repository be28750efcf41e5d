"""The Accessor: one data type in one store, what a new backend writes.

A backend (a file format, a database, a remote service) is a
:class:`~linksync.stores.store.Store` subclass naming its accessor class;
the accessor implements five methods on plain records (dicts of fields):

* ``get(id)``: the record with that id, or None;
* ``find(name=None, **fields)``: the records with that name and those
  field values, all of them when nothing is given;
* ``add(record)``: store a new record (:class:`AlreadyExists` when the id
  is taken);
* ``update(record)``: replace the record with the same id
  (:class:`NotFound` when there is none);
* ``remove(id)``: remove it (:class:`NotFound` when there is none);

and may replace ``create(**values)`` (a new datum, not stored yet), which
is shared. Everything else (notifying observers, time stamps, matching by
name, batches, the Synchronizer) is the Store's and works for every
backend. A backend that answers over the network may return Deferreds
from these methods.

Faster ways are optional: ``lookup(names)`` finds many names at once.
"""

import abc

from zope.interface import implementer

from linksync.stores.interfaces import IAccessor
from linksync.stores.chaining import chain, each
from linksync.stores.errors import AlreadyExists, NotFound


@implementer(IAccessor)
class Accessor(abc.ABC):
    """The CRUD methods of one data type in one store."""

    #: False when find() needs a name (the store cannot list its data).
    enumerable = True
    #: Fields the store decides itself (see IAccessor.owned).
    owned = ()

    def __init__(self, store, data_type):
        self.store = store
        self.data_type = data_type

    @property
    def fields(self):
        """The fields this store keeps (all of the type's by default)."""
        return self.data_type.field_names()

    def __repr__(self):
        return '<%s of %s in %s>' % (type(self).__name__,
                                     self.data_type.__name__, self.store.name)

    def create(self, **values):
        """A new datum of the type, bound to the store, not stored yet."""
        return self.data_type(store=self.store, **values)

    @abc.abstractmethod
    def get(self, id):
        """The record with that id, or None."""

    @abc.abstractmethod
    def find(self, name=None, **fields):
        """The records matching; all of them when nothing is given."""

    @abc.abstractmethod
    def add(self, record):
        """Store a new record; AlreadyExists when its id is taken."""

    @abc.abstractmethod
    def update(self, record):
        """Replace the record with the same id; NotFound when missing."""

    @abc.abstractmethod
    def remove(self, id):
        """Remove the record with that id; NotFound when missing."""

    def missing(self, id):
        """The NotFound error for `id` (for the backends' messages)."""
        return NotFound('%s has no %s %r' % (
            self.store.name, self.data_type.__name__, id))

    def taken(self, id):
        """The AlreadyExists error for `id`."""
        return AlreadyExists('%s has a %s %r already' % (
            self.store.name, self.data_type.__name__, id))

    # -- optional, for speed --------------------------------------------------

    def lookup(self, names):
        """{name: [records]} for the given names that have records."""
        found = {}

        def one(name):
            return chain(lambda: self.find(name=name),
                         lambda records: found.__setitem__(name, records)
                         if records else None)
        return chain(lambda: each(names, one), lambda _: found)


def matches(record, name=None, fields=None):
    """True when `record` has that name (if given) and those fields."""
    if name is not None and record.get('name') != name:
        return False
    if fields:
        for key, value in fields.items():
            if record.get(key) != value:
                return False
    return True
