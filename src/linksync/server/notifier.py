"""Client notifications on the change track, and the service running agents.

Every client has a :class:`ClientNotifierAgent` (id ``client:CLIENT_ID``),
created and removed with the client. It sends the client's URLs whose state
changed, as ``updateManyStates(client_id, password, [[url, state, reason],
...])`` rows (one per spelling the client uses), in batches of at most
1,000, and moves its pointer once the client accepted them.

:class:`AgentService` (role ``agents`` of the server) runs the agents every
``--notify-interval`` seconds. Client agents standing at the same pointer
are run together: the window is read and reduced once, and each changed URL
is dispatched to the clients that registered it, so a round costs the
records read, not records times clients. The window is read in parts of
at most 10,000 records, even within one bucket of the track (half a million
results stamped in one second are one bucket), so the memory a round
needs does not grow with the changes waiting.

A client that fails is retried at the next rounds, waiting twice as long
after each failure (up to an hour); after 20 failures in a row its
notifications are disabled and its contact is mailed. Nothing is lost
meanwhile: the pointer stays, and re-enabling (``setClientNotifications``)
resumes from it.
"""

import collections

import zope.component
from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from linksync.server.checker.netpolicy import callback_policy
from linksync.server.model import records as changes
from linksync.server.model.credentials import CredentialError
from linksync.agents.agent import PushSyncAgent, RecordUploader
from linksync.agents.errors import UploadError
from linksync.agents.manager import get_manager
from linksync.agents.reduction import DELETED, reduce_records
from linksync.agents.runner import (AgentRunner, RunContext, RunResult,
                                    run_follow_up)
from linksync.xmlrpc.proxy import CallbackProxy
from linksync.agents.interfaces import ISyncManager
from linksync.server.interfaces import IClientProvider, INotifications

log = Logger()

#: Failed attempts in a row after which a client's notifications stop.
MAX_FAILURES = 20
#: The longest wait between two attempts of a failing agent (seconds).
MAX_BACKOFF = 3600
#: Rows per updateManyStates call.
BATCH_SIZE = 1000
#: Uploads running at the same time in a round.
PARALLEL_UPLOADS = 10

PREFIX = 'client:'


def client_agent_id(client_id):
    """The id of the notifier agent of a client."""
    return PREFIX + client_id


class ClientNotifierAgent(PushSyncAgent):
    """Pushes a client's state changes to its callback URL."""

    kind = 'notifier'
    batch_size = BATCH_SIZE

    def __init__(self, client_id):
        super().__init__(client_agent_id(client_id), name=client_id,
                         description='notifications of client %r'
                         % client_id)
        self.client_id = client_id

    def describe(self):
        return 'updateManyStates to client %r' % self.client_id

    def client(self, app):
        return zope.component.getUtility(IClientProvider).get(self.client_id)

    def enabled(self, app):
        client = self.client(app)
        return client is not None and bool(INotifications(client).enabled)

    def failure_count(self, app):
        # The client's own count: re-enabling its notifications resets it.
        client = self.client(app)
        return INotifications(client).failed if client is not None else 0

    def _generate_records(self, changes_, app, till):
        return notification_rows(changes_, [self.client_id], till)[
            self.client_id]

    def export_page(self, app, after, now):
        client = self.client(app)
        if client is None:
            return [], None
        return changes.client_rows_page(client, after)

    def uploader(self, app, context):
        client = self.client(app)
        try:
            password = client.callback_credentials(context.secret)[1]
            problem = None
        except CredentialError as e:
            password = None
            problem = 'cannot call client %r back: %s' % (self.client_id, e)
        return NotifierUploader(
            CallbackProxy(client.callback_url, context.reactor,
                          agent=context.http,
                          **({'timeout': context.timeout}
                             if context.timeout else {})),
            client.id, password, problem, agent=self.id,
            batch_size=self.batch_size, retries=context.retries,
            backoff=context.backoff, clock=context.clock)

    def item_str(self, row):
        return 'updateManyStates %s %r' % (self.client_id, row)

    def succeeded(self, app, now, count):
        super().succeeded(app, now, count)
        client = self.client(app)
        if client is None:
            return
        notifications = INotifications(client)
        if notifications.failed:
            notifications.failed = 0
        if count:
            notifications.last = now

    def failed(self, app, now, error, context):
        super().failed(app, now, error, context)
        client = self.client(app)
        if client is None:
            return None
        notifications = INotifications(client)
        notifications.failed += 1
        if notifications.failed < MAX_FAILURES or not notifications.enabled:
            return None
        notifications.enabled = False
        log.warn('notifications of client {client} disabled after {n} '
                 'failures: {error}', client=self.client_id,
                 n=notifications.failed, error=error)
        mailer = context.mailer
        to = client.contact_email
        if mailer is None or not to:
            return None
        subject = 'linksync: notifications to %s stopped' % self.client_id
        body = disabled_mail(client, notifications.failed, error)
        return lambda: mailer.send(to, subject, body)


