"""The syncer: keeps each client's link database and the server's in step.

Once a day (``--sync-interval``), or sooner when the client asked for it
(``forceSynchronization``, ``linksync sync --force``), the syncer takes a
full snapshot of a client's link database and makes the server's list of
that client's URLs agree with it (PROTOCOL.md, "Daily / forced
synchronisation"). Per client:

1. clients whose notifications are disabled are left alone;
2. the callback's ``xmlrpc_getAllLinks`` (or ``getAllLinks``) is called with
   the client's callback credential (linksync.server.model.credentials), within a time
   limit, and the answer is refused when it is not an array of strings or
   holds more than ``--sync-max-links`` of them;
3. the links are normalised (linksync.urlnorm): invalid ones are skipped,
   duplicates collapse, and the client's own spellings are kept;
4. the state of every one of those URLs is sent back with
   ``updateManyStates``, in batches of at most 1,000 rows ``[spelling,
   state, reason]`` (``unknown`` for a URL not checked yet);
5. the URLs the client no longer has are unregistered, the new ones
   registered, and the synchronisation stamped (``last`` set, ``force``
   and the last failure cleared).

All of it is one transaction, begun before the links are fetched and
committed after step 5: it commits completely or not at all. A failure
anywhere is logged and recorded (``last_error``, ``force`` reset, no new
attempt before ``--sync-retry`` seconds have passed), and changes nothing
else. What the client registers or unregisters over the API while its
synchronisation runs is not undone by it: the transaction does not see it,
and when the two changes cannot be merged at the commit, the
synchronisation starts again from step 2 (three times at most).

Large clients: every step is cut into units of work, and the reactor runs
between them, so the server keeps answering while a client with hundreds of
thousands of links is synchronised. The transaction stays open across the
units (a linksync.server.database.LongTransaction); a savepoint after each unit
moves the changes so far out of memory. The fetched links are the only thing
held whole (as strings); the persistent objects in memory are about one
unit's worth.

Several clients are synchronised at once, up to ``--sync-concurrency``
(4), each in a database session of its own and each call to its callback
within ``--sync-timeout``: a callback that never answers holds up its own
synchronisation only, not the other clients'. A client is never
synchronised twice at once: asked for again while it runs, it is done
again after it.

The syncer is the ``syncer`` part of the server (:class:`SyncerService`),
ticking every ``--sync-tick`` seconds; ``linksync sync`` runs it from the
command line, in the running server when there is one.
"""

import collections
import itertools

import zope.component
from transaction.interfaces import TransientError
from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python import failure
from zope.interface import implementer

from linksync import states, urlnorm
from linksync.server.admin import operations as admin
from linksync.server.model import registration
from linksync.server.checker.netpolicy import callback_policy
from linksync.xmlrpc.proxy import (DEFAULT_TIMEOUT, CallbackError, CallbackProxy,
                               make_agent, make_pool)
from linksync.server.model.client import RUNNING_SYNCERS
from linksync.server.model.credentials import CredentialError
from linksync.server.interfaces import (IClientProvider, INotifications,
                                        ISynchronization, ISyncer,
                                        ISyncResult, IURLProvider)
from linksync.xmlrpc.resource import Param

log = Logger()

DEFAULT_TICK = 60
DEFAULT_INTERVAL = 24 * 3600
DEFAULT_RETRY = 3600
DEFAULT_MAX_LINKS = 500_000
#: Rows per updateManyStates call (PROTOCOL.md: batches of at most 1,000).
BATCH_SIZE = 1000
#: Changes of the server's database per unit of work.
UNIT_SIZE = 1000
#: Links normalised per unit of work.
NORMALIZE_UNIT = 5000
#: How often step 5 is tried when it conflicts with other writers.
ATTEMPTS = 3
#: Clients synchronised at once (--sync-concurrency).
DEFAULT_CONCURRENCY = 4


class SyncError(Exception):
    """A client cannot be synchronised; the message says why."""


