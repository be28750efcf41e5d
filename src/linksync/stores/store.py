"""The Store: a set of data reached through its accessors.

A store holds data of the types it was made for, one
:class:`~linksync.stores.accessor.Accessor` each. Its methods are the same
for every backend:

* ``connect()`` / ``disconnect()`` (also a ``with`` block);
* ``create``, ``get``, ``find``, ``add``, ``update``, ``remove`` and
  ``save`` on :class:`~linksync.stores.data.Data` objects;
* ``put`` and ``delete``, the way the Synchronizer writes: add or update
  (remove) the datum matching by id, else by name; and their batches
  ``put_many`` and ``delete_many``, one transaction where the backend has
  transactions;
* observers, called after every write with a list of
  :class:`StoreEvent` (``added``, ``updated`` with the old datum,
  ``removed``) saying who made it (``origin``: a Synchronizer passes
  itself, so that it does not hear its own writes back).

Writes made with ``origin=None`` (by the application) are stamped:
``created`` when added, ``updated`` every time, from the store's clock.
Writes on behalf of a Synchronizer keep the stamps of the datum they copy,
so that stores linked in a circle agree instead of changing forever. An
update that changes nothing (time stamps aside) writes nothing and tells
nobody: a change that went round comes back as no change.

A store is used from one thread. A store working over the network with a
Twisted client answers with Deferreds, from the reactor thread.
"""

import contextlib

from twisted.logger import Logger
from zope.interface import implementer

from linksync.stores.interfaces import IStore, IStoreEvent
from linksync.stores.chaining import chain, each, is_deferred
from linksync.stores.errors import (AlreadyExists, NotConnected, NotFound,
                                    StoreError)

log = Logger()

#: Fields that do not make two versions of a datum different.
STAMPS = ('id', 'created', 'updated')


@implementer(IStoreEvent)
class StoreEvent:
    """One write of a store, as its observers hear of it."""

    __slots__ = ('action', 'store', 'data', 'old', 'origin')

    def __init__(self, action, store, data, old=None, origin=None):
        self.action = action
        self.store = store
        self.data = data
        self.old = old
        self.origin = origin

    def __repr__(self):
        return '<StoreEvent %s %r in %s>' % (self.action, self.data,
                                             self.store.name)


