"""The Synchronizer: every write in one store, made in all the others.

A Synchronizer observes its stores. When a datum is added or updated in
one of them, it puts a copy into each of the others (added, or updated
where it is already: matched by id, else by name); when one is removed, it
deletes the match in the others. It writes on its own behalf
(``origin=self``), so it does not hear its writes back; other
synchronizers sharing a store do, and carry them further. Writes that
change nothing are not made (see :mod:`linksync.stores.store`), so
synchronizers linked in a circle come to rest.

``sync()`` makes the stores agree to begin with: the data of all stores
are matched (by id, else by name), and each store gets what it lacks or
holds differently. For a datum that differs, the most recently updated
version wins (the first store wins a tie), except for the fields a store
owns (a linksync server owns the state of a link): its values win. sync()
adds and updates, it never removes: without history, a datum one store
lacks may be new or gone, and it is taken as new.

**Nothing is lost, nothing is hidden.** Each store has a queue of the
writes (:class:`Propagation`) to make in it, made in order, in batches
(``put_many``, one transaction where the store has them). A write that
fails stays at the head of its queue with the error and the number of
attempts (``pending``, ``failing``); the error is logged and given to
``on_error``. With a clock, the queue is tried again after ``retry_delay``
seconds, twice as long after each failure in a row (up to
``max_retry_delay``); without one, at the next write for that store or at
``retry()``. Later writes for that store wait behind it, so the store
receives every change in order once it is back. (Pending writes live in
memory: a process that ends with some pending leaves the stores to a later
``sync()``.)

The seed library was "best effort": errors in a propagation were caught and
dropped. Here they never are.
"""

import collections

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from linksync.stores.interfaces import ISynchronizer
from linksync.stores.chaining import chain, each, is_deferred
from linksync.stores.errors import StoreError
from linksync.stores.store import STAMPS

log = Logger()

#: Writes per batch.
BATCH_SIZE = 500


class Propagation:
    """A write to make in one store: put or delete a copy of a datum."""

    def __init__(self, action, source, target, data, names=(), fields=None,
                 create=True):
        self.action = action        # 'put' or 'delete'
        self.source = source
        self.target = target
        self.data = data
        self.names = tuple(names)   # other names to match it by
        self.fields = fields        # the fields to write (None: all)
        self.create = create        # False: update only, never add
        self.attempts = 0           # failed attempts so far
        self.error = None           # text of the last failure
        self.result = None          # 'added', 'updated', 'removed', None
        self.done = False

    def describe(self):
        return '%s %s %r in %s' % (self.action, type(self.data).__name__,
                                   self.data.name, self.target.name)

    def __repr__(self):
        failed = ' (failed %d time(s): %s)' % (self.attempts, self.error) \
            if self.attempts else ''
        return '<Propagation %s from %s%s>' % (self.describe(),
                                               self.source.name, failed)


class _Queue:
    """The writes waiting for one store."""

    def __init__(self, target):
        self.target = target
        self.ops = collections.deque()
        self.busy = False
        self.timer = None
        self.failures = 0           # failed attempts in a row
        self.stalled = False        # failed, no clock: wait for a write


class SyncReport:
    """What sync() did: the writes it made, and those still pending."""

    def __init__(self):
        self.ops = []

    @property
    def made(self):
        return [op for op in self.ops if op.done and op.result]

    @property
    def pending(self):
        return [op for op in self.ops if not op.done]

    @property
    def ok(self):
        return not self.pending

    def counts(self):
        """{(store name, result): count} of the writes made."""
        counts = collections.Counter(
            (op.target.name, op.result) for op in self.made)
        return dict(sorted(counts.items()))

    def __repr__(self):
        made = ', '.join('%s %d in %s' % (result, n, name)
                         for (name, result), n in self.counts().items())
        pending = self.pending
        return '<SyncReport %s%s>' % (
            made or 'nothing to do',
            '; %d pending: %s' % (len(pending), pending[0].error)
            if pending else '')