@implementer(ISyncResult)
class SyncResult:
    """What the synchronisation of one client did."""

    def __init__(self, client_id, status='failed', error=''):
        self.client_id = client_id
        self.status = status
        self.error = error
        self.links = self.invalid = self.states = 0
        self.registered = self.unregistered = self.kept = 0
        self.attempts = 1

    def __repr__(self):
        if self.status != 'ok':
            return '<SyncResult %s %s: %s>' % (self.client_id, self.status,
                                               self.error)
        return '<SyncResult %s ok: %s>' % (self.client_id, self.summary())

    def summary(self):
        invalid = ' (%d invalid)' % self.invalid if self.invalid else ''
        return '%d links%s, %d registered, %d unregistered, %d states ' \
            'sent' % (self.links, invalid, self.registered,
                      self.unregistered, self.states)

    def as_dict(self):
        return {'client': self.client_id, 'status': self.status,
                'error': self.error, 'links': self.links,
                'invalid': self.invalid, 'registered': self.registered,
                'unregistered': self.unregistered, 'kept': self.kept,
                'states': self.states, 'attempts': self.attempts}


@implementer(ISyncer)
class Syncer:
    """Synchronises clients through one database session of its own.

    `clock` gives the time (and the callbacks' time limit), `reactor` runs
    the network and the units of work, `secret` (the server's management
    secret) opens the callback credentials. With `metrics` (the server's
    linksync.server.web.metrics.Metrics), every synchronisation is counted by outcome
    and timed on `clock`. `policy` vets the addresses the callbacks connect
    to (linksync.server.checker.netpolicy.callback_policy; None: any).
    """

    def __init__(self, session, clock, reactor, secret,
                 interval=DEFAULT_INTERVAL, retry=DEFAULT_RETRY,
                 timeout=DEFAULT_TIMEOUT, max_links=DEFAULT_MAX_LINKS,
                 batch_size=BATCH_SIZE, unit_size=UNIT_SIZE, metrics=None,
                 policy=None, concurrency=DEFAULT_CONCURRENCY):
        self.session = session
        self.metrics = metrics
        self.clock = clock
        self.reactor = reactor
        self.secret = secret
        self.interval = interval
        self.retry = retry
        self.timeout = timeout
        self.max_links = max_links
        self.batch_size = min(batch_size, BATCH_SIZE)
        self.unit_size = unit_size
        self.pool = make_pool(reactor)
        # The callbacks' addresses are vetted as the checker's are
        # (--allow-network; None: any address).
        self.agent = make_agent(reactor, pool=self.pool, policy=policy)
        self.concurrency = max(1, int(concurrency))
        # A slot per client synchronised at once.
        self._slots = defer.DeferredSemaphore(self.concurrency)
        # Every synchronisation asked for and not done (_Job), and the
        # latest of each client (a client's are done one after the other).
        self._jobs = set()
        self._latest = {}
        self._stopping = False

    @classmethod
    def from_settings(cls, session, clock, reactor, secret, settings,
                      metrics=None):
        """A Syncer configured by the ``--sync-*`` options of `settings`."""
        return cls(session, clock, reactor, secret, metrics=metrics,
                   policy=callback_policy(settings),
                   interval=getattr(settings, 'sync_interval',
                                    DEFAULT_INTERVAL),
                   retry=getattr(settings, 'sync_retry', DEFAULT_RETRY),
                   timeout=getattr(settings, 'sync_timeout', DEFAULT_TIMEOUT),
                   max_links=getattr(settings, 'sync_max_links',
                                     DEFAULT_MAX_LINKS),
                   concurrency=getattr(settings, 'sync_concurrency',
                                       DEFAULT_CONCURRENCY))

    @property
    def busy(self):
        """True while a synchronisation asked for is not done."""
        return bool(self._jobs)

    def sync(self):
        """Synchronise every client that is due; see ISyncer.

        A due client being synchronised already is not started again:
        its result is that of the synchronisation running."""
        if self._stopping:
            return defer.fail(defer.CancelledError('the syncer has stopped'))
        due = self.session.read(self._due, self.clock.seconds())
        return _gather([
            self._latest[client_id].wait()
            if client_id in self._latest else self._start(client_id)
            for client_id in due])

    def sync_clients(self, client_ids):
        """Synchronise the named clients now; see ISyncer."""
        if self._stopping:
            return defer.fail(defer.CancelledError('the syncer has stopped'))
        return _gather([self._start(client_id, named=True)
                        for client_id in client_ids])

    def idle(self):
        """A Deferred firing once the synchronisations asked for are done."""
        return defer.DeferredList([job.wait() for job in list(self._jobs)],
                                  consumeErrors=True).addCallback(
                                      lambda _: None)

    @defer.inlineCallbacks
    def stop(self):
        """Stop: the running synchronisations are abandoned (nothing of
        them is written), and no other starts."""
        self._stopping = True
        for job in list(self._jobs):
            # A commit cannot be stopped half-way: it ends by itself.
            if not job.committing:
                job.deferred.cancel()
        yield self.idle()
        yield self.pool.closeCachedConnections()

    def _start(self, client_id, named=False):
        """Synchronise `client_id` in a free slot, after the client's
        synchronisation asked for before, if any; a Deferred of its
        SyncResult. `named`: asked for by name (checked first)."""
        job = _Job(client_id)
        before = self._latest.get(client_id)

        def run(_=None):
            return self._slots.run(self._run, job, named)
        if before is None:
            job.deferred = run()
        else:
            job.deferred = before.wait().addBoth(run)
        self._jobs.add(job)
        self._latest[client_id] = job

        def done(outcome):
            self._jobs.discard(job)
            if self._latest.get(client_id) is job:
                del self._latest[client_id]
            job.finished(outcome)
        job.deferred.addBoth(done)
        return job.wait()

    @defer.inlineCallbacks
    def _run(self, job, named):
        if self._stopping:
            raise defer.CancelledError('the syncer has stopped')
        if named:
            why = self.session.read(self._cannot_sync, job.client_id)
            if why is not None:
                if self.metrics is not None:
                    self.metrics.syncs.labels(why[0]).inc()
                return SyncResult(job.client_id, *why)
        # A session of its own: the long transaction holds it throughout.
        job.session = self.session.database.session()
        try:
            return (yield self._sync_one(job))
        finally:
            job.session.connection.cacheMinimize()
            job.session.close()

    # -- which clients -----------------------------------------------------------

    def _due(self, app, now):
        due = [client.id
               for client in zope.component.getUtility(IClientProvider)
               if INotifications(client).enabled and
               ISynchronization(client).is_due(now, self.interval)]
        self.session.connection.cacheMinimize()
        return due

    def _cannot_sync(self, app, client_id):
        client = zope.component.getUtility(IClientProvider).get(client_id)
        if client is None:
            return 'failed', 'no client %r' % (client_id,)
        if not INotifications(client).enabled:
            return 'skipped', 'its notifications are disabled'
        return None

    # -- one client -----------------------------------------------------------------

    @defer.inlineCallbacks
    def _sync_one(self, job):
        client_id = job.client_id
        now = self.clock.seconds()
        try:
            result = yield self._attempts(job, now)
        except Exception as e:
            if self._stopping:
                raise defer.CancelledError('the syncer has stopped')
            if isinstance(e, (CallbackError, CredentialError, SyncError)):
                error = str(e)
            else:
                log.failure('unexpected error synchronising {client}',
                            client=client_id)
                error = 'internal error: %s: %s' % (type(e).__name__, e)
            failed_at = self.clock.seconds()
            log.error('synchronising {client} failed: {error}; next attempt '
                      'in {retry} s', client=client_id, error=error,
                      retry=self.retry)
            self.session.run(self._record_failure, client_id, error,
                             failed_at)
            self._count('failed', failed_at - now)
            return SyncResult(client_id, 'failed', error)
        log.info('synchronised {client}: {summary}', client=client_id,
                 summary=result.summary())
        self._count('ok', self.clock.seconds() - now)
        return result

    def _count(self, outcome, seconds):
        if self.metrics is not None:
            self.metrics.syncs.labels(outcome).inc()
            self.metrics.sync_seconds.observe(max(seconds, 0.0))

    @defer.inlineCallbacks
    def _attempts(self, job, now):
        # The transaction begins before the links are fetched: what the
        # client registers or unregisters over the API meanwhile is not
        # seen, so not undone; should it conflict with the changes, all is
        # done again, with the client's links as they are then.
        client_id = job.client_id
        for attempt in range(1, ATTEMPTS + 1):
            work = job.session.long_transaction()
            try:
                result = yield self._sync_in(work, client_id, now)
                job.committing = True
                try:
                    yield work.commit_in_thread(self.reactor)
                finally:
                    job.committing = False
                result.attempts = attempt
            except TransientError as e:
                work.abort()
                if attempt == ATTEMPTS:
                    raise SyncError(
                        'the changes conflicted with other writers %d times '
                        'in a row (%s)' % (ATTEMPTS, e)) from None
                log.info('synchronising {client}: conflict with another '
                         'writer ({error}), starting again', client=client_id,
                         error=e)
                continue
            except BaseException:
                work.abort()
                raise
            return result

    @defer.inlineCallbacks
    def _sync_in(self, work, client_id, now):
        """Steps 2 to 5 inside the long transaction `work`."""
        result = SyncResult(client_id, 'ok')
        url, credentials = work.unit(self._callback, client_id)
        proxy = CallbackProxy(url, self.clock, agent=self.agent,
                              timeout=self.timeout)
        links = yield proxy.get_all_links(*credentials,
                                          max_links=self.max_links)
        result.links = len(links)
        wanted = yield self._normalize(links, result)
        del links
        keys = sorted(wanted)
        yield self._send_states(work, proxy, credentials, keys, wanted,
                                result)
        client = work.unit(self._client, client_id)
        merge = _Merge(keys, wanted, now, self.unit_size)
        while not work.unit(merge.step, client):
            work.savepoint()
            yield self._pause()
        work.unit(self._stamp, client, now)
        result.registered = merge.registered
        result.unregistered = merge.unregistered
        result.kept = merge.kept
        return result

    def _callback(self, app, client_id):
        client = zope.component.getUtility(IClientProvider).get(client_id)
        if client is None:
            raise SyncError('no client %r' % (client_id,))
        return client.callback_url, client.callback_credentials(self.secret)

    def _record_failure(self, app, client_id, error, now):
        client = zope.component.getUtility(IClientProvider).get(client_id)
        if client is None:
            return
        sync = ISynchronization(client)
        if sync.force:
            sync.force = False
        sync.retry_after = now + self.retry
        sync.last_error = error

    @defer.inlineCallbacks
    def _normalize(self, links, result):
        """{normalised URL: None, or the tuple of the client's spellings
        when they are not just the normalised URL}."""
        wanted = {}
        for start in range(0, len(links), NORMALIZE_UNIT):
            for link in links[start:start + NORMALIZE_UNIT]:
                try:
                    norm = urlnorm.normalize(link)
                except urlnorm.InvalidURL:
                    result.invalid += 1
                    continue
                spellings = wanted.get(norm, _ABSENT)
                if spellings is _ABSENT:
                    wanted[norm] = None if link == norm else (link,)
                else:
                    spellings = spellings or (norm,)
                    if link not in spellings:
                        wanted[norm] = spellings + (link,)
            yield self._pause()
        return wanted

    @defer.inlineCallbacks
    def _send_states(self, work, proxy, credentials, keys, wanted, result):
        # One call at a time; the next batch is made while the client
        # takes the one before.
        position = (0, 0)
        sending = None
        try:
            while position[0] < len(keys):
                rows, position = work.unit(self._rows, keys, wanted,
                                           position)
                work.free()
                if sending is not None:
                    yield sending
                sending = proxy.update_many_states(
                    credentials[0], credentials[1], rows)
                result.states += len(rows)
                yield self._pause()
            if sending is not None:
                yield sending
                sending = None
        finally:
            if sending is not None:     # given up: forget its outcome
                sending.addErrback(lambda failure: None)
                sending.cancel()

    def _rows(self, app, keys, wanted, position):
        """The next batch of rows from `position` (index in `keys`, index
        in that URL's spellings) on; returns (rows, next position)."""
        provider = zope.component.getUtility(IURLProvider)
        i, j = position
        rows = []
        while i < len(keys) and len(rows) < self.batch_size:
            norm = keys[i]
            spellings = wanted[norm] or (norm,)
            url = provider.get(norm)
            if url is None:
                state, reason = states.UNKNOWN, ''
            else:
                state, reason = states.wire_state(url.state), url.reason
            take = spellings[j:j + self.batch_size - len(rows)]
            rows.extend([spelling, state, reason] for spelling in take)
            j += len(take)
            if j == len(spellings):
                i, j = i + 1, 0
        return rows, (i, j)

    def _client(self, app, client_id):
        client = zope.component.getUtility(IClientProvider).get(client_id)
        if client is None:
            raise SyncError('the client %r was removed meanwhile'
                            % (client_id,))
        return client

    def _stamp(self, app, client, now):
        sync = ISynchronization(client)
        sync.last = now
        if sync.force:
            sync.force = False
        if sync.retry_after is not None:
            sync.retry_after = None
        if sync.last_error:
            sync.last_error = ''

    def _pause(self):
        """Let the reactor do other work before the next unit."""
        return task.deferLater(self.reactor, 0, lambda: None)