@implementer(IStore)
class Store:
    """Data of some types, reached through one accessor per type.

    Subclasses give `accessor_class` (``accessor_class(store, type)``), and
    may implement ``open()`` and ``close()`` (called by connect() and
    disconnect()) and ``transaction()`` (a context manager making a batch
    one transaction; set `atomic` when a failed batch leaves nothing).
    """

    accessor_class = None
    #: True when a batch that fails leaves no change behind.
    atomic = False

    def __init__(self, types, name=None, clock=None):
        types = tuple(types)
        if not types:
            raise ValueError('a store holds data of one type at least')
        if clock is None:
            from twisted.internet import reactor as clock
        self.types = types
        self.name = name or type(self).__name__
        self.clock = clock
        self.accessors = {t: self.accessor_class(self, t) for t in types}
        self.connected = False
        self._observers = []
        self._collecting = []

    def __repr__(self):
        return '<%s %s>' % (type(self).__name__, self.name)

    # -- connection -----------------------------------------------------------

    def connect(self):
        """Open the files or connections; returns the store."""
        if not self.connected:
            self.open()
            self.connected = True
        return self

    def disconnect(self):
        if self.connected:
            self.connected = False
            self.close()

    def open(self):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc):
        self.disconnect()

    def transaction(self):
        """A context manager making the writes inside it one transaction
        (none by default)."""
        return contextlib.nullcontext()

    # -- observers ------------------------------------------------------------

    def observe(self, observer):
        """Call observer(events) after writes (a list of StoreEvent)."""
        if observer not in self._observers:
            self._observers.append(observer)

    def unobserve(self, observer):
        if observer in self._observers:
            self._observers.remove(observer)

    def notify(self, events):
        """Tell the observers about `events` (or keep them for the end of
        the batch being written)."""
        if not events:
            return
        if self._collecting:
            self._collecting[-1].extend(events)
            return
        for observer in list(self._observers):
            # The write was made: an observer failing must not keep the
            # others (a Synchronizer among them) from hearing of it, nor
            # make the writer believe it failed. Its error is logged.
            try:
                observer(events)
            except Exception:
                log.failure('{store}: an observer failed on {n} event(s): '
                            '{observer!r}', store=self.name, n=len(events),
                            observer=observer)

    # -- reading --------------------------------------------------------------

    def accessor(self, data_type):
        """The accessor of `data_type`; StoreError when the store does not
        hold that type or is not connected."""
        if not self.connected:
            raise NotConnected('%s is not connected' % self.name)
        try:
            return self.accessors[data_type]
        except KeyError:
            raise StoreError('%s holds no %s (it holds %s)' % (
                self.name, getattr(data_type, '__name__', data_type),
                ', '.join(t.__name__ for t in self.types))) from None

    def now(self):
        return self.clock.seconds()

    def _data(self, data_type, record):
        return data_type.from_record(record, self)

    def create(self, data_type, **values):
        """A new datum of `data_type` for this store (not stored yet)."""
        return self.accessor(data_type).create(**values)

    def get(self, data_type, id):
        """The datum with that id, or None."""
        return chain(lambda: self.accessor(data_type).get(id),
                     lambda record: None if record is None
                     else self._data(data_type, record))

    def find(self, data_type, name=None, **fields):
        """The data with that name and those fields (all without any)."""
        return chain(lambda: self.accessor(data_type).find(name, **fields),
                     lambda records: [self._data(data_type, r)
                                      for r in records])

    def match(self, data_type, id=None, names=()):
        """The datum with that id, else the one datum with one of `names`
        (tried in order), else None."""
        accessor = self.accessor(data_type)
        names = [n for n in names if n]

        def by_name(index):
            if index >= len(names):
                return None
            return chain(lambda: accessor.find(name=names[index]),
                         lambda records: self._data(data_type, records[0])
                         if len(records) == 1 else by_name(index + 1))
        if id is None:
            return by_name(0)
        return chain(lambda: accessor.get(id),
                     lambda record: by_name(0) if record is None
                     else self._data(data_type, record))

    # -- writing --------------------------------------------------------------

    def add(self, data, origin=None):
        """Add a new datum (AlreadyExists when its id is taken); returns
        it, saved and bound to this store."""
        data_type = type(data)
        accessor = self.accessor(data_type)
        record = data.record()
        if record['id'] is None:
            record['id'] = data_type.new_id(data)
        if origin is None:
            now = self.now()
            if record['created'] is None:
                record['created'] = now
            record['updated'] = now
        return chain(lambda: accessor.add(record),
                     lambda _: self._written('added', data, record, None,
                                             origin))

    def update(self, data, origin=None):
        """Save the changes of a datum of this store (NotFound when it is
        not there); nothing is written when nothing changed."""
        data_type = type(data)
        accessor = self.accessor(data_type)
        record = data.record()
        if record['id'] is None:
            raise NotFound('this %s was never added to %s' % (
                data_type.__name__, self.name))

        def compare(old):
            if old is None:
                raise NotFound('%s has no %s %r' % (
                    self.name, data_type.__name__, record['id']))
            if not self.differs(accessor, old, record):
                data._mark_saved(record)
                data.store = self
                return data
            if origin is None:
                record['updated'] = self.now()
            return chain(lambda: accessor.update(record),
                         lambda _: self._written(
                             'updated', data, record,
                             self._data(data_type, old), origin))
        return chain(lambda: accessor.get(record['id']), compare)

    def remove(self, data, origin=None):
        """Remove a datum (NotFound when it is not there)."""
        data_type = type(data)
        accessor = self.accessor(data_type)
        if data.id is None:
            raise NotFound('this %s was never added to %s' % (
                data_type.__name__, self.name))

        def removed(old):
            if old is None:
                raise NotFound('%s has no %s %r' % (
                    self.name, data_type.__name__, data.id))
            return chain(lambda: accessor.remove(data.id),
                         lambda _: self._removed(data_type, old, origin))
        return chain(lambda: accessor.get(data.id), removed)

    def save(self, data):
        """Add a datum never saved, update one that was."""
        if data._saved is None:
            return self.add(data)
        return self.update(data)

    def _written(self, action, data, record, old, origin):
        data._mark_saved(record)
        data.store = self
        self.notify([StoreEvent(action, self, data.copy(self), old, origin)])
        return data

    def _removed(self, data_type, old, origin):
        self.notify([StoreEvent('removed', self, self._data(data_type, old),
                                None, origin)])

    @staticmethod
    def differs(accessor, old, new):
        """True when record `new` changes what `accessor` keeps of `old`
        (time stamps and the fields the store owns aside)."""
        for field in accessor.fields:
            if field in STAMPS or field in accessor.owned:
                continue
            if old.get(field) != new.get(field):
                return True
        return False

    # -- what the Synchronizer calls ------------------------------------------

    def put(self, data, origin=None, names=(), fields=None, create=True):
        """Add `data`, or update the datum it matches (by id, else by its
        name or one of `names`). Returns 'added', 'updated', or None when
        nothing had to change.

        Updating writes the `fields` of `data` (all by default: a store
        that keeps fewer gives those it keeps), keeps the id of the datum
        matched and the values of the fields this store owns. With
        `create` false, a datum that matches none is not added (facts
        about a datum do not make one). An add that finds the id taken
        falls back to an update, an update that finds the datum gone to an
        add.
        """
        data_type = type(data)
        accessor = self.accessor(data_type)
        names = (data.name,) + tuple(names)

        def add(_=None):
            if not create:
                return None
            new = data.copy()
            return chain(lambda: self.add(new, origin),
                         lambda _: 'added', update_instead)

        def update_instead(error):
            if not isinstance(error, AlreadyExists):
                raise error
            return chain(lambda: self.match(data_type, data.id, names),
                         lambda existing: update(existing) if existing
                         else _raise(error))

        def update(existing):
            record = existing.record()
            for field in fields or data_type.field_names():
                if field != 'id' and field not in accessor.owned:
                    record[field] = getattr(data, field)
            if not self.differs(accessor, existing.record(), record):
                return None
            new = existing.copy()
            new._values.update(record)
            return chain(lambda: self.update(new, origin),
                         lambda _: 'updated', add_instead)

        def add_instead(error):
            if not isinstance(error, NotFound):
                raise error
            return add()

        return chain(lambda: self.match(data_type, data.id, names),
                     lambda existing: add() if existing is None
                     else update(existing))

    def delete(self, data, origin=None, names=()):
        """Remove the datum matching `data` (by id, else by name); returns
        'removed', or None when there was none."""
        data_type = type(data)

        def gone(error):
            if isinstance(error, NotFound):
                return None
            raise error

        def remove(existing):
            if existing is None:
                return None
            return chain(lambda: self.remove(existing, origin),
                         lambda _: 'removed', gone)
        return chain(lambda: self.match(data_type, data.id,
                                        (data.name,) + tuple(names)),
                     remove)

    def put_many(self, datas, origin=None, names=None, fields=None,
                 create=True):
        """put() each of `datas` (with the matching entry of `names`, a
        list of tuples of other names), in one transaction where the
        backend has them; the list of what each did."""
        names = names or [()] * len(datas)
        return self._batch(lambda: each(
            list(zip(datas, names)),
            lambda pair: self.put(pair[0], origin, pair[1], fields,
                                  create)))

    def delete_many(self, datas, origin=None, names=None):
        """delete() each of `datas`, like put_many()."""
        names = names or [()] * len(datas)
        return self._batch(lambda: each(
            list(zip(datas, names)),
            lambda pair: self.delete(pair[0], origin, pair[1])))

    def _batch(self, func):
        events = []
        self._collecting.append(events)
        try:
            with self.transaction():
                result = func()
                if is_deferred(result):
                    raise StoreError('%s answered with a Deferred inside a '
                                     'batch: a store working over the '
                                     'network writes its own put_many()'
                                     % self.name)
        except BaseException:
            self._collecting.pop()
            if not self.atomic:
                self.notify(events)     # what was written, was written
            raise
        self._collecting.pop()
        self.notify(events)
        return result


def _raise(error):
    raise error


class Transaction:
    """A store's transaction as a context manager; nested ones join the
    outer one. Subclasses write begin(), commit() and abort(); the store
    counts the depth in `_depth`."""

    def __init__(self, store):
        self.store = store

    def __enter__(self):
        if self.store._depth == 0:
            self.begin()
        self.store._depth += 1

    def __exit__(self, exc_type, exc, tb):
        self.store._depth -= 1
        if self.store._depth:
            return False
        if exc_type is not None:
            self.abort()
            return False
        try:
            self.commit()
        except BaseException:
            self.abort()
            raise
        return False
