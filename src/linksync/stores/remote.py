"""The remote store: a client's links on a linksync server.

Its data are :class:`~linksync.stores.data.Link` objects, one per URL the
client registered (id and name: the URL as the client spells it). Writing
is registering (``registerURLs``, which also answers the states the server
knows), removing is unregistering (``unregisterURLs``); reading asks
``getURLStates``. The server decides the states: ``state`` and ``reason``
are owned fields (nobody else writes them, and in ``sync()`` the server's
values win), and ``updated`` is the time of the server's last check.

The protocol has no method listing a client's links (the server asks the
client for its whole database instead: ``forceSynchronization``), so this
store cannot be listed: ``find()`` needs a name, and ``sync()`` looks its
data up by the names the other stores have.

States the server pushes (``updateManyStates``, received by the client's
:class:`~linksync.client.resource.CallbackResource`) and those
``registerURLs`` answers are news from this store: :meth:`RemoteStore.
received` tells the observers, as updates of the owned fields (which a
Synchronizer does not turn into additions elsewhere).

It works with either client flavour: with the blocking
:class:`~linksync.client.blocking.LMSClient` it answers at once, with the
:class:`~linksync.client.deferred.TwistedLMSClient` with Deferreds.
"""

from linksync.stores.accessor import Accessor, matches
from linksync.stores.chaining import chain
from linksync.stores.data import Link
from linksync.stores.errors import Unsupported
from linksync.stores.store import Store, StoreEvent


def _record(url, state, reason, checked=None):
    return {'id': url, 'name': url, 'description': '', 'created': None,
            'updated': checked, 'state': state, 'reason': reason}


class RemoteAccessor(Accessor):
    """The client's links on the server."""

    enumerable = False
    owned = ('state', 'reason')

    @property
    def fields(self):
        return ('id', 'name', 'state', 'reason')

    @property
    def client(self):
        return self.store.client

    def get(self, id):
        return chain(lambda: self.client.get_url_states([id]),
                     lambda rows: _record(*rows[0]) if rows else None)

    def find(self, name=None, **fields):
        if name is None:
            raise Unsupported('%s cannot list the links of a client (the '
                              'protocol has no such method): find them by '
                              'name' % self.store.name)
        return chain(lambda: self.client.get_url_states([name]),
                     lambda rows: [r for r in (_record(*row) for row in rows)
                                   if matches(r, name, fields)])

    def lookup(self, names):
        def found(rows):
            result = {}
            for row in rows:
                result.setdefault(row.url, []).append(_record(*row))
            return result
        return chain(lambda: self.client.get_url_states(list(names)), found)

    def add(self, record):
        return chain(lambda: self.client.register_urls([record['name']]),
                     self.store.received)

    def update(self, record):
        # Registering again is harmless, and makes sure it is there.
        return self.add(record)

    def remove(self, id):
        return self.client.unregister_urls([id])


class RemoteStore(Store):
    """The links of one client on a linksync server, through `client`
    (an LMSClient or a TwistedLMSClient)."""

    accessor_class = RemoteAccessor

    def __init__(self, client, name=None, clock=None):
        self.client = client
        super().__init__([Link], name=name or client.url, clock=clock)

    def received(self, rows):
        """Tell the observers about states the server sent: rows of
        (url, state, reason)."""
        self.notify([StoreEvent('updated', self, self._data(
            Link, _record(url, state, reason))) for url, state, reason in
            rows])

    # -- registering in batches (what the Synchronizer calls) -----------------

    def put(self, data, origin=None, names=(), fields=None, create=True):
        return chain(lambda: self.put_many([data], origin, [names], fields,
                                           create),
                     lambda results: results[0])

    def put_many(self, datas, origin=None, names=None, fields=None,
                 create=True):
        """Register the links (their old names, after a change of URL, are
        unregistered); 'added' for each."""
        if not create:
            return [None] * len(datas)     # nothing to write but states
        self.accessor(Link)
        urls = [d.name for d in datas]
        old = [n for ns in (names or ()) for n in ns if n not in urls]

        def registered(states):
            self.notify([StoreEvent('added', self, self._data(
                Link, _record(url, 'unknown', '')), origin=origin)
                for url in urls])
            self.received(states)
            return chain(lambda: self.client.unregister_urls(old)
                         if old else None,
                         lambda _: ['added'] * len(datas))
        return chain(lambda: self.client.register_urls(urls), registered)

    def delete(self, data, origin=None, names=()):
        return chain(lambda: self.delete_many([data], origin, [names]),
                     lambda results: results[0])

    def delete_many(self, datas, origin=None, names=None):
        """Unregister the links; 'removed' for each (the server ignores
        URLs it does not have)."""
        self.accessor(Link)
        urls = [d.name for d in datas] + [n for ns in (names or ())
                                          for n in ns]

        def unregistered(_):
            self.notify([StoreEvent('removed', self, data.copy(self),
                                    origin=origin) for data in datas])
            return ['removed'] * len(datas)
        return chain(lambda: self.client.unregister_urls(urls), unregistered)