_ABSENT = object()


class _Job:
    """The synchronisation of one client, asked for: its Deferred, its
    session while it runs, whether it is committing (then it cannot be
    stopped), and its outcome once done, which :meth:`wait` hands to
    each who waits for it."""

    def __init__(self, client_id):
        self.client_id = client_id
        self.deferred = None
        self.session = None
        self.committing = False
        self.done = False
        self.outcome = None
        self._waiting = []

    def wait(self):
        """A Deferred firing with the outcome (a SyncResult or a
        failure)."""
        d = defer.Deferred()
        if self.done:
            _fire(d, self.outcome)
        else:
            self._waiting.append(d)
        return d

    def finished(self, outcome):
        self.done = True
        self.outcome = outcome
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            _fire(d, outcome)


def _fire(d, outcome):
    if isinstance(outcome, failure.Failure):
        d.errback(outcome)
    else:
        d.callback(outcome)


def _gather(deferreds):
    """A Deferred of the results of `deferreds`, in order; the first
    failure, as it is, when one fails."""
    return defer.gatherResults(deferreds, consumeErrors=True).addErrback(
        lambda f: f.value.subFailure if f.check(defer.FirstError) else f)


class _Merge:
    """Walks a client's URLs and the wanted ones side by side, in order.

    Both are sorted: a URL only among the client's is unregistered, one
    only among the wanted is registered, one in both keeps its URL object
    and takes the spellings the client sent. :meth:`step` does a unit of
    it. The client's URLs are read a unit at a time, from after the last
    one handled; the URLs registered meanwhile all sort before that one,
    so they are never read back as the client's.
    """

    def __init__(self, keys, wanted, now, size):
        self.keys = keys
        self.wanted = wanted
        self.now = now
        self.size = size
        self.i = 0
        self.last = None
        self.pending = collections.deque()
        self.exhausted = False
        self.registered = self.unregistered = self.kept = 0

    def step(self, app, client):
        """Up to `size` changes; True when the two lists agree.

        The unit's registrations and unregistrations are each applied as
        one batch at its end, as the API's ``registerURLs`` does: their
        events fire together and their track records form one family.
        Deferring them changes nothing the walk reads: a URL registered
        sorts before the client's URL at hand, and the client's URLs are
        only ever read after that one.
        """
        keys = self.keys
        wanted = self.wanted
        new = {}
        gone = []
        done = False
        for _ in range(self.size):
            if not self.pending and not self.exhausted:
                self.pending.extend(itertools.islice(
                    client.url_keys(self.last,
                                    excludemin=self.last is not None),
                    self.size))
                self.exhausted = not self.pending
            have = self.pending[0] if self.pending else None
            want = keys[self.i] if self.i < len(keys) else None
            if have is None and want is None:
                done = True
                break
            if have is None or (want is not None and want < have):
                new[want] = wanted[want] or (want,)
                self.i += 1
                continue
            self.last = self.pending.popleft()
            if want is None or have < want:
                gone.append(client.get_url(have))
            else:
                client.set_spellings(want, wanted[want] or (want,))
                self.kept += 1
                self.i += 1
        if new:
            registration.register_normalized(client, new, self.now)
            self.registered += len(new)
        if gone:
            self.unregistered += len(client.unregister_urls(gone, self.now))
        return done


