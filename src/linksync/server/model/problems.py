"""The URLs in trouble, per client and per state: what alerts pages list.

A client's alerts page (linksync.server.web) lists its URLs whose last published
state is a failure. Finding them by looking at every URL of the client would
cost a client with 100,000 links 100,000 object loads per page view, so the
:class:`ProblemIndex` keeps them, kept up to date by subscribers of the URL
events (registered in linksync.server.configure), inside the transaction of the
change:

* every URL in a failure state, by state then URL (the URL search filters
  by state with it);
* per client, the same for the client's URLs, and a count per state
  (conflict-free counters, like linksync.server.model.statecounts).

A page of a client's alerts is then a range of one tree set, whatever the
size of the client. The states come in the order of
:data:`PROBLEM_STATES`, the most serious first (they are stored as their
rank in it).

>>> index = ProblemIndex()
>>> index.add('http://a.test/x', 'temporary unavailable', ['fred', 'ann'])
>>> index.add('http://a.test/y', 'unavailable', ['fred'])
>>> for key in index.client_keys('fred'):
...     print(*key)
unavailable http://a.test/y
temporary unavailable http://a.test/x
>>> index.client_counts('fred')['unavailable'], index.client_total('ann')
(1, 1)
>>> index.remove('http://a.test/x', 'temporary unavailable', ['fred', 'ann'])
>>> list(index.keys('temporary unavailable')), index.client_total('ann')
([], 0)
"""

import heapq

import persistent
import zope.component
from BTrees.Length import Length
from BTrees.OOBTree import OOBTree, OOTreeSet
from zope.interface import implementer

from linksync import states
from linksync.server import interfaces
from linksync.server.model import partition
from linksync.server.model.events import handles_many

#: The states an alerts page shows, most serious first.
PROBLEM_STATES = (states.UNAVAILABLE, states.TEMPORARY, states.UNSUPPORTED)
_RANK = {state: rank for rank, state in enumerate(PROBLEM_STATES)}

#: Greater than any URL (they are printable ASCII): the end of a range.
_AFTER_ALL = '\U0010ffff'


def _key(state, url):
    return (_RANK[state], url)


def _pairs(keys):
    return ((PROBLEM_STATES[rank], url) for rank, url in keys)


