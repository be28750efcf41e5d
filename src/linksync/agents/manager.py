"""The SyncManager and its agents: consumers of the change track.

The :class:`SyncManager` holds the change track (a
linksync.track.SetMultiPointerTrack of ``granularity``-second buckets) and
the agents; each agent owns a pointer into the track. A
:class:`PushSyncAgent` run reads the records after its pointer up to the
last *closed* bucket, reduces them per object (:func:`reduce_records`),
turns them into what its consumer understands, hands them to its
:class:`RecordUploader` in batches, and moves its pointer only once the
upload succeeded: delivery is at least once, and what a consumer accepted is
never sent again.

Closing buckets
---------------

An agent never reads the open bucket: a change committed a little late could
still land there. :meth:`SyncManager.close` makes that exact: it raises a
watermark to ``bucket(now) - 1`` and closes the buckets up to it: it writes
each of them (linksync.track.records), and a writer adding a record writes
its bucket too, so a writer that commits after the close of its bucket
fails with a (retried) conflict and then puts its record in a bucket after
the watermark. A writer that has to make its bucket (the closes make them
a minute ahead) reads the watermark with ZODB's ``readCurrent`` instead.
Writers adding to open buckets do not conflict with a close: with several
checker workers, each close would otherwise fail the commits under way in
all of them. Agents read up to the watermark, in a
transaction after the one that raised it; so a record is either in a bucket
the agent has not read yet or was committed before the agent read. Pruning
(buckets at or behind every pointer, and empty closed buckets) can never
remove a bucket a writer still adds to.

>>> from linksync.agents.agent import SyncAgent
>>> from linksync.track.records import ActionWrapper
>>> manager = SyncManager(granularity=10)
>>> manager.register_agent(SyncAgent('a', 'A'), now=100)
>>> manager.add(104, ActionWrapper('http://x.example/', 'state_changed', 104))
True
>>> manager.close(125)
11
>>> end, records = manager.query('a')
>>> end, [r.timestamp for r in records]
(11, [104])
"""

import itertools
import logging

import persistent
import zope.component
from BTrees.OOBTree import OOBTree
from zope.interface import implementer

from linksync.agents import interfaces
from linksync.track.mpt import SetMultiPointerTrack
from linksync.agents.errors import AgentError, UnknownAgent

log = logging.getLogger(__name__)

#: Seconds per bucket of the track of a linksync server.
DEFAULT_GRANULARITY = 10

#: Seconds of buckets each close makes ahead of the open one: writers in
#: other processes then find their bucket made until the next close (the
#: server's agents close every --notify-interval, 15 s by default), and
#: two writers making one at once would conflict on the tree of buckets.
PREPARE_AHEAD = 60


# -- the manager ----------------------------------------------------------------

class Watermark(persistent.Persistent):
    """The last closed bucket (see the module docstring)."""

    def __init__(self, value=-1):
        self.value = value

    def read_current(self):
        """Make the current transaction fail if the watermark moves before
        it commits."""
        if self._p_jar is not None:
            self._p_jar.readCurrent(self)

    def _p_resolveConflict(self, old, committed, new):
        result = dict(committed)
        result['value'] = max(committed.get('value', -1),
                              new.get('value', -1))
        return result


def _no_exclusion(obj):
    return False