def disabled_mail(client, failures, error):
    return (
        'Hello %s,\n\n'
        'the linksync server could not deliver state changes to the client '
        '%r\nat %s: %d attempts in a row failed. The last error was:\n\n'
        '    %s\n\n'
        'Its notifications are now disabled. Nothing is lost: once the '
        'client is\nreachable again, switch them back on (XML-RPC '
        'setClientNotifications(id,\npassword, True)) and it receives '
        'every change it missed.\n' % (
            client.contact_name or 'there', client.id, client.callback_url,
            failures, error))


class NotifierUploader(RecordUploader):
    """Calls updateManyStates on a client's callback URL."""

    def __init__(self, proxy, client_id, password, problem=None, **kw):
        super().__init__(**kw)
        self.proxy = proxy
        self.client_id = client_id
        self.password = password
        self.problem = problem

    def _upload_batch(self, batch):
        if self.problem:
            raise UploadError(self.problem)
        return self.proxy.update_many_states(self.client_id, self.password,
                                             batch)


#: The records a client's notifier reads (see notification_rows).
NOTIFIED_KINDS = frozenset({'URL'})


def notification_rows(changes_, client_ids, till):
    """{client id: [[spelling, state, reason], ...]} for reduced changes.

    A URL goes to the clients among `client_ids` that have it registered
    now, with its current state, when its state changed in the window. A
    URL whose last state change lies after `till` is left out: the record
    of that change is read by a later run, which sends the state then.
    """
    manager = get_manager()
    wanted = set(client_ids)
    rows = {cid: [] for cid in client_ids}
    provider = zope.component.getUtility(IClientProvider)
    clients = {}
    for change in changes_:
        if change.action == DELETED or changes.STATE_CHANGED not in \
                change.flags or change.key[0] != 'URL':
            continue
        url = change.obj
        if url.state is None:
            continue
        if url.last_state_change is not None and \
                manager.bucket(url.last_state_change) > till:
            continue
        for client_id in url.clients & wanted:
            client = clients.get(client_id)
            if client is None:
                client = clients[client_id] = provider.get(client_id)
            if client is None or client.get_url(url.url) is not url:
                continue
            for spelling in client.spellings(url.url):
                rows[client_id].append([spelling, url.state,
                                        url.reason or ''])
    return rows


# -- keeping one agent per client ------------------------------------------------

def client_added(event):
    manager = zope.component.queryUtility(ISyncManager)
    if manager is None:
        return
    aid = client_agent_id(event.object.id)
    if aid not in manager:
        manager.register_agent(ClientNotifierAgent(event.object.id),
                               now=event.now)


def client_removed(event):
    manager = zope.component.queryUtility(ISyncManager)
    if manager is None:
        return
    aid = client_agent_id(event.object.id)
    if aid in manager:
        manager.remove_agent(aid)


def ensure_client_agents(app, now=None):
    """Give every client its agent and drop the agents of gone clients;
    returns (added, removed) counts."""
    manager = get_manager()
    clients = zope.component.getUtility(IClientProvider)
    added = removed = 0
    for client in clients:
        if client_agent_id(client.id) not in manager:
            manager.register_agent(ClientNotifierAgent(client.id), now=now)
            added += 1
    for agent in manager.agents():
        if isinstance(agent, ClientNotifierAgent) and \
                agent.client_id not in clients:
            manager.remove_agent(agent.id)
            removed += 1
    return added, removed


# -- the service ------------------------------------------------------------------

def backoff(interval, failures):
    """Seconds to wait before the next attempt after `failures`."""
    return min(interval * 2 ** max(failures - 1, 0), MAX_BACKOFF)


