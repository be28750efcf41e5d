"""The checker part of the server: the scheduling loop and the result writer.

:class:`CheckerService` (role ``checker``, registered by linksync.server.configure) runs,
on the session the parts of the server share (linksync.server.service) and
the server's clock:

* the scheduling loop (:class:`Scheduler`): every tick it takes due URLs
  from the schedule's index (linksync.server.model.due) and hands them to the
  checker, never more than ``--check-queue`` unfinished at once, never a URL
  twice, and never more than a few seconds of work per host (so one slow or
  paused host does not fill the queue); the index is walked from a cursor,
  a bounded number of entries per tick, so a tick costs in proportion to
  the work it hands out. When the checker is saturated, ticks back off
  (doubling up to a limit) until results free room again;
* the result writer: results are written back in batched transactions
  (``Schedule.record``, which publishes through ``URL.set_result`` and so
  fires URLStateChanged, the notifier's hook), at most every
  ``WRITE_DELAY`` seconds (times the number of workers sharing the database)
  or every ``WRITE_BATCH`` results;
* the removal of orphan URLs after ``--orphan-grace``;
* indexing, once, the URLs of a database made before the schedule existed.

A checker worker (``--worker I/N``, linksync.server.model.partition) does all this for
its share of the hosts only: it reads the due indexes of its shards and
removes the orphans of its hosts, so several workers on one database never
hand out the same URL, nor contact the same host.

A URL stays "in flight" from the moment it is handed out until its result
is committed, so it is never handed out twice meanwhile.
"""

import zope.component
from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from linksync.server.checker import check as checker_module
from linksync.server.interfaces import (IHistory, ISchedule, ITrends,
                                        IURLProvider)
from linksync.server.model import events, purge
from linksync.server.model.due import Timing

log = Logger()