@implementer(interfaces.IProblemIndex)
class ProblemIndex(persistent.Persistent):
    """The URLs in a failure state (see the module docstring).

    The trees are kept per shard of the hosts
    (linksync.server.model.partition): checker worker I/N changes the
    states of its shards' URLs only, so it writes only their trees
    (``_shard_all``, and ``_shard_clients``: client id -> tree set), and
    two workers never insert into one tree
    at once (inserts conflict when a bucket splits; a batch of first
    checks splits some). Queries merge the shards, in order. The counts per
    client and state are conflict-free counters, made when the client
    registers URLs.

    An index stored before the shards keeps its two trees ``_all`` and
    ``_by_client`` until :meth:`move_to_shards` has emptied them
    (generation 2 of linksync.server.model.generations); until then they
    are read too.
    """

    #: The trees of an index stored before the shards (which had none:
    #: made by its first change).
    _all = None
    _by_client = None
    _shard_all = _shard_clients = None

    def __init__(self, shards=partition.SHARDS):
        self._make_shards(shards)
        self._counts = OOBTree()

    def _make_shards(self, shards=partition.SHARDS):
        self._shard_all = partition.sharded(OOTreeSet, shards)
        self._shard_clients = partition.sharded(OOBTree, shards)

    def _shard(self, url):
        """(overall tree set, client mapping) of the shard of `url`."""
        if self._shard_all is None:
            self._make_shards()
        shard = partition.shard_of(url, len(self._shard_all))
        return self._shard_all[shard], self._shard_clients[shard]

    def _all_trees(self):
        trees = list(self._shard_all or ())
        if self._all is not None:
            trees.append(self._all)
        return trees

    def _client_trees(self, client_id):
        mappings = list(self._shard_clients or ())
        if self._by_client is not None:
            mappings.append(self._by_client)
        return [urls for urls in (m.get(client_id) for m in mappings)
                if urls is not None]

    # -- changes --------------------------------------------------------------

    def add(self, url, state, client_ids):
        """`url` (normalised) is in `state` for the clients `client_ids`."""
        if state not in _RANK:
            return
        key = _key(state, url)
        overall, clients = self._shard(url)
        overall.insert(key)
        for client_id in client_ids:
            urls = clients.get(client_id)
            if urls is None:
                urls = clients[client_id] = OOTreeSet()
            if urls.insert(key) and not self._in_old(client_id, key):
                self._counter(client_id, state).change(1)

    def _in_old(self, client_id, key):
        old = self._by_client
        urls = old.get(client_id) if old is not None else None
        return urls is not None and key in urls

    def remove(self, url, state, client_ids, everywhere=True):
        """`url` is no longer in `state` for `client_ids` (nor for anyone
        when `everywhere`)."""
        if state not in _RANK:
            return
        key = _key(state, url)
        overall, clients = self._shard(url)
        if everywhere:
            for tree in (overall, self._all):
                if tree is not None and key in tree:
                    tree.remove(key)
        for client_id in client_ids:
            found = False
            for mapping in (clients, self._by_client):
                urls = mapping.get(client_id) if mapping is not None \
                    else None
                if urls is not None and key in urls:
                    urls.remove(key)
                    found = True
            if found:
                self._counter(client_id, state).change(-1)

    def prepare_client(self, client_id):
        """Make the client's counters (before its URLs are checked: two
        checker workers making one at once would conflict)."""
        for state in PROBLEM_STATES:
            self._counter(client_id, state)

    def forget_client(self, client_id):
        """Drop what is kept for a client that is gone."""
        for clients in self._shard_clients or ():
            if client_id in clients:
                del clients[client_id]
        if self._by_client is not None:
            self._by_client.pop(client_id, None)
        for state in PROBLEM_STATES:
            self._counts.pop((client_id, state), None)

    def _counter(self, client_id, state):
        counter = self._counts.get((client_id, state))
        if counter is None:
            counter = self._counts[(client_id, state)] = Length()
        return counter

    def move_to_shards(self, batch=10_000):
        """Move up to `batch` entries of the trees of an older index into
        the trees of their shards; returns how many moved (0: nothing left, and the old
        trees are gone). The counts stay as they are."""
        count = 0
        old = self._all
        while old is not None and count < batch and old:
            key = old.minKey()
            old.remove(key)
            self._shard(key[1])[0].insert(key)
            count += 1
        clients = self._by_client
        while clients is not None and count < batch and clients:
            client_id = clients.minKey()
            urls = clients[client_id]
            while count < batch and urls:
                key = urls.minKey()
                urls.remove(key)
                shard_clients = self._shard(key[1])[1]
                mine = shard_clients.get(client_id)
                if mine is None:
                    mine = shard_clients[client_id] = OOTreeSet()
                mine.insert(key)
                count += 1
            if not urls:
                del clients[client_id]
        if old is not None and not old and count < batch:
            del self._all
        if clients is not None and not clients and count < batch:
            del self._by_client
        if self._shard_all is None:
            self._make_shards()
        return count

    # -- queries --------------------------------------------------------------

    def keys(self, state, start='', excludemin=False):
        """The (state, url) pairs of the URLs in `state`, in URL order, from
        the URL `start` on (lazy)."""
        lo, hi = _key(state, start), _key(state, _AFTER_ALL)
        return _pairs(heapq.merge(*[
            tree.keys(lo, hi, excludemin=excludemin)
            for tree in self._all_trees()]))

    def client_keys(self, client_id, after=None):
        """The (state, url) pairs of a client's URLs in trouble, by state
        (most serious first) then URL, after the pair `after` (lazy)."""
        trees = self._client_trees(client_id)
        if after is None:
            return _pairs(heapq.merge(*[urls.keys() for urls in trees]))
        return _pairs(heapq.merge(*[
            urls.keys(min=_key(*after), excludemin=True) for urls in trees]))

    def client_counts(self, client_id):
        """{state: number of the client's URLs in it} for PROBLEM_STATES."""
        result = {}
        for state in PROBLEM_STATES:
            counter = self._counts.get((client_id, state))
            result[state] = counter() if counter is not None else 0
        return result

    def client_total(self, client_id):
        return sum(self.client_counts(client_id).values())

    def initialize(self, app):
        """Index the URLs of a database that had no index yet."""
        for url in app.urls:
            self.add(url.url, url.state, url.clients)


# -- subscribers (registered in linksync.server.configure) -------------------------

def _index():
    return zope.component.queryUtility(interfaces.IProblemIndex)


def state_changed_many(events):
    index = _index()
    if index is not None:
        for event in events:
            url = event.object
            index.remove(url.url, event.old_state, url.clients)
            index.add(url.url, url.state, url.clients)


@handles_many(state_changed_many)
def state_changed(event):
    state_changed_many([event])


def registered_many(events):
    index = _index()
    if index is not None:
        for client_id in {event.client.id for event in events}:
            index.prepare_client(client_id)
        for event in events:
            index.add(event.object.url, event.object.state,
                      [event.client.id])


@handles_many(registered_many)
def registered(event):
    registered_many([event])


def unregistered(event):
    index = _index()
    if index is not None:
        index.remove(event.object.url, event.object.state,
                     [event.client.id], everywhere=False)


def url_removed(event):
    index = _index()
    if index is not None:
        index.remove(event.object.url, event.object.state, ())


def client_removed(event):
    index = _index()
    if index is not None:
        index.forget_client(event.object.id)
