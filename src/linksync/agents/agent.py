"""Agents: consumers of the change track, each with its own pointer."""

import logging

import persistent
import zope.component
from twisted.internet import defer, task
from zope.interface import implementer

from linksync.agents import interfaces
from linksync.agents.errors import AgentError, UploadError
from linksync.agents.runner import AgentRunner

log = logging.getLogger(__name__)


# -- agents ---------------------------------------------------------------------

def agent_kinds():
    """The registered kinds of agents: kind name -> agent class."""
    return dict(zope.component.getUtilitiesFor(interfaces.IAgentKind))


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

        `session` is the linksync.server.database.Session to work through.
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
