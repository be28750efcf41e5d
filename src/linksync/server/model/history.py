"""What happened to each URL: its recent check results and state changes.

Bounded per URL: a URL's history is one small persistent object
(:class:`URLHistory`) holding the last :data:`RESULTS` check results as a
tuple ``(time, state, reason, latency)`` and the state changes as a tuple
``(time, state, reason)``, kept for the configured time (``--history-days``,
:data:`KEEP_DAYS` by default) and pruned by ``linksync pack``
(:meth:`History.prune`). The histories live in one BTree keyed by the
normalised URL, so two checker workers storing results of different URLs
write different objects: no common hot spot but the BTree buckets, which
resolve concurrent inserts of different keys themselves.

A result is recorded in the transaction that stores it on the URL. A URL
of an older database, or one not checked yet, has an empty history.

>>> h = URLHistory()
>>> h.add(100, 'ok', '', 0.5); h.add(200, 'unavailable', 'HTTP 404', 0.1)
>>> h.add(300, 'unavailable', 'HTTP 404', 0.1)
>>> [c[:2] for c in h.changes]
[(100, 'ok'), (200, 'unavailable')]
>>> len(h.results), h.uptime(300, 200)
(3, 0.5)
>>> h.uptime(400, 100)  # only unavailable in the last 100 s
0.0
>>> h.uptime(50, 10) is None  # nothing known then
True
"""

import persistent
from BTrees.OOBTree import OOBTree
from zope.interface import implementer

from linksync import states
from linksync.server import interfaces

#: Check results kept per URL.
RESULTS = 20
#: Days of state changes kept unless configured.
KEEP_DAYS = 90
#: The windows uptime is given for: (label, seconds).
WINDOWS = (('24 h', 86400), ('7 d', 7 * 86400), ('30 d', 30 * 86400))


class URLHistory(persistent.Persistent):
    """One URL's recent results and state changes (tuples: cheap to
    store, nothing to resolve but whole values)."""

    results = ()
    changes = ()

    def add(self, now, state, reason, latency=None, published=None):
        """Add a check result; the state changes follow the `published`
        state (the result's own by default: a failure waiting for its
        confirmation is a result, not yet a change)."""
        self.results = (self.results + ((now, state, reason, latency),))[
            -RESULTS:]
        if published is None:
            published = state
        if not self.changes or self.changes[-1][1] != published:
            self.changes = self.changes + ((now, published, reason),)

    def state_at(self, when):
        """The state the URL was in at `when` (None when not known)."""
        found = None
        for time, state, _ in self.changes:
            if time > when:
                break
            found = state
        return found

    def spans(self, start, end):
        """(from, to, state) spans covering [start, end] as far as
        known."""
        spans = []
        changes = self.changes
        for i, (time, state, _) in enumerate(changes):
            until = changes[i + 1][0] if i + 1 < len(changes) else end
            lo, hi = max(time, start), min(until, end)
            if hi > lo:
                spans.append((lo, hi, state))
        return spans

    def uptime(self, now, window):
        """The share of the known time of the last `window` seconds spent
        ``ok`` (None when nothing is known of that time)."""
        spans = self.spans(now - window, now)
        known = sum(hi - lo for lo, hi, _ in spans)
        if not known:
            return None
        return sum(hi - lo for lo, hi, s in spans if s == states.OK) / known

    def prune(self, before):
        """Forget what happened before `before`, but the state the URL was
        in then; True when nothing is left."""
        results = tuple(r for r in self.results if r[0] >= before)
        if results != self.results:
            self.results = results
        changes = self.changes
        keep = [i for i, c in enumerate(changes) if c[0] >= before]
        first = keep[0] if keep else len(changes)
        if first > 1 or (first == 1 and not keep):
            # The change before the cut-off says which state held then.
            self.changes = changes[max(first - 1, 0):]
        return not self.results and not self.changes


@implementer(interfaces.IHistory)
class History(persistent.Persistent):
    """The histories of all URLs, by normalised URL."""

    def __init__(self):
        self._urls = OOBTree()

    def get(self, url):
        """The history of `url` (an empty one when none is stored)."""
        found = self._urls.get(url)
        return found if found is not None else URLHistory()

    def record(self, url, state, reason, now, latency=None, published=None):
        history = self._urls.get(url)
        if history is None:
            history = self._urls[url] = URLHistory()
        history.add(now, state, reason, latency, published)

    def rename(self, old, new):
        """The history of the URL key `old` becomes that of `new`, unless
        `new` has one (the URL checked under that key keeps its own)."""
        history = self._urls.get(old)
        if history is None:
            return
        del self._urls[old]
        if self._urls.get(new) is None:
            self._urls[new] = history

    def prune(self, before, after=None, batch=10_000):
        """Prune up to `batch` histories from the key after `after`; returns
        the key to go on after (None when done)."""
        last = None
        count = 0
        for key in list(self._urls.keys(after, excludemin=after is not None)
                        )[:batch]:
            last = key
            count += 1
            if self._urls[key].prune(before):
                del self._urls[key]
        return last if count == batch else None

    def __len__(self):
        return len(self._urls)
