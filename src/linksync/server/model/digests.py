"""What each client's contact hears in the daily digest e-mail.

With ``--digest-hour`` set, every published state change of a client's URL
is noted for the client (a subscriber of the URL state events, in the
transaction of the change), bounded: at most :data:`DIGEST_LIMIT` changes
per client between two digests, then only a count of the rest. Once a day
linksync.server.reports mails each client that has changes a summary of
what broke and what recovered, and forgets what it sent; a failed mail
keeps them for the next day. A client whose contact unsubscribed (a signed
link in each digest) gets none and has nothing noted.

>>> changes = [(1, 'http://a/', 'ok', 'unavailable', '404'),
...            (2, 'http://b/', 'unavailable', 'ok', '200 OK'),
...            (3, 'http://c/', 'ok', 'unavailable', 'timeout'),
...            (4, 'http://c/', 'unavailable', 'ok', '200 OK')]
>>> s = summarize(changes)
>>> [c.url for c in s.broke], [c.url for c in s.recovered], \\
...     [c.url for c in s.flapped]
(['http://a/'], ['http://b/'], ['http://c/'])
"""

import collections

import persistent
from BTrees.OOBTree import OOBTree
from zope.interface import implementer

from linksync import states
from linksync.server import interfaces
from linksync.server.model.events import handles_many
from linksync.server.model.problems import PROBLEM_STATES

#: Changes noted per client between two digests, at most.
DIGEST_LIMIT = 200


class ClientDigest(persistent.Persistent):
    """A client's changes since its last digest: tuples ``(time, url,
    old state, new state, reason)``, and how many more were not kept."""

    changes = ()
    dropped = 0

    def add(self, change):
        if len(self.changes) >= DIGEST_LIMIT:
            self.dropped += 1
        else:
            self.changes = self.changes + (change,)


@implementer(interfaces.IDigests)
class Digests(persistent.Persistent):
    """The pending digests, the unsubscribed clients, and whether digests
    are on (``--digest-hour``; set by the server when it starts)."""

    enabled = False
    #: The day (days since the epoch) of the last round of digests.
    last_day = None

    def __init__(self):
        self._pending = OOBTree()
        self._unsubscribed = OOBTree()

    def record(self, client_id, url, old_state, new_state, reason, now):
        if not self.enabled or client_id in self._unsubscribed:
            return
        digest = self._pending.get(client_id)
        if digest is None:
            digest = self._pending[client_id] = ClientDigest()
        digest.add((now, url, old_state, new_state, reason or ''))

    def pending(self, client_id):
        return self._pending.get(client_id)

    def pending_ids(self, after=None, limit=100):
        return list(self._pending.keys(
            after, excludemin=after is not None))[:limit]

    def sent(self, client_id, count, dropped):
        """The first `count` changes (and `dropped` uncounted ones) of the
        client's digest were mailed: forget them."""
        digest = self._pending.get(client_id)
        if digest is None:
            return
        digest.changes = digest.changes[count:]
        digest.dropped = max(digest.dropped - dropped, 0)
        if not digest.changes and not digest.dropped:
            del self._pending[client_id]

    def forget(self, client_id):
        self._pending.pop(client_id, None)

    def subscribed(self, client_id):
        return client_id not in self._unsubscribed

    def unsubscribe(self, client_id, now):
        self._unsubscribed[client_id] = now
        self.forget(client_id)

    def subscribe(self, client_id):
        self._unsubscribed.pop(client_id, None)


#: One URL's changes in a digest: its state before the first, after the
#: last, the last reason and time, and the number of changes.
URLChange = collections.namedtuple(
    'URLChange', 'url before after reason time count')

Summary = collections.namedtuple('Summary', 'broke recovered flapped other')


def summarize(changes):
    """The changes grouped by URL: those now broken that were not, those
    fine again, those that broke and recovered meanwhile, and the rest
    (from one problem to another)."""
    by_url = {}
    for time, url, old, new, reason in changes:
        found = by_url.get(url)
        if found is None:
            by_url[url] = URLChange(url, old, new, reason, time, 1)
        else:
            by_url[url] = found._replace(after=new, reason=reason,
                                         time=time, count=found.count + 1)
    summary = Summary([], [], [], [])
    for change in sorted(by_url.values(), key=lambda c: (c.time, c.url)):
        bad_before = change.before in PROBLEM_STATES
        bad_after = change.after in PROBLEM_STATES
        if bad_after and not bad_before:
            summary.broke.append(change)
        elif bad_before and not bad_after:
            summary.recovered.append(change)
        elif not bad_after and change.count > 1:
            summary.flapped.append(change)
        elif bad_after:
            summary.other.append(change)
    return summary


# -- subscribers (registered in linksync.server.configure) -------------------

def state_changed_many(events):
    import zope.component
    digests = zope.component.queryUtility(interfaces.IDigests)
    if digests is None or not digests.enabled:
        return
    for event in events:
        if getattr(event, 'renamed_from', None) is not None:
            continue    # the URL moved to a new key; its state is no news
        url = event.object
        new = url.state or states.UNKNOWN
        if event.old_state in (None, states.UNKNOWN) and \
                new not in PROBLEM_STATES:
            continue    # a first check finding the link fine is no news
        for client_id in url.clients:
            digests.record(client_id, url.url, event.old_state, new,
                           url.reason, event.now)


@handles_many(state_changed_many)
def state_changed(event):
    state_changed_many([event])


def client_removed(event):
    import zope.component
    digests = zope.component.queryUtility(interfaces.IDigests)
    if digests is not None:
        digests.forget(event.object.id)
