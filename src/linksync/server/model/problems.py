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

import persistent
import zope.component
from BTrees.Length import Length
from BTrees.OOBTree import OOBTree, OOTreeSet
from zope.interface import implementer

from linksync import states
from linksync.server import interfaces
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
    """The URLs in a failure state (see the module docstring)."""

    def __init__(self):
        self._all = OOTreeSet()
        self._by_client = OOBTree()
        self._counts = OOBTree()

    # -- changes --------------------------------------------------------------

    def add(self, url, state, client_ids):
        """`url` (normalised) is in `state` for the clients `client_ids`."""
        if state not in _RANK:
            return
        key = _key(state, url)
        self._all.insert(key)
        for client_id in client_ids:
            urls = self._by_client.get(client_id)
            if urls is None:
                urls = self._by_client[client_id] = OOTreeSet()
            if urls.insert(key):
                self._counter(client_id, state).change(1)

    def remove(self, url, state, client_ids, everywhere=True):
        """`url` is no longer in `state` for `client_ids` (nor for anyone
        when `everywhere`)."""
        if state not in _RANK:
            return
        key = _key(state, url)
        if everywhere and key in self._all:
            self._all.remove(key)
        for client_id in client_ids:
            urls = self._by_client.get(client_id)
            if urls is not None and key in urls:
                urls.remove(key)
                self._counter(client_id, state).change(-1)

    def forget_client(self, client_id):
        """Drop what is kept for a client that is gone."""
        self._by_client.pop(client_id, None)
        for state in PROBLEM_STATES:
            self._counts.pop((client_id, state), None)

    def _counter(self, client_id, state):
        counter = self._counts.get((client_id, state))
        if counter is None:
            counter = self._counts[(client_id, state)] = Length()
        return counter

    # -- queries --------------------------------------------------------------

    def keys(self, state, start='', excludemin=False):
        """The (state, url) pairs of the URLs in `state`, in URL order, from
        the URL `start` on (lazy)."""
        return _pairs(self._all.keys(_key(state, start),
                                     _key(state, _AFTER_ALL),
                                     excludemin=excludemin))

    def client_keys(self, client_id, after=None):
        """The (state, url) pairs of a client's URLs in trouble, by state
        (most serious first) then URL, after the pair `after` (lazy)."""
        urls = self._by_client.get(client_id)
        if urls is None:
            return iter(())
        if after is None:
            return _pairs(urls.keys())
        return _pairs(urls.keys(min=_key(*after), excludemin=True))

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


def state_changed(event):
    index = _index()
    if index is not None:
        url = event.object
        index.remove(url.url, event.old_state, url.clients)
        index.add(url.url, url.state, url.clients)


def registered_many(events):
    index = _index()
    if index is not None:
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
