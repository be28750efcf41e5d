"""The tracked-structure store: data in a file of any tracked format.

The data live in a tracked structure (:mod:`linksync.tracked`), a dict
holding one dict per data type (its ``type_name``), mapping ids to records
(the id is the key, not repeated; a name equal to the id and an empty
description are left out), so that a file stays pleasant to read and to
edit::

    links:
      http://www.example.org/:
        created: 1297082000.0
        reason: 200 OK
        state: ok
        updated: 1297082011.0

The file is any format of ``linksync.tracked`` (told by its extension:
``.yaml`` or ``.yml``, ``.json``, ``.pickle``, ``.shelve``, ``.fs``, or by
``format=``); a structure tracked already can be given instead.

The structure may be changed directly too (by the application, or by hand
in the file before the store is opened): the store watches its commits and
tells its observers what was added, updated or removed, as for its own
writes. A record a hand left unreadable (not a mapping, a field the type
lacks) is reported with its id and skipped, never guessed at.

A batch (``put_many``) is one ``with`` block of the structure: one save,
and nothing saved when any of it fails.
"""

import os

from twisted.logger import Logger

from linksync.stores.accessor import Accessor, matches
from linksync.stores.errors import StoreError
from linksync.stores.store import Store, StoreEvent
from linksync.tracked import FORMATS, TrackedError, plain_copy, track
from linksync.tracked.tracker import tracker_of

log = Logger()

#: The format of a file by its extension.
EXTENSIONS = {
    '.yaml': 'yaml', '.yml': 'yaml', '.json': 'json', '.pickle': 'pickle',
    '.shelve': 'shelve', '.fs': 'zodb',
}


def backend_for_path(path, format=None):
    """The tracked backend saving to `path` (format from the extension)."""
    if format is None:
        format = EXTENSIONS.get(os.path.splitext(path)[1].lower())
        if format is None:
            raise StoreError(
                'cannot tell the format of %s from its extension (%s): '
                'give a format, one of %s' % (
                    path, ', '.join(sorted(EXTENSIONS)),
                    ', '.join(sorted(FORMATS))))
    try:
        factory = FORMATS[format]
    except KeyError:
        raise StoreError('unknown format %r (known: %s)' % (
            format, ', '.join(sorted(FORMATS)))) from None
    return factory(path)


def _stored(record):
    """What the structure keeps of a record (the id is its key)."""
    stored = {k: v for k, v in record.items() if k != 'id'}
    if stored.get('name') == record['id']:
        del stored['name']
    if stored.get('description') == '':
        del stored['description']
    return stored


class TrackedAccessor(Accessor):
    """Records of one type in a dict of the structure."""

    def _collection(self, create=False):
        root = self.store.root
        collection = root.get(self.data_type.type_name)
        if collection is None:
            if not create:
                return {}
            root[self.data_type.type_name] = {}
            collection = root[self.data_type.type_name]
        elif not isinstance(collection, dict):
            raise StoreError('%s: %r holds %s, not a mapping of ids to '
                             'records' % (self.store.name,
                                          self.data_type.type_name,
                                          type(collection).__name__))
        return collection

    def record(self, id, stored):
        """The record of `id` from what the structure holds."""
        if stored is None:
            stored = {}
        elif not isinstance(stored, dict):
            raise StoreError('%s: the %s %r is %s, not a mapping of fields'
                             % (self.store.name, self.data_type.type_name,
                                id, type(stored).__name__))
        record = self.data_type.defaults()
        record['name'] = id
        record.update(plain_copy(stored))
        record['id'] = id
        return record

    def get(self, id):
        collection = self._collection()
        if id not in collection:
            return None
        return self.record(id, collection[id])

    def find(self, name=None, **fields):
        records = (self.record(id, stored)
                   for id, stored in self._collection().items())
        return [r for r in records if matches(r, name, fields)]

    def add(self, record):
        if record['id'] in self._collection():
            raise self.taken(record['id'])
        self._write(record['id'], record)

    def update(self, record):
        if record['id'] not in self._collection():
            raise self.missing(record['id'])
        self._write(record['id'], record)

    def remove(self, id):
        if id not in self._collection():
            raise self.missing(id)
        self._write(id, None)

    def _write(self, id, record):
        # The shadow first: the commit of the change tells the store's
        # watcher, which must find nothing new (the store tells its
        # observers itself, with the origin of the write).
        before = self.store.shadow_write(self.data_type, id, record)
        try:
            collection = self._collection(create=True)
            if record is None:
                del collection[id]
            else:
                collection[id] = _stored(record)
        except BaseException as e:
            self.store.shadow_write(self.data_type, id, before)
            if isinstance(e, TrackedError):
                raise StoreError(str(e)) from None
            raise


class _Watcher:
    """Hears the commits of the structure for its store."""

    needs_edits = True

    def __init__(self, store):
        self.store = store

    def committed(self, changes):
        self.store.committed(changes)


