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
watermark to ``bucket(now) - 1``, and every writer adding a record reads the
watermark with ZODB's ``readCurrent``, so a writer that commits after the
watermark moved fails with a (retried) conflict and then puts its record in
a bucket after the watermark. Agents read up to the watermark, in a
transaction after the one that raised it; so a record is either in a bucket
the agent has not read yet or was committed before the agent read. Pruning
(buckets at or behind every pointer, and empty closed buckets) can never
remove a bucket a writer still adds to.

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

import collections
import itertools
import logging

import persistent
import zope.component
from BTrees.OOBTree import OOBTree
from twisted.internet import defer, task
from zope.interface import implementer

from linksync import interfaces
from linksync.track import ActionWrapper, SetMultiPointerTrack

log = logging.getLogger(__name__)

#: Seconds per bucket of the track of a linksync server.
DEFAULT_GRANULARITY = 10

# The reduced actions.
CREATED = 'created'
MODIFIED = 'modified'
DELETED = 'deleted'

#: Action flags that make an object exist for a consumer / stop existing.
CREATE_FLAGS = frozenset({'created', 'registered'})
DELETE_FLAGS = frozenset({'deleted', 'unregistered'})

__all__ = ['ActionWrapper', 'AgentError', 'Change', 'PushSyncAgent',
           'RecordUploader', 'SyncAgent', 'SyncManager', 'UnknownAgent',
           'UploadError', 'reduce_records']


class AgentError(Exception):
    """A bad agent operation (duplicate name, bad option); says why."""


class UnknownAgent(AgentError, LookupError):
    """No agent of that name."""

    def __init__(self, aid):
        super().__init__('no agent %r' % (aid,))
        self.aid = aid


class UploadError(Exception):
    """An upload failed after its retries; `uploaded` were accepted."""

    def __init__(self, message, uploaded=0):
        super().__init__(message)
        self.uploaded = uploaded


# -- reduction ------------------------------------------------------------------

Change = collections.namedtuple(
    'Change', 'action key obj context flags timestamp')
Change.__doc__ = """One object's reduced changes over a window.

`action` is created, modified or deleted; `flags` the union of the other
action flags; `timestamp` the latest record's.
"""


def _identity(record):
    # Records of one key may name different objects (a URL removed and a new
    # one added under the same address): those are reduced apart.
    oid = getattr(record.obj, '_p_oid', None)
    return (record.key, oid)


