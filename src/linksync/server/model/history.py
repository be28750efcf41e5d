"""What happened to each URL: its recent check results and state changes.

Bounded per URL: a URL's history is one small persistent object
(:class:`URLHistory`) holding the last :data:`RESULTS` check results as a
tuple ``(time, state, reason, latency)`` and the state changes as a tuple
``(time, state, reason)``, kept for the configured time (``--history-days``,
:data:`KEEP_DAYS` by default) and pruned by ``linksync pack``
(:meth:`History.prune`). The histories live in one BTree per shard of the
hosts, keyed by the normalised URL, so two checker workers never write the
same object when they store results (each owns its shards' hosts).

A result is recorded in the transaction that stores it on the URL. A URL
of an older database, or one not checked yet, has an empty history. The
first result of a URL is kept in its shard's tree as a plain tuple, and
its URLHistory made at the second: a batch of first checks (a client's new
URLs) then stores half the objects (bench/checker.py: 10,800 objects per
batch of 5,000 results, 5,000 of them URLHistory).

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
from linksync.server.model import partition

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


def _history(value):
    """The URLHistory a value of the trees stands for: itself, or, for the
    tuple of a URL checked once (the arguments of URLHistory.add), a new
    URLHistory of that one result (not stored)."""
    if type(value) is tuple:
        history = URLHistory()
        history.add(*value)
        return history
    return value


@implementer(interfaces.IHistory)
class History(persistent.Persistent):
    """The histories of all URLs, by normalised URL, in one BTree per
    shard of the hosts (linksync.server.model.partition).

    Checker worker I/N stores the results of its shards' hosts only, so
    it writes only its shards' trees: a URL's first result inserts its
    history, and two workers inserting into one tree at once conflicted
    whenever a bucket split (every batch of first checks splits some).

    A History stored before the shards keeps its one tree ``_urls``
    until :meth:`move_to_shards` has emptied it (generation 2 of
    linksync.server.model.generations); until then it is read too.
    """

    #: The one tree of a History stored before the shards, which had no
    #: ``_shards`` (made by its first change).
    _urls = None
    _shards = None

    def __init__(self, shards=partition.SHARDS):
        self._shards = partition.sharded(OOBTree, shards)

    def _tree(self, url):
        """The tree of the shard of `url` (made in an older History)."""
        shards = self._shards
        if shards is None:
            shards = self._shards = partition.sharded(OOBTree)
        return partition.tree_of(shards, url)

    def _find(self, url):
        found = None
        if self._shards is not None:
            found = self._tree(url).get(url)
        if found is None and self._urls is not None:
            found = self._urls.get(url)
        return found

    def get(self, url):
        """The history of `url` (an empty one when none is stored)."""
        found = self._find(url)
        return _history(found) if found is not None else URLHistory()

    def record(self, url, state, reason, now, latency=None, published=None):
        tree = self._tree(url)
        history = tree.get(url)
        if history is None and self._urls is not None and url in self._urls:
            history = tree[url] = self._urls.pop(url)
        if history is None:
            # The first result: a tuple in the tree, no object of its own.
            tree[url] = (now, state, reason, latency, published)
            return
        if type(history) is tuple:
            history = tree[url] = _history(history)
        history.add(now, state, reason, latency, published)

    def rename(self, old, new):
        """The history of the URL key `old` becomes that of `new`, unless
        `new` has one (the URL checked under that key keeps its own)."""
        history = self._find(old)
        if history is None:
            return
        for tree in (self._tree(old), self._urls):
            if tree is not None and old in tree:
                del tree[old]
        if self._find(new) is None:
            self._tree(new)[new] = history

    def move_to_shards(self, batch=10_000):
        """Move up to `batch` histories of the one tree of an older History
        into their shards; returns how many moved (0: nothing left, and
        the old tree is gone)."""
        old = self._urls
        if old is None:
            return 0
        count = 0
        while count < batch and old:
            key = old.minKey()
            history = old.pop(key)
            tree = self._tree(key)
            if tree.get(key) is None:
                tree[key] = history
            count += 1
        if not old:
            del self._urls      # back to the class default, None
        return count

    def prune(self, before, after=None, batch=10_000):
        """Prune up to `batch` histories from the position `after` (None:
        the start); returns the position to go on after (None when
        done)."""
        if self._urls is not None:
            # An older History: its tree moves first, a batch a call.
            self.move_to_shards(batch)
            return (0, None)
        shard, key = after if after is not None else (0, None)
        count = 0
        shards = self._shards or ()
        while shard < len(shards):
            tree = shards[shard]
            for key in list(tree.keys(key, excludemin=key is not None)
                            )[:batch - count]:
                count += 1
                history = tree[key]
                if type(history) is not tuple:
                    if history.prune(before):
                        del tree[key]
                elif history[0] < before:
                    # A URL checked once, before `before`: its state then
                    # is kept, in a URLHistory of its own.
                    history = tree[key] = _history(history)
                    history.prune(before)
                if count == batch:
                    return (shard, key)
            shard, key = shard + 1, None
        return None

    def __len__(self):
        return sum(len(tree) for tree in self._shards or ()) + \
            (len(self._urls) if self._urls is not None else 0)
