"""Running a push agent: close, read, upload, acknowledge, in chunks."""

import collections
import logging

from twisted.internet import defer
from linksync.agents.manager import get_manager
from linksync.agents.reduction import reduce_records


log = logging.getLogger(__name__)


# -- running --------------------------------------------------------------------

class RunContext:
    """What running agents needs from its surroundings.

    `clock` has seconds() and callLater(); `secret` is the server's
    management secret (it unseals callback passwords); `mailer` an IMailer;
    `policy` vets the addresses HTTP calls connect to (see
    linksync.xmlrpc.proxy.make_agent; None: any).
    """

    def __init__(self, reactor, clock=None, secret=None, mailer=None,
                 retries=2, backoff=1.0, timeout=None, policy=None):
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.secret = secret
        self.mailer = mailer
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.policy = policy
        self._http = None

    @property
    def http(self):
        """The HTTP agent (connection pool) shared by callback calls."""
        if self._http is None:
            from linksync.xmlrpc.proxy import make_agent
            self._http = make_agent(self.reactor, policy=self.policy)
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