class Scheduler:
    """Hands due URLs to a checker and writes the results back."""

    #: Seconds between ticks while all is well.
    TICK = 1.0
    #: Longest pause between ticks while the checker is saturated.
    MAX_TICK = 30.0
    #: Results written in one transaction, at most. Results come back in no
    #: particular order, so each batch touches buckets all over the index:
    #: a large batch writes each bucket once for many results (10,000
    #: results cost 2.4 times less CPU in batches of 5,000 than of 1,000).
    WRITE_BATCH = 5000
    #: Seconds a result may wait for its batch, in a lone checker. Each of
    #: N workers sharing a database waits N times as long, so that the
    #: fleet commits about as often as one checker would: a commit costs
    #: the worker and the database a fixed part besides its results
    #: (bench/scale.py on RelStorage/PostgreSQL, 4 workers: 1.19x to 1.37x
    #: the CPU per check of one when each stored every 2 s; 1.06x and
    #: 1.19x in two runs since).
    WRITE_DELAY = 2.0
    #: Seconds from a registration in this process to the tick that looks
    #: for its URLs (Scheduler.wake): a client's URLs are checked at once
    #: instead of at the next tick, up to a second later.
    WAKE_DELAY = 0.0
    #: Index entries looked at per tick, per free place in the queue.
    SCAN_FACTOR = 4
    #: Seconds of work (at the per-host delay) queued for one host, at most:
    #: two ticks' worth keeps a host busy until the next tick. More lets a
    #: few hosts fill the queue: with 10 s (100 URLs a host at the delay of
    #: 0.1 s, in a queue of 10,000), 300,000 URLs due over 1,000 hosts were
    #: checked on 100 hosts at a time, 10 a second each: 1,131 URLs/s, the
    #: CPU half idle; with 2 s, 2,319 URLs/s (bench/checker.py --million
    #: --registered 300000 --due 150000, 2026-12-03).
    HOST_QUEUE_SECONDS = 2 * TICK
    #: Orphans removed per tick, at most.
    ORPHAN_BATCH = 1000

    def __init__(self, session, checker, clock, timing, queue_size=10000,
                 orphan_grace=7 * 86400.0, per_host_connections=2,
                 per_host_delay=1.0, worker=None):
        self.session = session
        #: The share of the hosts this scheduler works on (a
        #: linksync.server.model.partition.Worker; None: all of them).
        self.worker = worker
        self.write_delay = self.WRITE_DELAY * (
            worker.count if worker is not None else 1)
        self.checker = checker
        self.clock = clock
        self.timing = timing
        self.queue_size = queue_size
        self.orphan_grace = orphan_grace
        per_host = max(per_host_connections,
                       int(self.HOST_QUEUE_SECONDS /
                           max(per_host_delay, 1e-3)))
        self.host_queue = min(per_host, queue_size)
        #: url -> host of the URLs handed out and not written back yet.
        self.inflight = {}
        self.host_load = {}
        self.results = []
        self.cursor = None
        self.delay = self.TICK
        self.running = False
        self._tick_call = None
        self._write_call = None
        self._pending_checks = {}
        #: Counters for reports and tests.
        self.checked = 0
        self.written = 0

    # -- life cycle -------------------------------------------------------------

    def start(self):
        self.running = True
        self._schedule_tick(0)

    @defer.inlineCallbacks
    def stop(self):
        """Stop handing out work; write the results already in."""
        self.running = False
        for call in (self._tick_call, self._write_call):
            if call is not None and call.active():
                call.cancel()
        self._tick_call = self._write_call = None
        self.flush()
        pending, self._pending_checks = self._pending_checks, {}
        for d in pending.values():
            d.cancel()
        yield defer.succeed(None)

    def _schedule_tick(self, delay):
        if not self.running:
            return
        if self._tick_call is not None and self._tick_call.active():
            if self._tick_call.getTime() <= self.clock.seconds() + delay:
                return
            self._tick_call.cancel()
        self._tick_call = self.clock.callLater(delay, self.tick)

    def wake(self):
        """URLs became due (registered in this process): tick soon, not at
        the next second. Called inside the registering transaction: the
        tick comes in a later turn of the reactor, after the commit (and
        is merely early should the transaction abort)."""
        self._schedule_tick(self.WAKE_DELAY)

    # -- the scheduling loop ----------------------------------------------------

    def tick(self):
        self._tick_call = None
        try:
            handed = self._tick()
        except Exception:
            log.failure('the scheduler tick failed; trying again later')
            handed = None
        if handed is None or self.queue_size - len(self.inflight) > 0:
            self.delay = self.TICK
        else:
            # Saturated: back off until results free room (flush wakes
            # the loop up again).
            self.delay = min(self.delay * 2, self.MAX_TICK)
        self._schedule_tick(self.delay)

    def _tick(self):
        now = self.clock.seconds()
        free = self.queue_size - len(self.inflight)
        # One read a tick: on RelStorage each read polls PostgreSQL, and
        # every worker ticks every second.
        complete, orphans, picked = self.session.read(self._look, now, free)
        if not complete:
            self.session.run(self._catch_up, now)
        if orphans:
            self._remove_orphans(now)
        if free <= 0:
            return 0
        for url, host in picked:
            self.inflight[url] = host
            self.host_load[host] = self.host_load.get(host, 0) + 1
        for url, _ in picked:
            self._start(url)
        return len(picked)

    @staticmethod
    def _get_schedule():
        return zope.component.getUtility(ISchedule)

    def backlog(self, app, now):
        """Seconds the earliest due URL has waited (0 when none is due);
        costs one index lookup, whatever the number of due URLs."""
        for due, _ in self._get_schedule().due_keys(now):
            return max(now - due, 0.0)
        return 0.0

    def _look(self, app, now, free):
        """(whether the due index is complete, whether orphans of this
        worker's hosts expired, the work to hand out: see _pick)."""
        schedule = self._get_schedule()
        expired = self._own_orphans(schedule, now - self.orphan_grace)
        return (schedule.complete, next(iter(expired), None) is not None,
                self._pick(app, now, free) if free > 0 else [])

    def _catch_up(self, app, now):
        schedule = self._get_schedule()
        if not schedule.complete:
            schedule.catch_up(zope.component.getUtility(IURLProvider), now)

    def _pick(self, app, now, free):
        """[(url, host)] to hand out; nothing is reserved here (the read may
        fail half way), _tick reserves them."""
        schedule = self._get_schedule()
        picked = []
        added = {}
        limit = free * self.SCAN_FACTOR + 100
        last = None
        wrapped = False
        keys = schedule.due_keys(now, self.cursor, self.worker)
        for scanned, key in enumerate(keys, 1):
            last = key
            url = key[1]
            if url not in self.inflight:
                host = checker_module.host_of(url)
                load = self.host_load.get(host, 0) + added.get(host, 0)
                if load < self.host_queue:
                    picked.append((url, host))
                    added[host] = added.get(host, 0) + 1
                else:
                    # The host has all the work it may have queued: so
                    # many URLs of it due at this time are not read one by
                    # one (a client registers thousands at once).
                    keys.skip_run(key)
            if len(picked) >= free or scanned >= limit:
                break
        else:
            wrapped = True
        # Next tick goes on after the last entry looked at; past the end of
        # the due entries it starts again from the earliest.
        self.cursor = None if wrapped else last
        return picked

    def _release(self, url):
        host = self.inflight.pop(url, None)
        if host is None:
            return
        load = self.host_load.get(host, 0) - 1
        if load > 0:
            self.host_load[host] = load
        else:
            self.host_load.pop(host, None)

    def _start(self, url):
        d = self.checker.check(url)
        self._pending_checks[url] = d
        d.addBoth(self._checked, url, self.clock.seconds())

    def _checked(self, result, url, started=None):
        self._pending_checks.pop(url, None)
        if isinstance(result, Failure):
            # Checker.check never fails; if it does anyway, the URL is let
            # go and comes back when due.
            log.failure('checking {url} crashed', result, url=url)
            self._release(url)
            return None
        if not self.running:
            return None  # stopped: the URL stays due, checked next time
        state, reason = result
        self.checked += 1
        now = self.clock.seconds()
        latency = None if started is None else now - started
        self.results.append((url, state, reason, now, latency))
        if len(self.results) >= self.WRITE_BATCH or \
                len(self.results) >= len(self.inflight):
            # A full batch, or nothing else under way: no use waiting.
            self.flush()
        elif self._write_call is None or not self._write_call.active():
            self._write_call = self.clock.callLater(self.write_delay,
                                                    self.flush)

    # -- writing results --------------------------------------------------------

    def flush(self):
        """Write the results waiting for their batch (one transaction)."""
        if self._write_call is not None and self._write_call.active():
            self._write_call.cancel()
        self._write_call = None
        batch, self.results = self.results, []
        if not batch:
            return
        try:
            self.session.run(self._write, batch)
        except Exception:
            log.failure('writing {n} results failed; writing them one by '
                        'one', n=len(batch))
            for item in batch:
                try:
                    self.session.run(self._write, [item])
                except Exception:
                    log.failure('cannot store the result of {url}',
                                url=item[0])
        finally:
            was_full = len(self.inflight) >= self.queue_size
            for item in batch:
                self._release(item[0])
            self.written += len(batch)
            if was_full or len(self.inflight) <= self.queue_size // 2:
                self.delay = self.TICK
                self._schedule_tick(0)

    def _write(self, app, batch):
        schedule = self._get_schedule()
        provider = zope.component.getUtility(IURLProvider)
        history = zope.component.getUtility(IHistory)
        stored = 0
        # The state changes of the batch are notified together: the change
        # track records them as one family (linksync.server.model.records).
        changes = []
        for url, state, reason, checked, latency in batch:
            obj = provider.get(url)
            if obj is None or not obj.clients or \
                    schedule.due_at(obj) is None:
                continue  # removed or orphaned meanwhile
            schedule.record(obj, state, reason, checked, self.timing,
                            changes)
            history.record(obj.url, state, reason, checked, latency,
                           obj.state)
            stored += 1
        events.notify_all(changes)
        trends = zope.component.queryUtility(ITrends)
        if stored and trends is not None:
            trends.count_checks(stored)

    # -- orphans ----------------------------------------------------------------

    def _remove_orphans(self, now):
        """Remove the next batch of this worker's orphans expired at `now`
        (the tick looks whether there are any first: see _look)."""
        self.session.run(self._remove_orphan_batch, now - self.orphan_grace)

    def _own_orphans(self, schedule, before):
        """The next batch of expired orphans of this worker's hosts."""
        worker = self.worker
        owns = None
        if worker is not None and not worker.alone:
            shards = schedule.shard_count

            def owns(url):
                return worker.owns_url(url, shards)
        return purge.expired_orphans(before, owns, self.ORPHAN_BATCH)

    def _remove_orphan_batch(self, app, before):
        purge.remove_orphans(self._own_orphans(self._get_schedule(), before))