class AgentService(service.Service):
    """Runs the agents of the server's track every `--notify-interval`."""

    name = 'agents'
    chunk_records = AgentRunner.chunk_records

    def __init__(self, server):
        self.server = server
        settings = server.settings
        self.interval = getattr(settings, 'notify_interval', 15)
        if not self.interval > 0:
            from linksync.server.options import ConfigError
            raise ConfigError('--notify-interval must be more than 0 '
                              'seconds, not %r' % (self.interval,))
        self.context = RunContext(
            server.reactor, server.clock, server.secret, server.mailer,
            retries=getattr(settings, 'notify_attempts', 3) - 1,
            timeout=getattr(settings, 'notify_timeout', None),
            policy=callback_policy(settings))
        self.session = None
        self.loop = None
        self._round = None
        self._stopping = False
        #: agent id -> earliest next attempt (after failures)
        self._retry_at = {}
        #: agent id -> last run (agents with their own update time)
        self._last_run = {}
        self.rounds = 0

    def startService(self):
        super().startService()
        self._stopping = False
        self.session = self.server.session
        now = self.server.clock.seconds()
        added, removed = self.session.run(ensure_client_agents, now)
        if added or removed:
            log.info('notifier agents: {added} added, {removed} removed',
                     added=added, removed=removed)
        # The change track's buckets of the next minute, before the first
        # round: writers in other processes (checker workers) find them.
        self.session.run(lambda app: get_manager().close(now))
        self.loop = task.LoopingCall(self.tick)
        self.loop.clock = self.server.clock
        self.loop.start(self.interval, now=False).addErrback(
            lambda f: log.failure('the agent loop stopped', f))
        self.server.metrics.gauge(
            'linksync_agent_lag_seconds', 'Seconds of changes an agent has '
            'not consumed yet: from its pointer to the open bucket',
            self._lags, labels=('agent',))

    def _lags(self):
        now = self.server.clock.seconds()
        lags = self.session.read(lambda app: get_manager().lags(now))
        return {(aid,): lag for aid, lag in lags.items()}

    @defer.inlineCallbacks
    def stopService(self):
        super().stopService()
        self._stopping = True
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        if self._round is not None:
            self._round.cancel()
            yield self.idle()
        self.session = None

    def tick(self):
        """Start a round unless one is running (the LoopingCall's job)."""
        if self._round is None:
            self.run_round()

    def run_round(self):
        """Run a round now; a Deferred firing when it is over (with the
        list of RunResult of the agents that ran)."""
        if self._round is not None:
            return self.idle().addCallback(lambda _: self.run_round())
        d = self._round = self._run_round()

        def over(result):
            self._round = None
            self.rounds += 1
            return result
        d.addBoth(over)
        d.addErrback(self._round_failed)
        return self.idle_after(d)

    def idle(self):
        """A Deferred firing once no round runs."""
        if self._round is None:
            return defer.succeed(None)
        return self.idle_after(self._round)

    @staticmethod
    def idle_after(d):
        waiter = defer.Deferred()

        def fire(result):
            waiter.callback(result)
            return result
        d.addBoth(fire)
        return waiter

    def _round_failed(self, failure):
        if not failure.check(defer.CancelledError):
            log.failure('a round of the agents failed', failure)
        return []

    @defer.inlineCallbacks
    def _run_round(self):
        now = self.server.clock.seconds()
        closed = self.session.run(lambda app: get_manager().close(now))
        groups, singles = self.session.read(self._due, now, closed)
        self._semaphore = defer.DeferredSemaphore(PARALLEL_UPLOADS)
        runs = [self._run_group(start, aids, closed, now)
                for start, aids in sorted(groups.items())]
        runs += [self._run_single(aid, now) for aid in singles]
        outcomes = yield defer.DeferredList(runs, consumeErrors=True)
        results = []
        for ok, value in outcomes:
            if ok:
                results.extend(value)
            elif not value.check(defer.CancelledError):
                log.failure('an agent run failed', value)
        return results

    def _due(self, app, now, closed):
        manager = get_manager()
        groups = collections.defaultdict(list)
        singles = []
        for agent in manager.agents():
            if not agent.failure_count(app):
                # Never failed, or reset (notifications switched back on).
                self._retry_at.pop(agent.id, None)
            if self._retry_at.get(agent.id, now) > now or \
                    not agent.enabled(app):
                continue
            position = manager.pointer(agent.id)
            if position >= closed:
                continue
            if isinstance(agent, ClientNotifierAgent):
                groups[position].append(agent.id)
                continue
            every = agent.update_time or self.interval
            last = self._last_run.get(agent.id)
            if last is None or now - last >= every:
                singles.append(agent.id)
        return groups, singles

    # -- client agents, in groups -----------------------------------------------

    @defer.inlineCallbacks
    def _run_group(self, start, aids, closed, now):
        results = []
        while aids and not self._stopping:
            # The window after `start`, read in parts of at most
            # chunk_records records (a bucket of a million state changes
            # is read, and its rows built and sent, a part at a time).
            # The pointers move once the whole window was sent; a client
            # failing within a bucket gets that bucket again from its
            # beginning at its next attempt (rows are states: sending one
            # twice does no harm).
            skip = 0
            end = None
            sent = {}
            errors = {}
            live = list(aids)
            while live and not self._stopping:
                plan = self.session.read(self._plan_group, start, live,
                                         closed, skip)
                if plan is None:
                    break
                end, work, skip = plan
                # What the part loaded is not needed again.
                self.session.connection.cacheGC()
                uploads = [self._upload(aid, items, uploader)
                           for aid, (items, uploader) in sorted(work.items())]
                outcomes = yield defer.DeferredList(uploads,
                                                    consumeErrors=True)
                if any(not ok for ok, _ in outcomes):
                    # Only a stop cancels an upload (_upload never fails
                    # otherwise): nothing is settled, the pointers stay
                    # where they were, and it is all sent again later.
                    return results
                # Only the clients that took every part so far go on (one
                # gone or disabled since the last part is left out too).
                before, sent = sent, {}
                for (aid, (items, _)), (_, error) in zip(
                        sorted(work.items()), outcomes):
                    if error:
                        errors[aid] = error
                    else:
                        sent[aid] = before.get(aid, 0) + len(items)
                live = sorted(sent)
                if not skip:
                    break
            if end is None or self._stopping:
                break
            follow_ups, failures = self.session.run(
                self._settle_group, start, end, sent, errors, now)
            delivered = sum(sent.values())
            if delivered:
                self.server.metrics.notifications.inc(delivered)
            for aid, count in failures.items():
                self._retry_at[aid] = now + backoff(self.interval, count)
            for aid in sent:
                self._retry_at.pop(aid, None)
            for aid, follow_up in follow_ups:
                yield run_follow_up(follow_up, aid)
            results.extend(RunResult(aid, sent.get(aid, 0),
                                     end if aid in sent else None,
                                     errors.get(aid, ''))
                           for aid in sorted(set(sent) | set(errors)))
            aids = sorted(sent)
            start = end
            if end >= closed:
                break
        return results

    def _plan_group(self, app, start, aids, closed, skip=0):
        manager = get_manager()
        # Only state changes are notified: the registrations' records
        # (most of the track while clients register URLs) are not read.
        end, records, skip = manager.window_part(
            start, closed, self.chunk_records, kinds=NOTIFIED_KINDS,
            skip=skip)
        if not records and end <= start:
            return None
        # Without records (only registrations) the pointers still move.
        agents = [manager.get_agent(aid) for aid in aids
                  if aid in manager and manager.pointer(aid) == start]
        agents = [a for a in agents if a.enabled(app)]
        rows = notification_rows(reduce_records(records),
                                 [a.client_id for a in agents], end)
        work = {}
        for agent in agents:
            items = rows[agent.client_id]
            work[agent.id] = (items, agent.uploader(app, self.context)
                              if items else None)
        return end, work, skip

    @defer.inlineCallbacks
    def _upload(self, aid, items, uploader):
        """(True, '') or (True, error text): never fails."""
        if not items:
            return ''
        try:
            yield self._semaphore.run(uploader.iterate_over, items)
        except defer.CancelledError:
            raise
        except Exception as e:
            log.info('{agent}: {error}', agent=aid, error=e)
            return str(e) or type(e).__name__
        return ''

    def _settle_group(self, app, start, end, sent, errors, now):
        manager = get_manager()
        follow_ups = []
        failures = {}
        for aid, count in sent.items():
            if aid in manager and manager.pointer(aid) == start:
                agent = manager.get_agent(aid)
                agent.acknowledge(manager, end)
                agent.succeeded(app, now, count)
        for aid, error in errors.items():
            if aid not in manager:
                continue
            agent = manager.get_agent(aid)
            follow_up = agent.failed(app, now, error, self.context)
            if follow_up is not None:
                follow_ups.append((aid, follow_up))
            failures[aid] = agent.failure_count(app)
        manager.prune()
        return follow_ups, failures

    # -- other agents ---------------------------------------------------------------

    @defer.inlineCallbacks
    def _run_single(self, aid, now):
        self._last_run[aid] = now
        result = yield AgentRunner(self.session, aid, self.context).run(now)
        if result.error:
            failures = self.session.read(
                lambda app: get_manager().get_agent(aid).failure_count(app)
                if aid in get_manager() else 1)
            self._retry_at[aid] = now + backoff(
                self.interval, failures)
            log.info('{agent}: {error}', agent=aid, error=result.error)
        else:
            self._retry_at.pop(aid, None)
        return [result]