class _Group:
    """The versions of one datum in the stores that have it."""

    def __init__(self):
        self.members = {}

    def names(self):
        return list(dict.fromkeys(d.name for d in self.members.values()))


@implementer(ISynchronizer)
class Synchronizer:
    """Propagates the writes of each of `stores` to the others.

    * `types`: the data types to propagate (those of the stores by
      default); a type goes to the stores that hold it;
    * `clock`: schedules the retries of failed writes (``callLater``);
      without one, they are tried again at the next write or retry();
    * `on_error(propagation, exception)`: called at every failure (they are
      logged too);
    * `retry_delay`, `max_retry_delay`: seconds before the next attempt,
      doubled after each failure in a row;
    * `batch_size`: writes given to a store at once.
    """

    def __init__(self, stores, types=None, clock=None, on_error=None,
                 retry_delay=1.0, max_retry_delay=3600.0,
                 batch_size=BATCH_SIZE, name=None):
        stores = list(stores)
        if len(stores) < 2 or len(set(map(id, stores))) != len(stores):
            raise ValueError('a Synchronizer links two different stores at '
                             'least')
        if types is None:
            types = list(dict.fromkeys(t for s in stores for t in s.types))
        self.stores = stores
        self.types = tuple(types)
        self.clock = clock
        self.on_error = on_error
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.batch_size = batch_size
        self.name = name or 'Synchronizer(%s)' % ', '.join(
            s.name for s in stores)
        self.last_error = None
        self._queues = {id(s): _Queue(s) for s in stores}
        self._waiters = []
        for store in stores:
            store.observe(self._heard)

    def __repr__(self):
        return '<%s>' % self.name

    def close(self):
        """Stop observing the stores and retrying (pending writes stay in
        `pending`)."""
        for store in self.stores:
            store.unobserve(self._heard)
        for queue in self._queues.values():
            if queue.timer is not None and queue.timer.active():
                queue.timer.cancel()
            queue.timer = None

    # -- what is pending ------------------------------------------------------

    @property
    def pending(self):
        """The writes not made yet, queue by queue, oldest first."""
        return [op for q in self._queues.values() for op in q.ops]

    @property
    def failing(self):
        """The pending writes that failed at least once."""
        return [op for op in self.pending if op.attempts]

    def settled(self):
        """A Deferred firing when no write is under way (pending ones may
        be waiting for their retry)."""
        if not any(q.busy for q in self._queues.values()):
            return defer.succeed(None)
        d = defer.Deferred()
        self._waiters.append(d)
        return d

    def retry(self):
        """Try every pending write again now; returns settled()."""
        for queue in self._queues.values():
            if queue.timer is not None:
                if queue.timer.active():
                    queue.timer.cancel()
                queue.timer = None
        for queue in list(self._queues.values()):
            queue.stalled = False
            self._drain(queue)
        return self.settled()

    # -- hearing the stores ---------------------------------------------------

    def _heard(self, events):
        touched = []
        for event in events:
            if event.origin is self:
                continue
            data_type = type(event.data)
            if data_type not in self.types:
                continue
            for target in self.stores:
                if target is event.store or data_type not in target.types:
                    continue
                op = self._propagation(event, target, data_type)
                if op is not None:
                    queue = self._queues[id(target)]
                    queue.ops.append(op)
                    if queue not in touched:
                        touched.append(queue)
        for queue in touched:
            queue.stalled = False
            self._drain(queue)

    def _propagation(self, event, target, data_type):
        old = event.old
        names = (old.name,) if old is not None and old.name != \
            event.data.name else ()
        if event.action == 'removed':
            return Propagation('delete', event.store, target,
                               event.data.copy(), names)
        if event.action == 'updated' and old is not None and \
                not self._touches(target, data_type, old, event.data):
            return None
        source = event.store.accessors[data_type]
        return Propagation('put', event.store, target, event.data.copy(),
                           names, source.fields,
                           create=self._creates(event, source))

    @staticmethod
    def _creates(event, source):
        """False for an update of fields the source store owns: facts it
        has about a datum (a state the server pushes) do not make one
        where it is gone."""
        if event.action != 'updated' or not source.owned:
            return True
        if event.old is None:
            return False
        return any(getattr(event.old, f) != getattr(event.data, f)
                   for f in source.fields
                   if f not in STAMPS and f not in source.owned)

    @staticmethod
    def _touches(target, data_type, old, new):
        """True when the change from `old` to `new` is one `target` keeps."""
        accessor = target.accessors[data_type]
        return any(getattr(old, f) != getattr(new, f)
                   for f in accessor.fields
                   if f not in STAMPS and f not in accessor.owned) or \
            old.id != new.id

    # -- writing to a store ---------------------------------------------------

    def _drain(self, queue):
        while queue.ops and not queue.busy and queue.timer is None and \
                not queue.stalled:
            batch = self._take(queue)
            queue.busy = True
            outcome = chain(lambda: self._apply(queue.target, batch),
                            lambda results: self._done(queue, batch, results),
                            lambda error: self._failed(queue, batch, error))
            if is_deferred(outcome):
                outcome.addCallback(lambda _: self._drain(queue))
                outcome.addErrback(lambda f: log.failure(
                    '{sync}: unexpected error', f, sync=self.name))
                return
        if not any(q.busy for q in self._queues.values()):
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.callback(None)

    def _take(self, queue):
        """The batch at the head of the queue: writes of the same action
        and type (one at a time after a failure)."""
        first = queue.ops[0]
        batch = [first]
        if queue.failures:
            return batch
        for op in list(queue.ops)[1:self.batch_size]:
            if (op.action, type(op.data), op.source, op.create) != (
                    first.action, type(first.data), first.source,
                    first.create):
                break
            batch.append(op)
        return batch

    def _apply(self, target, batch):
        first = batch[0]
        if len(batch) == 1:
            if first.action == 'put':
                return chain(lambda: target.put(
                    first.data, self, first.names, first.fields,
                    first.create), lambda result: [result])
            return chain(lambda: target.delete(first.data, self,
                                               first.names),
                         lambda result: [result])
        datas = [op.data for op in batch]
        names = [op.names for op in batch]
        if first.action == 'put':
            return target.put_many(datas, self, names, first.fields,
                                   first.create)
        return target.delete_many(datas, self, names)

    def _done(self, queue, batch, results):
        for op, result in zip(batch, results):
            if queue.ops and queue.ops[0] is op:
                queue.ops.popleft()
            if op.attempts:
                log.info('{sync}: {op} made after {n} failed attempt(s)',
                         sync=self.name, op=op.describe(), n=op.attempts)
            op.result = result
            op.done = True
        queue.busy = False
        queue.failures = 0

    def _failed(self, queue, batch, error):
        queue.busy = False
        queue.failures += 1
        text = describe_error(error)
        self.last_error = text
        for op in batch:
            op.attempts += 1
            op.error = text
        log.error('{sync}: cannot {op} (attempt {n}): {error}',
                  sync=self.name, op=batch[0].describe() if len(batch) == 1
                  else '%s %d data in %s' % (batch[0].action, len(batch),
                                             queue.target.name),
                  n=batch[0].attempts, error=text)
        if self.on_error is not None:
            try:
                self.on_error(batch[0], error)
            except Exception:
                log.failure('{sync}: on_error failed', sync=self.name)
        if self.clock is None:
            queue.stalled = True
        else:
            delay = min(self.retry_delay * 2 ** (queue.failures - 1),
                        self.max_retry_delay)
            queue.timer = self.clock.callLater(delay, self._retry_queue,
                                               queue)

    def _retry_queue(self, queue):
        queue.timer = None
        self._drain(queue)

    # -- making the stores agree ----------------------------------------------

    def sync(self):
        """Give every store what it lacks or holds differently.

        Writes still pending are tried again first. Returns a SyncReport,
        or a Deferred of it when a store answers with Deferreds (it fires
        when the writes were made or failed; failed ones stay pending and
        are retried like any other). Raises StoreError (nothing written)
        when a store cannot be read.
        """
        report = SyncReport()
        return chain(
            lambda: each(self.types, lambda t: self._plan(t, report)),
            lambda _: self._run(report))

    def _plan(self, data_type, report):
        stores = [s for s in self.stores if data_type in s.types]
        listed = [s for s in stores if s.accessor(data_type).enumerable]
        if not listed:
            raise StoreError('%s: none of the stores can list its %s' % (
                self.name, data_type.__name__))
        listings = {}

        def read(store):
            return chain(lambda: store.find(data_type),
                         lambda datas: listings.__setitem__(id(store), datas))

        return chain(lambda: each(listed, read),
                     lambda _: self._plan_groups(
                         data_type, stores, listed, listings, report))

    def _plan_groups(self, data_type, stores, listed, listings, report):
        groups = self._groups(listed, listings)
        unlisted = [s for s in stores if s not in listed]
        return chain(
            lambda: each(unlisted, lambda store: self._look_up(
                store, data_type, groups)),
            lambda _: self._plan_writes(data_type, stores, groups, report))

    @staticmethod
    def _groups(listed, listings):
        """The data of the stores matched: by id, else by name."""
        groups = []
        by_id = {}
        by_name = {}
        for store in listed:
            for data in listings[id(store)]:
                group = by_id.get(data.id)
                if group is None or store in group.members:
                    group = by_name.get(data.name)
                    if group is not None and store in group.members:
                        group = None
                if group is None:
                    group = _Group()
                    groups.append(group)
                group.members[store] = data
                by_id.setdefault(data.id, group)
                by_name.setdefault(data.name, group)
        return groups

    def _look_up(self, store, data_type, groups):
        """Find the data of a store that cannot list them, by name."""
        names = list(dict.fromkeys(n for g in groups for n in g.names()))
        if not names:
            return None

        def found(records):
            for group in groups:
                for name in group.names():
                    matches = records.get(name) or []
                    if len(matches) == 1:
                        group.members[store] = store._data(data_type,
                                                           matches[0])
                        break
        return chain(lambda: store.accessor(data_type).lookup(names), found)

    def _plan_writes(self, data_type, stores, groups, report):
        for group in groups:
            winner = self._winner(group, stores, data_type)
            names = group.names()
            for store in stores:
                accessor = store.accessors[data_type]
                member = group.members.get(store)
                if member is not None and not store.differs(
                        accessor, member.record(), winner.record()):
                    continue
                source = next(s for s in stores if s in group.members)
                op = Propagation('put', source, store, winner.copy(),
                                 [n for n in names if n != winner.name])
                self._queues[id(store)].ops.append(op)
                report.ops.append(op)

    @staticmethod
    def _winner(group, stores, data_type):
        """The version of a datum every store gets: each field from the
        most recently updated version that keeps it (the first store wins
        a tie), the owned fields from their owner."""
        members = [(s, group.members[s]) for s in stores
                   if s in group.members]
        newest_first = sorted(members, key=lambda m: -(m[1].updated or 0))
        winner = newest_first[0][1].copy()
        for field in data_type.field_names():
            for store, data in newest_first:
                if field in store.accessors[data_type].fields:
                    setattr(winner, field, getattr(data, field))
                    break
        for store, data in members:
            owned = store.accessors[data_type].owned
            for field in owned:
                setattr(winner, field, getattr(data, field))
            if owned:
                break
        return winner

    def _run(self, report):
        # Now, pending writes included (before those planned).
        settled = self.retry()
        if any(q.busy for q in self._queues.values()):
            return settled.addCallback(lambda _: report)
        return report


def describe_error(error):
    """The text of an error for logs and `pending`."""
    text = str(error) or type(error).__name__
    if isinstance(error, StoreError) or type(error).__module__.startswith(
            'linksync'):
        return text
    return '%s: %s' % (type(error).__name__, text)