# -- the service ------------------------------------------------------------------

class SyncerService(service.Service):
    """The ``syncer`` part of the server: syncs what is due every tick."""

    name = 'syncer'

    def __init__(self, server):
        self.server = server
        self.syncer = None
        self._loop = None

    def startService(self):
        super().startService()
        server = self.server
        self.session = server.session
        self.syncer = Syncer.from_settings(self.session, server.clock,
                                           server.reactor, server.secret,
                                           server.settings,
                                           metrics=server.metrics)
        RUNNING_SYNCERS[server.database.db] = self.syncer
        self._loop = task.LoopingCall(self.tick)
        self._loop.clock = server.clock
        self._loop.start(getattr(server.settings, 'sync_tick', DEFAULT_TICK),
                         now=False)

    def tick(self):
        """Start synchronising the clients that are due and not being
        synchronised already (a client whose callback hangs holds up no
        other client's synchronisation, not even the next tick's)."""
        d = self.syncer.sync()
        d.addErrback(self._failed)

    def _failed(self, failure):
        if not failure.check(defer.CancelledError):
            log.failure('the syncer failed', failure=failure)

    @defer.inlineCallbacks
    def stopService(self):
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if RUNNING_SYNCERS.get(self.server.database.db) is self.syncer:
            del RUNNING_SYNCERS[self.server.database.db]
        yield self.syncer.stop()