class CheckerService(service.Service):
    """The checker and the scheduler of the server (role ``checker``)."""

    name = 'checker'

    def __init__(self, server):
        self.server = server
        self.scheduler = None
        self.checker = None

    def startService(self):
        super().startService()
        server = self.server
        settings = server.settings
        self.session = server.session
        self.checker = checker_module.Checker(
            settings, server.reactor, server.clock,
            resolver=getattr(server, 'resolver', None),
            metrics=server.metrics)
        self.scheduler = Scheduler(
            self.session, self.checker, server.clock,
            Timing.from_settings(settings), queue_size=settings.check_queue,
            orphan_grace=settings.orphan_grace,
            per_host_connections=settings.per_host_connections,
            per_host_delay=settings.per_host_delay,
            worker=getattr(settings, 'worker', None))
        self.scheduler.start()
        self._declare_gauges(server.metrics)

    def _declare_gauges(self, metrics):
        scheduler = self.scheduler
        metrics.gauge(
            'linksync_check_queue', 'URLs handed to the checker and not '
            'written back yet (at most --check-queue)',
            lambda: len(scheduler.inflight))
        checker = self.checker
        metrics.gauge(
            'linksync_checks_in_progress', 'Checks started and not ended '
            'yet, those waiting for a politeness slot included',
            lambda: checker.in_progress)
        metrics.gauge(
            'linksync_checks_active', 'Checks talking to a host now (each '
            'holding a politeness slot, at most --concurrency)',
            lambda: checker.politeness.active)
        metrics.gauge(
            'linksync_check_backlog_seconds', 'How long the URL due the '
            'earliest has been waiting for its check (0: none is late)',
            lambda: self.session.read(scheduler.backlog,
                                      self.server.clock.seconds()))

    @defer.inlineCallbacks
    def stopService(self):
        super().stopService()
        if self.scheduler is not None:
            yield self.scheduler.stop()
        if self.checker is not None:
            yield self.checker.close()
