"""LinkDatabase: a client's links and their states, in a file.

The links are a tracked structure (:mod:`linksync.tracked`) saved to a
file, safe YAML by default, through a
:class:`~linksync.stores.trackedstore.TrackedStore` (its docstring shows
the file); the file can be read and edited by hand while no program has
it open.

Connected to a linksync server (:meth:`LinkDatabase.connect`), a
:class:`~linksync.stores.synchronizer.Synchronizer` links it with the
client's links on the server (a
:class:`~linksync.stores.remote.RemoteStore`): a link added here is
registered, a link removed here unregistered, the states the server knows
come back. States the server pushes (:meth:`received`, called by the
:class:`~linksync.client.resource.CallbackResource`) are stored; every
change of a state is reported to `on_states`.

>>> import os, tempfile
>>> db = LinkDatabase(os.path.join(tempfile.mkdtemp(), 'links.yaml'))
>>> db.add('http://www.example.org/', 'http://www.example.org/missing')
['http://www.example.org/', 'http://www.example.org/missing']
>>> db.received([['http://www.example.org/missing', 'unavailable',
...               '404 Not Found']])
1
>>> [(link.name, link.state) for link in db.links()]
[('http://www.example.org/', 'unknown'), ('http://www.example.org/missing', 'unavailable')]
>>> db.add('not a URL')
Traceback (most recent call last):
...
linksync.urlnorm.InvalidURL: white space or control character in 'not a URL' (no link was added)
>>> db.close()
"""

import collections
import os

from zope.interface import implementer

from linksync import states, urlnorm
from linksync.client.interfaces import ILinkDatabase
from linksync.stores.chaining import chain
from linksync.stores.data import Link
from linksync.stores.errors import StoreError
from linksync.stores.remote import RemoteStore
from linksync.stores.synchronizer import Synchronizer
from linksync.stores.trackedstore import TrackedStore, backend_for_path
from linksync.tracked import TrackedError, track

#: What on_states receives, in lists.
StateChange = collections.namedtuple(
    'StateChange', 'url state reason old_state')

#: The states a server may push.
KNOWN_STATES = frozenset(states.STATES + (states.UNKNOWN,))


def check_urls(urls):
    """The URLs (stripped), or InvalidURL naming the first bad one."""
    checked = []
    for url in urls:
        try:
            urlnorm.normalize(url)
        except urlnorm.InvalidURL as e:
            raise urlnorm.InvalidURL('%s (no link was added)' % e) from None
        checked.append(url.strip())
    return list(dict.fromkeys(checked))


@implementer(ILinkDatabase)
class LinkDatabase:
    """The links of a client in the file at `path` (created when missing;
    `format` as :func:`~linksync.stores.trackedstore.backend_for_path`).

    * `clock` stamps the links (``created``, ``updated``) and schedules the
      retries of the Synchronizer;
    * `on_states(changes)` is called with a list of :data:`StateChange`
      whenever states change.
    """

    def __init__(self, path='links.yaml', format=None, clock=None,
                 on_states=None, tracked=None):
        self.path = path
        self.clock = clock
        self.on_states = on_states
        if tracked is not None:
            self.store = TrackedStore([Link], tracked=tracked, name=path,
                                      clock=clock)
        else:
            self.store = TrackedStore([Link], path=path, format=format,
                                      clock=clock)
        self.store.connect()
        self.store.observe(self._heard)
        self.remote = None
        self.synchronizer = None

    @classmethod
    def read(cls, path, format=None):
        """The database in `path`, read only: a copy in memory (the file is
        neither locked nor written, whoever else has it open)."""
        if not os.path.exists(path):
            raise StoreError('there is no link database %s' % path)
        try:
            data = backend_for_path(path, format).load()
        except TrackedError as e:
            raise StoreError(str(e)) from None
        return cls(path, tracked=track(data, path, persist=False))

    def __repr__(self):
        return '<LinkDatabase %s: %d links>' % (self.path, len(self))

    def close(self):
        """Stop synchronising and close the file."""
        if self.synchronizer is not None:
            self.synchronizer.close()
        self.store.disconnect()

    # -- reading --------------------------------------------------------------

    def links(self, state=None):
        """The links (Link objects), sorted by URL; only those in `state`
        when given."""
        found = self.store.find(Link) if state is None else \
            self.store.find(Link, state=state)
        return sorted(found, key=lambda link: link.name)

    def urls(self):
        """The URLs, sorted."""
        return [link.name for link in self.links()]

    def get(self, url):
        """The Link of `url`, or None."""
        return self.store.get(Link, url)

    def __contains__(self, url):
        return self.get(url) is not None

    def __len__(self):
        return len(self.store.find(Link))

    def __iter__(self):
        return iter(self.urls())

    # -- changing -------------------------------------------------------------

    def add(self, *urls):
        """Add links; returns the URLs that were new. Every URL is checked
        first: an invalid one (InvalidURL) adds none."""
        new = [url for url in check_urls(urls) if url not in self]
        self.store.put_many([Link(name=url) for url in new])
        return new

    def remove(self, *urls):
        """Remove links; returns the URLs that were there."""
        gone = [link for link in map(self.get, dict.fromkeys(urls))
                if link is not None]
        self.store.delete_many(gone)
        return [link.name for link in gone]

    def received(self, rows):
        """Store states pushed by the server: [url, state, reason] rows.

        Rows for URLs the database does not have (removed here, not yet
        unregistered there) are ignored. Returns the number of rows
        stored. A row that is not three strings with a known state raises
        ValueError, and none is stored.
        """
        for row in rows:
            if not isinstance(row, (list, tuple)) or len(row) != 3 or \
                    not all(isinstance(v, str) for v in row):
                raise ValueError('a state is [url, state, reason] (three '
                                 'strings), not %r' % (row,))
            if row[1] not in KNOWN_STATES:
                raise ValueError('unknown state %r for %s' % (row[1],
                                                              row[0]))
        known = [Link(name=url, state=state, reason=reason)
                 for url, state, reason in rows if url in self]
        self.store.put_many(known, fields=('state', 'reason'),
                            create=False)
        return len(known)

    def _heard(self, events):
        if self.on_states is None:
            return
        changes = [StateChange(e.data.name, e.data.state, e.data.reason,
                               e.old.state if e.old is not None else None)
                   for e in events
                   if e.action == 'updated' and
                   (e.old is None or e.old.state != e.data.state)]
        if changes:
            self.on_states(changes)

    # -- the server -----------------------------------------------------------

    def connect(self, client, clock=None, on_error=None):
        """Keep the database in sync with the client's links on the server
        reached by `client` (an LMSClient or a TwistedLMSClient); returns
        the Synchronizer."""
        if self.synchronizer is not None:
            raise StoreError('%s is connected to a server already'
                             % self.path)
        self.remote = RemoteStore(client, clock=self.clock).connect()
        self.synchronizer = Synchronizer(
            [self.store, self.remote], clock=clock, on_error=on_error,
            name='links of %s' % self.path)
        return self.synchronizer

    def sync(self, force=True):
        """Register the links the server lacks, take the states it knows,
        and (with `force`) ask it for a full synchronisation, which
        unregisters there what is gone here and sends every state. Returns
        the SyncReport (or a Deferred of it)."""
        if self.synchronizer is None:
            raise StoreError('%s is not connected to a server' % self.path)

        def forced(report):
            if not force:
                return report
            return chain(self.remote.client.force_synchronization,
                         lambda _: report)
        return chain(self.synchronizer.sync, forced)