# -- administrative operations -----------------------------------------------------

@admin.operation('sync', params=[Param('client_ids', list)], returns=list,
                 transactional=False)
def sync_operation(context, client_ids):
    """Synchronise clients now: those named (due or not), or every client
    that is due when none is named. Returns a struct per client: client,
    status (ok, failed or skipped), error, and the counts links, invalid,
    registered, unregistered, kept, states."""
    bad = [c for c in client_ids if not isinstance(c, str)]
    if bad:
        raise admin.OperationError('client ids are strings, not %r'
                                   % (bad[0],))
    server = context.server
    running = None
    if server is not None:
        part = server.namedServices.get('syncer')
        if part is not None and part.running:
            running = part.syncer
    if running is not None:
        syncer, session = running, None
    elif server is not None:
        session = server.database.session()
        syncer = Syncer.from_settings(session, server.clock, server.reactor,
                                      server.secret, server.settings,
                                      metrics=server.metrics)
    else:
        session = None
        syncer = Syncer.from_settings(context.session, context.clock,
                                      context.reactor, context.secret,
                                      context.settings)
    d = syncer.sync_clients(client_ids) if client_ids else syncer.sync()
    d.addCallback(lambda results: [r.as_dict() for r in results])

    @defer.inlineCallbacks
    def finish(outcome):
        if syncer is not running:
            yield syncer.pool.closeCachedConnections()
        if session is not None:
            session.close()
        return outcome
    d.addBoth(finish)
    return d


@admin.operation('callback_credential',
                 params=[Param('client_id', str), Param('password', str)])
def callback_credential_operation(context, client_id, password):
    """Set the password the server presents to a client's callback (kept
    sealed with the server's secret; see linksync.server.model.credentials)."""
    client = zope.component.getUtility(IClientProvider).get(client_id)
    if client is None:
        raise admin.OperationError('no client %r' % (client_id,))
    if not password:
        raise admin.OperationError('the callback password is empty')
    client.set_callback_password(password, context.secret)
    return True