class TrackedStore(Store):
    """Data in a tracked structure: `tracked` (a dict tracked already), or
    the file at `path` (tracked when the store connects; `format` as in
    :func:`backend_for_path`)."""

    accessor_class = TrackedAccessor
    atomic = True

    def __init__(self, types, tracked=None, path=None, format=None,
                 name=None, clock=None):
        if (tracked is None) == (path is None):
            raise ValueError('give a tracked structure or a path')
        if tracked is not None and not isinstance(tracked, dict):
            raise StoreError('a tracked store needs a tracked dict, not %s'
                             % type(tracked).__name__)
        self.path = path
        self.format = format
        self.root = tracked
        super().__init__(types, name=name or path or (
            tracked_name(tracked)), clock=clock)
        self._watcher = _Watcher(self)
        self._shadow = {}
        self._by_name = {t.type_name: t for t in self.types}

    def open(self):
        if self.path is not None:
            backend = backend_for_path(self.path, self.format)
            try:
                self.root = track({t.type_name: {} for t in self.types},
                                  persist=backend)
            except TrackedError as e:
                raise StoreError(str(e)) from None
            if not isinstance(self.root, dict):
                tracker_of(self.root).close()
                raise StoreError('%s holds a %s, not a mapping of data '
                                 'types' % (self.path,
                                            type(self.root).__name__))
        self._reload_shadow()
        tracker_of(self.root).add_observer(self._watcher)

    def close(self):
        tracker_of(self.root).remove_observer(self._watcher)
        if self.path is not None:
            tracker_of(self.root).close()

    def transaction(self):
        return _Block(self)

    # -- the shadow: what observers were told last ----------------------------

    def _reload_shadow(self, types=None):
        for data_type in types or self.types:
            records = {}
            for record in self._readable(data_type, None):
                records[record['id']] = record
            self._shadow[data_type] = records

    def _readable(self, data_type, ids):
        """The records of `ids` (all when None) that can be read; the
        others are reported and left out."""
        accessor = self.accessors[data_type]
        try:
            collection = accessor._collection()
        except StoreError as e:
            log.error('{error}', error=str(e))
            return []
        if ids is None:
            ids = list(collection)
        records = []
        for id in ids:
            if id not in collection:
                continue
            try:
                record = accessor.record(id, collection[id])
                data_type.from_record(record)
            except StoreError as e:
                log.error('{error} (the record is left out)', error=str(e))
                continue
            records.append(record)
        return records

    def shadow_write(self, data_type, id, record):
        """Put `record` (None: nothing) in the shadow; returns what was
        there."""
        shadow = self._shadow.setdefault(data_type, {})
        before = shadow.get(id)
        if record is None:
            shadow.pop(id, None)
        else:
            shadow[id] = plain_copy(record)
        return before

    def committed(self, changes):
        """Tell the observers about changes made directly to the
        structure (the store's own writes are in the shadow already)."""
        touched = {}
        for change in changes:
            for area in change.areas():
                if not area:
                    for data_type in self.types:
                        touched[data_type] = None
                    continue
                data_type = self._by_name.get(area[0])
                if data_type is None or touched.get(data_type, ()) is None:
                    continue
                if len(area) == 1:
                    touched[data_type] = None
                else:
                    touched.setdefault(data_type, {})[area[1]] = None
        events = []
        for data_type, ids in touched.items():
            events.extend(self._compare(data_type, ids))
        self.notify(events)

    def _compare(self, data_type, ids):
        shadow = self._shadow.setdefault(data_type, {})
        current = {r['id']: r for r in self._readable(data_type, ids)}
        if ids is None:
            ids = list(dict.fromkeys(list(shadow) + list(current)))
        events = []
        for id in ids:
            old = shadow.get(id)
            new = current.get(id)
            if old is None and new is None:
                continue
            if new is None:
                events.append(StoreEvent('removed', self,
                                         self._data(data_type, old)))
                del shadow[id]
            elif old is None:
                events.append(StoreEvent('added', self,
                                         self._data(data_type, new)))
                shadow[id] = new
            elif old != new:
                events.append(StoreEvent(
                    'updated', self, self._data(data_type, new),
                    self._data(data_type, old)))
                shadow[id] = new
        return events


class _Block:
    """A batch: one `with` block of the structure; on failure the shadow
    is read again (the block's changes were taken back)."""

    def __init__(self, store):
        self.store = store

    def __enter__(self):
        tracker_of(self.store.root).begin()

    def __exit__(self, exc_type, exc, tb):
        try:
            tracker_of(self.store.root).end(exc_type is None)
        except TrackedError as e:
            self.store._reload_shadow()
            raise StoreError(str(e)) from None
        if exc_type is not None:
            self.store._reload_shadow()
        return False


def tracked_name(tracked):
    if tracked is None:
        return None
    return tracker_of(tracked).name or 'tracked structure'
