"""The in-memory store: data kept in dicts, gone with the process.

>>> from linksync.stores.data import Link
>>> from twisted.internet.task import Clock
>>> store = MemoryStore([Link], clock=Clock()).connect()
>>> link = store.add(Link(name='http://example.com/'))
>>> link.id, link.state, link.created
('http://example.com/', 'unknown', 0.0)
>>> store.find(Link, state='unknown')
[<Link 'http://example.com/'>]
"""

import copy

from linksync.stores.accessor import Accessor, matches
from linksync.stores.store import Store


class MemoryAccessor(Accessor):
    """Records of one type in a dict, by id."""

    def __init__(self, store, data_type):
        super().__init__(store, data_type)
        self.records = {}

    def get(self, id):
        record = self.records.get(id)
        return None if record is None else copy.deepcopy(record)

    def find(self, name=None, **fields):
        return [copy.deepcopy(r) for r in self.records.values()
                if matches(r, name, fields)]

    def add(self, record):
        if record['id'] in self.records:
            raise self.taken(record['id'])
        self.records[record['id']] = copy.deepcopy(record)

    def update(self, record):
        if record['id'] not in self.records:
            raise self.missing(record['id'])
        self.records[record['id']] = copy.deepcopy(record)

    def remove(self, id):
        if self.records.pop(id, None) is None:
            raise self.missing(id)


class MemoryStore(Store):
    """Data in memory (tests, caches, a hub between other stores)."""

    accessor_class = MemoryAccessor