@implementer(interfaces.ISyncManager)
class SyncManager(persistent.Persistent):
    """The change track, its agents and their pointers.

    `granularity` is the number of seconds per bucket.
    """

    def __init__(self, granularity=DEFAULT_GRANULARITY):
        if isinstance(granularity, bool) or not isinstance(granularity, int) \
                or granularity < 1:
            raise ValueError('the granularity is a whole number of seconds '
                             '(at least 1), not %r' % (granularity,))
        self.granularity = granularity
        self._track = SetMultiPointerTrack()
        self._agents = OOBTree()
        self._closed = Watermark()
        self._policy = _no_exclusion

    def __repr__(self):
        return '<SyncManager granularity=%d>' % self.granularity

    # -- time -----------------------------------------------------------------

    def bucket(self, timestamp):
        """The bucket (position) of a time in seconds."""
        return int(timestamp // self.granularity)

    @property
    def closed(self):
        """The last closed bucket: agents read up to it, writers add after
        it."""
        return self._closed.value

    def close(self, timestamp):
        """Close the buckets before the one of `timestamp`; returns the last
        closed bucket.

        Also creates the open bucket and those of the next
        :data:`PREPARE_AHEAD` seconds (so that writers only touch bucket
        containers) and prunes what can go.
        """
        closed = self.bucket(timestamp) - 1
        before = self._closed.value
        if closed > before:
            self._closed.value = closed
            for bucket in self._track.values(before, closed):
                bucket.close()
            for position in range(
                    closed + 1, self.bucket(timestamp + PREPARE_AHEAD) + 2):
                self._track.prepare_entry(position)
            # Buckets closed before were looked at when they were closed.
            self._track.prune_empty(closed, after=before)
            self._track.prune(upto=closed)
        return self._closed.value

    # -- records ----------------------------------------------------------------

    @property
    def track(self):
        return self._track

    def set_policy(self, policy):
        """Set the exclusion policy: policy(obj) -> True to leave obj out of
        the track. It must be a module-level function (it is stored)."""
        self._policy = policy or _no_exclusion

    def excluded(self, obj):
        """True when the policy keeps `obj` out of the track."""
        return bool(self._policy(obj))

    def add(self, timestamp, action):
        """Record `action` (an ActionWrapper) at `timestamp` (seconds).

        Returns False when the policy excludes its object or the record is
        there already. The record goes into the bucket of `timestamp`, or
        the open bucket when that one is closed already.
        """
        if self.excluded(action.obj):
            return False
        return self._track.add(self._position(timestamp), action)

    def _position(self, timestamp):
        """The bucket a record of `timestamp` goes into: its own, or the
        open one when that is closed. A close committed meanwhile makes
        the writer's commit fail (a conflict, retried): it closes the
        buckets there are by writing them (linksync.track.records), and
        a writer that makes its bucket reads the watermark with ZODB's
        readCurrent."""
        position = max(self.bucket(timestamp), self._closed.value + 1)
        if position not in self._track:
            self._closed.read_current()
        return position

    def add_family(self, timestamp, actions, prefix, context, items):
        """Record, at `timestamp`, the records keyed ``prefix + (last,)``
        of the (last, object) pairs `items`, with `actions` and `context`
        (see linksync.track.RecordGroups): add() for a batch of records
        that differ only in their object. Returns how many were new."""
        if self._policy is not _no_exclusion:
            items = [(last, obj) for last, obj in items
                     if not self.excluded(obj)]
        if not items:
            return 0
        return self._track.add_family(self._position(timestamp), timestamp,
                                      prefix, actions, context, items)

    def open_timestamp(self):
        """The start, in seconds, of the oldest bucket still open."""
        return (self._closed.value + 1) * self.granularity

    def _readable_till(self, till):
        """`till`, or the last closed bucket when it is None or later."""
        closed = self._closed.value
        return closed if till is None else min(till, closed)

    def window(self, from_pos, till=None, limit=None, kinds=None):
        """(end, records) for the buckets in ]from_pos, till], oldest first.

        `till` is at most the last closed bucket (the default). With
        `limit`, whole buckets are read until at least `limit` records are
        gathered; `end` is the last bucket the records cover (`till` when
        the window was read to its end). With `kinds` (a set), only the
        records whose key starts with one of them are read.
        """
        till = self._readable_till(till)
        if from_pos is not None and till <= from_pos:
            return from_pos, []
        records = []
        for position, bucket in self._track.items(from_pos, till):
            records.extend(bucket.records(kinds))
            if limit is not None and len(records) >= limit and \
                    position < till:
                return position, records
        return till, records

    def window_part(self, from_pos, till=None, limit=10_000, kinds=None,
                    skip=0):
        """Like window(), but never more than `limit` records at once.

        Returns (end, records, skip). A pointer only moves from bucket to
        bucket, and one bucket may hold any number of records (a million
        URLs registered in one call are one bucket). When the records of
        the first bucket of ]from_pos, till] after the first `skip` of
        them are more than `limit`, the next `limit` are returned, `end`
        is that bucket and `skip` how many of its records were read so
        far: pass it back (with the same `from_pos`) to read on. Otherwise
        the rest of that bucket and as many whole buckets after it as keep
        the records under `limit` are returned, with `skip` 0.
        """
        till = self._readable_till(till)
        if from_pos is not None and till <= from_pos:
            return from_pos, [], 0
        records = []
        end = from_pos
        for position, bucket in self._track.items(from_pos, till):
            room = limit - len(records)
            part = list(itertools.islice(bucket.records(kinds), skip,
                                         skip + room + 1))
            if len(part) > room:
                if records:
                    # The bucket does not fit: it begins the next part.
                    return end, records, 0
                return position, part[:room], skip + room
            records.extend(part)
            skip = 0
            end = position
            if len(records) >= limit and position < till:
                return position, records, 0
        return till, records, 0

    def query(self, agent_id, till=None, limit=None):
        """(end, records) of what agent `agent_id` has not consumed, up to
        `till` (see window())."""
        return self.window(self.pointer(agent_id), till, limit)

    def pending(self, agent_id, till=None):
        """The number of records agent `agent_id` has not consumed."""
        till = self._closed.value if till is None else till
        return self._track.count(self.pointer(agent_id), till)

    def prune(self):
        """Remove the buckets every agent has consumed; returns how many.
        (Empty buckets go when they are closed.)"""
        return self._track.prune(upto=self._closed.value)

    # -- agents -----------------------------------------------------------------

    def register_agent(self, agent, now=None, start=None):
        """Add `agent`; its pointer starts at `start`, by default at the
        last closed bucket, after closing the buckets before `now`: the
        agent reads from the open bucket on, and every record committed
        after it exists."""
        if agent.id in self._agents:
            raise AgentError('an agent %r exists already' % (agent.id,))
        if start is None:
            if now is not None:
                self.close(now)
            start = self._closed.value
        self._agents[agent.id] = agent
        agent.__parent__ = self
        if self._track.has_pointer(agent.id):
            self._track.move_pointer(agent.id, start)
        else:
            self._track.add_pointer(agent.id, start)

    def remove_agent(self, agent_id):
        """Remove an agent and its pointer (UnknownAgent when missing)."""
        if agent_id not in self._agents:
            raise UnknownAgent(agent_id)
        del self._agents[agent_id]
        self._track.remove_pointer(agent_id)
        self.prune()

    def get_agent(self, agent_id):
        try:
            return self._agents[agent_id]
        except (KeyError, TypeError):
            raise UnknownAgent(agent_id) from None

    def __contains__(self, agent_id):
        return agent_id in self._agents

    def agents(self):
        """The agents, in id order."""
        return list(self._agents.values())

    def agent_ids(self, after=None):
        """The agents' ids in order, after `after` (a lazy BTree range:
        for listing them a page at a time)."""
        if after is None:
            return self._agents.keys()
        return self._agents.keys(min=after, excludemin=True)

    def lag(self, position, now):
        """Seconds of changes behind a pointer at `position` at time `now`:
        from the end of its bucket to the start of the open bucket (0 for
        a pointer that has read all it could)."""
        return max(self.bucket(now) - 1 - position, 0) * self.granularity

    def lags(self, now):
        """{agent id: lag in seconds} of every agent (reads the pointers
        only, not the agents)."""
        return {pid: self.lag(position, now)
                for pid, position in self._track.pointers()
                if pid in self._agents}

    def pointer(self, agent_id):
        if agent_id not in self._agents:
            raise UnknownAgent(agent_id)
        return self._track.pointer_position(agent_id)

    def advance(self, agent_id, position):
        """Move an agent's pointer forward to `position` (never back)."""
        if position > self.pointer(agent_id):
            self._track.move_pointer(agent_id, position)

    def rewind(self, agent_id, position):
        """Move an agent's pointer to `position`, either way."""
        self.pointer(agent_id)
        self._track.move_pointer(agent_id, position)

    def reset(self, agents_only=False, track_only=False):
        """Erase the agents (and their pointers), the records, or both."""
        if agents_only and track_only:
            raise ValueError('agents_only and track_only exclude each other')
        if not track_only:
            self._agents.clear()
            self._track.clear_pointers()
        if not agents_only:
            self._track.clear()

    # -- the names of the seed -----------------------------------------------

    def getGranularity(self):
        return self.granularity

    def getTrack(self):
        return self._track

    getAllAgents = agents
    registerNewAgent = register_agent
    removeAgent = remove_agent
    objectExcluded = excluded


def get_manager():
    """The SyncManager of the current site."""
    return zope.component.getUtility(interfaces.ISyncManager)
