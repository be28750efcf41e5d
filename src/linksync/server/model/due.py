"""The schedule: when each URL is due, as a persistent index by due time.

:class:`Schedule` is a persistent part of the application root (registered
as the ISchedule utility). It holds

* ``_trees``: the (due, url) pairs of the URLs that have a client, in due
  order, one tree set per shard of the hosts (linksync.server.model.partition): the
  scheduler reads the due ones from their starts, so finding work costs in
  proportion to the due URLs, not to all URLs (the due time is also kept
  on the URL, as ``next_check``, to move it); a checker worker
  (``--worker I/N``) reads only the trees of its shards, and workers never
  write to each other's trees;
* ``_orphans`` / ``_orphaned``: the URLs no client has, by the time they
  lost their last client (removed after a grace period);

The temporary failures in a row of a URL (for the back-off) and the
failing state of an ok URL awaiting its confirmation are kept on the URL
(``failures``, ``pending``), written with its result. (Earlier versions
kept them here, in trees ``_failures`` and ``_pending`` that every checker
worker wrote to: two workers storing results conflicted on them whenever
a bucket split. linksync.server.model.generations moves them.)

The index follows the URL events (subscribers below, registered in
linksync.server.configure), inside the transaction of the change: a registered URL
is due at once; a URL whose last client left is taken out of the queue and
becomes an orphan; a removed URL is forgotten. (A URL added to the provider
but never registered, which linksync.server.model.registration never does, is not
indexed.)

>>> t = Timing(recheck=86400, temporary=3600, permanent=86400, confirm=600)
>>> t.next_check('ok', 0, now=0)
86400
>>> [t.next_check('temporary unavailable', n, now=0) for n in (1, 2, 3)]
[3600, 7200, 14400]
>>> t.next_check('temporary unavailable', 50, now=0)
86400
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


class Timing:
    """The intervals of the schedule (from the server's settings)."""

    def __init__(self, recheck=86400.0, temporary=3600.0, permanent=86400.0,
                 confirm=600.0):
        self.recheck = recheck
        self.temporary = temporary
        self.permanent = permanent
        self.confirm = confirm

    @classmethod
    def from_settings(cls, settings):
        return cls(settings.recheck_interval, settings.temporary_interval,
                   settings.permanent_interval, settings.confirm_delay)

    def next_check(self, state, failures, now):
        """When a URL in `state` after `failures` temporary failures in a
        row is due again."""
        if state == states.OK:
            return now + self.recheck
        if state == states.TEMPORARY:
            step = self.temporary * 2 ** min(max(failures - 1, 0), 40)
            return now + min(step, max(self.recheck, self.temporary))
        return now + self.permanent


class DueTree(OOTreeSet):
    """The due index of one shard: an OOTreeSet whose buckets hold up to
    120 keys instead of 30.

    Every batch of results takes keys out where they were due and adds
    them where they are due next, both clustered by time: a bucket holds
    many of the keys a batch changes, and fewer, larger buckets are fewer
    objects to store per batch (a shard of up to 120 keys is one object).
    """

    max_leaf_size = 120


@implementer(interfaces.ISchedule)
class Schedule(persistent.Persistent):
    """The persistent index of due times (see the module docstring)."""

    #: False until the URLs that existed before the schedule are indexed.
    complete = False
    #: The last URL indexed by that catch-up (resumes there).
    catch_up_after = None
    #: The due index of each shard; None in a schedule stored before the
    #: shards, whose one index ``_queue`` is split at its first change.
    _trees = None

    def __init__(self, shards=partition.SHARDS):
        self._trees = partition.sharded(DueTree, shards)
        self._count = Length()
        self._orphans = OOTreeSet()
        self._orphaned = OOBTree()
        self._orphan_count = Length()

    def __len__(self):
        """Number of scheduled URLs."""
        return self._count()

    # -- the due queue ------------------------------------------------------------
    # The due time of a URL is kept on the URL itself (``next_check``): the
    # URL object is stored anyway when it is registered or checked, and one
    # index less is one set of BTree buckets less to write per change.

    @property
    def shard_count(self):
        """Number of shards of the due index."""
        return len(self._trees) if self._trees is not None else \
            partition.SHARDS  # what it will have once split

    def _tree(self, key):
        """The due index of the shard of the URL `key`."""
        trees = self._trees
        if trees is None:
            trees = self._split()
        return partition.tree_of(trees, key)

    def _split(self):
        """Split the one due index of an older schedule into shards (in
        the transaction of its first change)."""
        trees = partition.sharded(DueTree)
        for key in self._queue.keys():
            partition.tree_of(trees, key[1]).add(key)
        self._trees = trees
        del self._queue
        return trees

    def add(self, url, due):
        return self.add_many([(url, due)]) == 1

    def add_many(self, pairs):
        """add() for each (url, due) of `pairs`; returns how many were
        added. (URLs of one host follow each other in a batch: their shard
        is found once.)"""
        trees = self._trees
        if trees is None:
            trees = self._split()
        shards = len(trees)
        added = 0
        authority = tree = None
        for url, due in pairs:
            if due_of(url) is not None:
                continue
            key = url.url
            # Keys with the same scheme://authority/ have the same host.
            end = key.find('/', key.find('//') + 2)
            start = key[:end] if end >= 0 else key
            if start != authority or end < 0:
                authority = start
                tree = trees[partition.shard_of(key, shards)]
            url.next_check = due
            tree.add((due, key))
            added += 1
        if added:
            self._count.change(added)
        return added

    def reschedule(self, url, due):
        old = due_of(url)
        if old == due:
            return
        tree = self._tree(url.url)
        if old is not None:
            tree.remove((old, url.url))
        else:
            self._count.change(1)
        url.next_check = due
        tree.add((due, url.url))

    def unschedule(self, url):
        old = due_of(url)
        if old is not None:
            self._tree(url.url).remove((old, url.url))
            self._count.change(-1)
            url.next_check = None

    def due_at(self, url, default=None):
        due = due_of(url)
        return default if due is None else due

    def due_keys(self, now, after=None, worker=None):
        """The (due, url) keys due at `now`, after the key `after`, of the
        shards of `worker` (all: None), in due order: a :class:`DueWalk`,
        which can also skip the rest of a host's run of keys."""
        top = (now, '\U0010ffff')
        if after is not None and after > top:
            return DueWalk([], top)
        if self._trees is None:
            keep = None
            if worker is not None and not worker.alone:
                keep = worker.owns_url
            return DueWalk([self._queue], top, after, keep)
        trees = self._trees
        if worker is not None and not worker.alone:
            trees = [trees[s] for s in worker.shards(len(trees))]
        return DueWalk(trees, top, after)

    @staticmethod
    def _range(tree, top, after):
        if after is None:
            return tree.keys(max=top)
        return tree.keys(min=after, max=top, excludemin=True)

    def due_count(self, now):
        """Number of due URLs (walks them: for tests and reports)."""
        return sum(1 for _ in self.due_keys(now))

    # -- orphans ------------------------------------------------------------------

    def orphan(self, url, since):
        self.unschedule(url)
        key = url.url
        if url.pending is not None:
            url.set_schedule_fields(url.failures, None)
        if key not in self._orphaned:
            self._orphaned[key] = since
            self._orphans.add((since, key))
            self._orphan_count.change(1)

    def adopt(self, key):
        since = self._orphaned.pop(key, None)
        if since is not None:
            self._orphans.remove((since, key))
            self._orphan_count.change(-1)

    def orphans(self, before):
        return self._orphans.keys(max=(before, ''), excludemax=True)

    def discard(self, url):
        self.unschedule(url)
        key = url.url
        self.adopt(key)

    # -- results ------------------------------------------------------------------

    def record(self, url, state, reason, now, timing, changes=None):
        if state != states.OK and url.state == states.OK and \
                url.pending is None:
            # Confirmation before alarm: check again soon, publish then.
            url.set_schedule_fields(url.failures, state)
            self.reschedule(url, now + timing.confirm)
            return False
        failures = url.failures + 1 if state == states.TEMPORARY else 0
        url.set_schedule_fields(failures, None)
        changed = url.set_result(state, reason, now, changes)
        self.reschedule(url, timing.next_check(state, failures, now))
        return changed

    # -- catching up with URLs indexed before the schedule existed ---------------

    def catch_up(self, provider, now, batch=10_000):
        """Index the next `batch` URLs of `provider`; True when done."""
        if self.catch_up_after is None and \
                self._count() + self._orphan_count() >= len(provider):
            # Every URL is scheduled or an orphan already (the events
            # indexed them all): nothing to catch up with.
            self.complete = True
            return True
        count = 0
        last = None
        for key in provider.keys(self.catch_up_after,
                                 excludemin=self.catch_up_after is not None):
            last = key
            url = provider.get(key)
            if url.clients:
                self.add(url, now)
            elif key not in self._orphaned:
                self.orphan(url, url.orphaned_since or now)
            count += 1
            if count >= batch:
                break
        if count < batch:
            self.complete = True
            self.catch_up_after = None
            return True
        self.catch_up_after = last
        return False


class DueWalk:
    """The due keys of several shard trees, merged in due order.

    Each shard's keys come in due order, so a heap of the next key of each
    shard merges them (like ``heapq.merge``, but a run of keys of one shard
    costs no heap reordering). :meth:`skip_run` skips, in the shard of the
    key just returned, the keys due at the same time whose URL has the same
    ``scheme://authority/`` start: all of one host. The scheduler does so
    when that host has as much work queued as it may, rather than reading
    its thousands of due URLs one by one on every tick.
    """

    def __init__(self, trees, top, after=None, keep=None):
        self._trees = trees
        self._top = top
        self._keep = keep
        heap = []
        for n, tree in enumerate(trees):
            keys = iter(Schedule._range(tree, top, after))
            for key in keys:
                heap.append((key, n, keys))
                break
        heapq.heapify(heap)
        self._heap = heap
        #: (shard number, its keys) of the key last returned: it goes back
        #: into the heap on the next step (or a later start, after a skip).
        self._current = None

    def __iter__(self):
        return self

    def __next__(self):
        heap = self._heap
        keep = self._keep
        while True:
            current = self._current
            self._current = None
            entry = None
            if current is not None:
                n, keys = current
                for key in keys:
                    # The common case, a run of one shard: no reordering.
                    entry = heapq.heappushpop(heap, (key, n, keys))
                    break
            if entry is None:
                if not heap:
                    raise StopIteration
                entry = heapq.heappop(heap)
            key, n, keys = entry
            self._current = (n, keys)
            if keep is None or keep(key[1]):
                return key

    def skip_run(self, key):
        """Skip the keys after `key` (the key just returned) due at the
        same time with the same ``scheme://authority/`` start of URL."""
        if self._current is None:
            return
        due, url = key
        start = url.find('://')
        slash = url.find('/', start + 3) if start >= 0 else -1
        if slash < 0:
            return  # no authority to tell the run by
        # Keys from `key` up to this bound all start with the same
        # scheme://authority/, hence have the same host.
        bound = (due, url[:slash + 1] + '\U0010ffff')
        if bound > self._top:
            bound = self._top
        n = self._current[0]
        self._current = (n, iter(self._trees[n].keys(
            min=bound, max=self._top, excludemin=True)))


def due_of(url):
    """When the IURL `url` is due (None while it is not scheduled)."""
    return getattr(url, 'next_check', None)


# -- keeping the index up to date: event subscribers ---------------------------

def _schedule():
    return zope.component.queryUtility(interfaces.ISchedule)


def url_registered_many(events):
    schedule = _schedule()
    if schedule is None:
        return
    for event in events:
        schedule.adopt(event.object.url)
    schedule.add_many((event.object, event.now if event.now is not None
                       else 0) for event in events)


@handles_many(url_registered_many)
def url_registered(event):
    url_registered_many([event])


def url_unregistered(event):
    schedule = _schedule()
    url = event.object
    if schedule is not None and not url.clients:
        since = event.now if event.now is not None else \
            (url.orphaned_since or 0)
        schedule.orphan(url, since)


def url_removed(event):
    schedule = _schedule()
    if schedule is not None:
        schedule.discard(event.object)