def reduce_records(records):
    """Reduce change records to one :class:`Change` per object.

    The rules (the result depends on the set of records only, never on
    their order): created and deleted both: nothing; deleted: deleted;
    created: created; anything else: modified. Changes come back ordered by
    (timestamp, key).

    >>> def r(flags, ts=1):
    ...     return ActionWrapper('http://x.example/', flags, ts)
    >>> [c.action for c in reduce_records([r('created'), r('deleted', 2)])]
    []
    >>> reduce_records([r('state_changed'), r('deleted', 2)])[0].action
    'deleted'
    >>> c = reduce_records([r('state_changed', 2), r('created')])[0]
    >>> c.action, c.flags, c.timestamp
    ('created', ('state_changed',), 2)
    """
    groups = {}
    for record in records:
        groups.setdefault(_identity(record), []).append(record)
    changes = []
    for group in groups.values():
        flags = set()
        for record in group:
            flags.update(record.actions)
        created = bool(flags & CREATE_FLAGS)
        deleted = bool(flags & DELETE_FLAGS)
        if created and deleted:
            continue
        action = DELETED if deleted else CREATED if created else MODIFIED
        latest = max(group)
        changes.append(Change(
            action, latest.key, latest.obj, latest.context,
            tuple(sorted(flags - CREATE_FLAGS - DELETE_FLAGS)),
            latest.timestamp))
    changes.sort(key=lambda c: (c.timestamp, c.key))
    return changes


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

        Also creates the open and the next bucket (so that writers only
        touch bucket containers) and prunes what can go.
        """
        closed = self.bucket(timestamp) - 1
        before = self._closed.value
        if closed > before:
            self._closed.value = closed
            self._track.prepare_entry(closed + 1)
            self._track.prepare_entry(closed + 2)
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
        self._closed.read_current()
        position = max(self.bucket(timestamp), self._closed.value + 1)
        return self._track.add(position, action)

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
        self._closed.read_current()
        position = max(self.bucket(timestamp), self._closed.value + 1)
        return self._track.add_family(position, timestamp, prefix, actions,
                                      context, items)

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


# -- agents ---------------------------------------------------------------------

#: kind name -> agent class (see register_kind).
KINDS = {}


def register_kind(cls):
    """Declare an agent class under its `kind` (a class decorator)."""
    KINDS[cls.kind] = cls
    return cls


@implementer(interfaces.ISyncAgent)
class SyncAgent(persistent.Persistent):
    """An agent: a consumer of the track with its own pointer.

    `update_time` is the number of seconds between runs (None: the server's
    --notify-interval).
    """

    kind = 'agent'
    #: Options `linksync agent add KIND NAME` takes: {name: (type, help)}.
    options = {}

    last_run = None
    last_success = None
    failures = 0
    last_error = ''
    delivered = 0

    def __init__(self, aid, name=None, description='', update_time=None,
                 access=None):
        if not isinstance(aid, str) or not aid.strip() or \
                any(ord(c) < 32 for c in aid):
            raise AgentError('an agent name is printable text, not %r'
                             % (aid,))
        if update_time is not None and not update_time > 0:
            raise AgentError('the update time of an agent is a positive '
                             'number of seconds, not %r' % (update_time,))
        self.id = aid
        self.name = name or aid
        self.description = description
        self.update_time = update_time
        self.access = access

    def __repr__(self):
        return '<%s %r>' % (type(self).__name__, self.id)

    def failure_count(self, app):
        """Failed runs in a row."""
        return self.failures

    def record_str(self, record):
        """A record as readable text."""
        return str(record)

    def describe(self):
        """Its settings, as text for `linksync agent list`."""
        return self.description


@implementer(interfaces.IPushSyncAgent)
class PushSyncAgent(SyncAgent):
    """An agent that sends what changed to its consumer.

    Subclasses give :meth:`_generate_records` (changes -> plain items, run
    inside a transaction) and :meth:`uploader` (what sends the items).
    """

    kind = 'push'
    batch_size = 1000

    def _generate_records(self, changes, app, till):
        """The items to upload for these reduced changes (plain data: they
        travel outside the transaction). `till` is the last bucket read."""
        raise NotImplementedError

    def export_page(self, app, after, now):
        """One page of a full export (every live object as created):
        (items, where the next page starts, or None after the last)."""
        raise NotImplementedError

    def uploader(self, app, context):
        """A RecordUploader sending this agent's items (built inside a
        transaction: it must copy what it needs)."""
        raise NotImplementedError

    def item_str(self, item):
        """An item as one line of text (`linksync agent simulate`)."""
        return repr(item)

    def run(self, current_ts, session, context):
        """Run this agent now; a Deferred firing with a RunResult.

        `session` is the linksync.database.Session to work through.
        """
        return AgentRunner(session, self.id, context).run(current_ts)

    def acknowledge(self, manager, position):
        """The consumer has what lies up to `position`: move the pointer."""
        manager.advance(self.id, position)

    # -- bookkeeping (inside a unit of work) -----------------------------------

    def succeeded(self, app, now, count):
        """A run delivered `count` items."""
        self.last_run = self.last_success = now
        if self.failures:
            self.failures = 0
        if self.last_error:
            self.last_error = ''
        self.delivered += count

    def failed(self, app, now, error, context):
        """A run failed; returns None or a follow-up f() -> Deferred to run
        after the commit (a mail to send, ...)."""
        self.last_run = now
        self.failures += 1
        self.last_error = error
        return None

    def enabled(self, app):
        """False while the agent must not run by itself."""
        return True


# -- uploading ------------------------------------------------------------------

class RecordUploader:
    """Uploads items in batches of `batch_size`, retrying a failed batch
    `retries` times after `backoff`, then twice as long, ... seconds (on
    `clock`, which has callLater).

    Subclasses give :meth:`_upload_batch`.
    """

    def __init__(self, agent=None, batch_size=1000, retries=2, backoff=1.0,
                 clock=None):
        if batch_size < 1:
            raise ValueError('batch_size must be at least 1')
        if clock is None:
            from twisted.internet import reactor as clock
        self.agent = agent
        self.batch_size = batch_size
        self.retries = retries
        self.backoff = backoff
        self.clock = clock

    def _upload_batch(self, batch):
        """Send one batch (a list); a value or a Deferred. Raise or fail on
        error."""
        raise NotImplementedError

    @defer.inlineCallbacks
    def iterate_over(self, items):
        """Upload all `items`; a Deferred firing with their number, or
        failing with UploadError (its `uploaded` says how many were
        accepted before)."""
        items = list(items)
        done = 0
        for start in range(0, len(items), self.batch_size):
            batch = items[start:start + self.batch_size]
            yield self._upload_with_retries(batch, done)
            done += len(batch)
        return done

    @defer.inlineCallbacks
    def _upload_with_retries(self, batch, done):
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                yield defer.maybeDeferred(self._upload_batch, batch)
                return
            except defer.CancelledError:
                # Stopping: no retry (it would wait on a clock that may
                # never move again).
                raise
            except Exception as e:
                error = e
                if attempt == self.retries:
                    break
                log.info('%s: upload failed (%s), retrying in %s s',
                         self.agent, e, delay)
                yield task.deferLater(self.clock, delay, lambda: None)
                delay *= 2
        raise UploadError(str(error) or type(error).__name__, done)

    iterateOver = iterate_over


# -- running --------------------------------------------------------------------

class RunContext:
    """What running agents needs from its surroundings.

    `clock` has seconds() and callLater(); `secret` is the server's
    management secret (it unseals callback passwords); `mailer` an IMailer.
    """

    def __init__(self, reactor, clock=None, secret=None, mailer=None,
                 retries=2, backoff=1.0, timeout=None):
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.secret = secret
        self.mailer = mailer
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self._http = None

    @property
    def http(self):
        """The HTTP agent (connection pool) shared by callback calls."""
        if self._http is None:
            from linksync.callback import make_agent
            self._http = make_agent(self.reactor)
        return self._http


RunResult = collections.namedtuple('RunResult', 'agent sent till error')
RunResult.__doc__ = """What a run did: items `sent`, the bucket the pointer
reached (`till`), and the `error` text when it failed ('' otherwise)."""


class AgentRunner:
    """Runs one push agent: close, read, upload, acknowledge; repeated in
    chunks of about `chunk_records` records so that a long outage is
    caught up in steps that each move the pointer."""

    chunk_records = 10_000

    def __init__(self, session, aid, context):
        self.session = session
        self.aid = aid
        self.context = context

    @defer.inlineCallbacks
    def run(self, current_ts):
        closed = self.session.run(lambda app: get_manager().close(current_ts))
        sent = 0
        till = None
        # A bucket bigger than a chunk is read and sent a part at a time
        # (SyncManager.window_part); the pointer moves past it once all
        # its parts were sent, and a failure in between sends it again
        # from its beginning at the next run.
        start = skip = unacknowledged = 0
        while True:
            plan = self.session.read(self._plan, closed, start, skip)
            if plan is None:
                break
            start, end, items, uploader, skip = plan
            try:
                if items:
                    yield uploader.iterate_over(items)
            except defer.CancelledError:
                raise                   # stopped (the server shuts down)
            except Exception as e:
                error = str(e) or type(e).__name__
                follow_up = self.session.run(self._failed, current_ts, error)
                yield run_follow_up(follow_up, self.aid)
                return RunResult(self.aid, sent, till, error)
            unacknowledged += len(items)
            if skip:
                continue
            self.session.run(self._acknowledge, start, end, current_ts,
                             unacknowledged)
            sent += unacknowledged
            unacknowledged = 0
            till = end
            if end >= closed:
                break
        return RunResult(self.aid, sent, till, '')

    @defer.inlineCallbacks
    def export(self, current_ts):
        """Send every live object as created, then move the pointer to the
        last closed bucket: what changed before is in the export, what
        changes after is read by the next runs."""
        closed = self.session.run(lambda app: get_manager().close(current_ts))
        sent = 0
        after = None
        while True:
            items, after, uploader = self.session.read(
                self._export_page, after, current_ts)
            try:
                if items:
                    yield uploader.iterate_over(items)
            except Exception as e:
                return RunResult(self.aid, sent, None, str(e) or
                                 type(e).__name__)
            sent += len(items)
            if after is None:
                break
        self.session.run(self._exported, closed)
        return RunResult(self.aid, sent, closed, '')

    def _export_page(self, app, after, now):
        agent = get_manager().get_agent(self.aid)
        items, after = agent.export_page(app, after, now)
        uploader = agent.uploader(app, self.context) if items else None
        return items, after, uploader

    def _exported(self, app, closed):
        manager = get_manager()
        if self.aid in manager:
            manager.advance(self.aid, closed)
            manager.prune()

    def _plan(self, app, closed, start, skip):
        """The next chunk: (start, end, items, uploader, skip), or None.
        With `skip`, the next part of the bucket after `start` (None when
        the pointer moved meanwhile)."""
        manager = get_manager()
        agent = manager.get_agent(self.aid)
        if not skip:
            start = manager.pointer(self.aid)
        elif manager.pointer(self.aid) != start:
            return None                 # moved meanwhile (a rewind)
        end, records, skip = manager.window_part(
            start, closed, self.chunk_records, skip=skip)
        if not records:
            return None
        items = agent._generate_records(reduce_records(records), app, end)
        uploader = agent.uploader(app, self.context) if items else None
        return start, end, items, uploader, skip

    def _acknowledge(self, app, start, end, now, count):
        manager = get_manager()
        if self.aid not in manager:
            return
        agent = manager.get_agent(self.aid)
        if manager.pointer(self.aid) != start:
            # Moved meanwhile (another run, a rewind): leave it.
            return
        agent.acknowledge(manager, end)
        agent.succeeded(app, now, count)
        manager.prune()

    def _failed(self, app, now, error):
        manager = get_manager()
        if self.aid not in manager:
            return None
        return manager.get_agent(self.aid).failed(app, now, error,
                                                  self.context)


@defer.inlineCallbacks
def run_follow_up(follow_up, aid):
    """Run what a failure asked for after its commit; errors are logged."""
    if follow_up is None:
        return
    try:
        yield defer.maybeDeferred(follow_up)
    except Exception as e:
        log.warning('%s: after the failure: %s', aid, e)
