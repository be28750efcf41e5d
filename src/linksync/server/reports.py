"""The API process's minute: the trends sampled, the daily digests mailed.

:class:`Reports` runs beside the pages (started by the API service): once
a minute it samples the series of linksync.server.model.trends (the
clients a batch per transaction, once an hour), and with ``--digest-hour``
it mails, once a day at that hour (UTC), each client's contact what broke
and what recovered since the last digest (linksync.server.model.digests),
with a signed link to unsubscribe. A digest that could not be mailed stays
pending for the next day: nothing noted is lost.
"""

import zope.component
from twisted.internet import defer, task
from twisted.logger import Logger

from linksync.server.interfaces import (IClientProvider, IDigests,
                                        IProblemIndex, IStateCounts,
                                        ITrends)
from linksync.server.model.digests import summarize
from linksync.server.web.access import alerts_path
from linksync.server.web.markup import iso
from linksync.server.web.digest import unsubscribe_signer, unsubscribe_url

log = Logger()

#: Seconds between two samples.
TICK = 60
#: Changes listed per group in a digest, at most (the rest are counted).
LISTED = 50


def day_of(now):
    return int(now // 86400)


def compose(client, digest, links):
    """(subject, body) of a client's digest; `links` has the URLs of its
    alerts page and of unsubscribing."""
    summary = summarize(digest.changes)

    def spelled(url):
        spellings = client.spellings(url)
        return spellings[0] if spellings else url

    lines = ['Hello%s,' % (' ' + client.contact_name
                          if client.contact_name else ''), '',
             'what changed among the links of %s since the last digest:'
             % client.id, '']
    groups = [
        ('Broken', summary.broke, lambda c: '%s (%s)' % (c.after, c.reason)),
        ('Fine again', summary.recovered,
         lambda c: 'was %s' % c.before),
        ('Broke and recovered', summary.flapped,
         lambda c: '%d changes' % c.count),
        ('Still in trouble, changed', summary.other,
         lambda c: '%s, was %s (%s)' % (c.after, c.before, c.reason)),
    ]
    counts = []
    for title, changes, detail in groups:
        if not changes:
            continue
        counts.append('%d %s' % (len(changes), title.lower()))
        lines.append('%s (%d):' % (title, len(changes)))
        for change in changes[:LISTED]:
            lines.append('  %s' % spelled(change.url))
            lines.append('    %s, %s' % (detail(change), iso(change.time)))
        if len(changes) > LISTED:
            lines.append('  ... and %d more' % (len(changes) - LISTED))
        lines.append('')
    if digest.dropped:
        lines += ['%d more changes were not noted (more than %d in a day).'
                  % (digest.dropped, len(digest.changes)), '']
    lines += ['All current problems: %s' % links['alerts'], '',
              'You get this mail once a day when something changed. To '
              'stop it:', links['unsubscribe'], '']
    subject = 'linksync digest for %s: %s' % (
        client.id, ', '.join(counts) or 'changes')
    return subject, '\n'.join(lines)


class Reports:
    """Samples the trends each minute and mails the daily digests."""

    def __init__(self, session, clock, secret, mailer=None,
                 public_url=None, digest_hour=None, alerts_token=None):
        self.session = session
        self.clock = clock
        self.mailer = mailer
        self.public_url = public_url
        self.digest_hour = digest_hour
        self.signer = unsubscribe_signer(secret)
        #: alerts_token(client_id, now) -> token of an alerts link.
        self.alerts_token = alerts_token
        self._loop = None
        self._mailing = None
        self._waiting = []

    def start(self):
        self.session.run(self._enable)
        self._loop = task.LoopingCall(self.tick)
        self._loop.clock = self.clock
        self._loop.start(TICK, now=True)

    def stop(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return self.idle()

    def idle(self):
        """A Deferred firing once no digest is being mailed."""
        if self._mailing is None:
            return defer.succeed(None)
        d = defer.Deferred()
        self._waiting.append(d)
        return d

    def _enable(self, app):
        digests = zope.component.getUtility(IDigests)
        on = self.digest_hour is not None
        if digests.enabled != on:
            digests.enabled = on
        if on and digests.last_day is None:
            # The first digest covers what happens from now on.
            now = self.clock.seconds()
            digests.last_day = day_of(now) if self._hour(now) >= \
                self.digest_hour else day_of(now) - 1

    def _hour(self, now):
        return int(now % 86400 // 3600)

    # -- the minute ---------------------------------------------------------------

    def tick(self):
        now = self.clock.seconds()
        try:
            self.sample(now)
        except Exception:
            log.failure('sampling the trends failed')
        if self.digest_hour is not None and self._mailing is None and \
                self._hour(now) >= self.digest_hour:
            due = self.session.read(
                lambda app: zope.component.getUtility(IDigests).last_day)
            if due is None or due < day_of(now):
                self._mailing = self.mail_digests(now)
                self._mailing.addErrback(
                    lambda f: log.failure('mailing the digests failed', f))
                self._mailing.addBoth(self._mailed)

    def _mailed(self, _):
        self._mailing = None
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    def sample(self, now):
        """Sample the trends: the URLs per state and the checks, then this
        hour's clients, a batch per transaction."""
        def sample(app):
            counts = zope.component.getUtility(IStateCounts).counts()
            zope.component.getUtility(ITrends).sample(now, counts)
        self.session.run(sample)

        def clients(app, new):
            trends = zope.component.getUtility(ITrends)
            sample = trends.sample_new_clients if new else \
                trends.sample_clients
            return sample(now, zope.component.getUtility(IClientProvider),
                          zope.component.getUtility(IProblemIndex))
        while self.session.run(clients, True):
            pass
        while self.session.run(clients, False):
            pass

    # -- the digests -----------------------------------------------------------

    @defer.inlineCallbacks
    def mail_digests(self, now):
        """Mail every pending digest; returns the number mailed."""
        def start_round(app):
            zope.component.getUtility(IDigests).last_day = day_of(now)
        self.session.run(start_round)
        mailed = 0
        after = None
        while True:
            batch = self.session.run(self._compose_batch, after, now)
            if not batch:
                break
            for client_id, address, message, count, dropped in batch:
                after = client_id
                if message is None:
                    continue
                subject, body, headers = message
                try:
                    yield self.mailer.send(address, subject, body, headers)
                except Exception as e:
                    log.warn('the digest of {client} to {to} was not mailed'
                             ' ({error}); it stays for the next one',
                             client=client_id, to=address, error=e)
                    continue
                self.session.run(
                    lambda app, c=client_id, n=count, d=dropped:
                    zope.component.getUtility(IDigests).sent(c, n, d))
                mailed += 1
        log.info('{n} digests mailed', n=mailed)
        return mailed

    def _compose_batch(self, app, after, now):
        digests = zope.component.getUtility(IDigests)
        clients = zope.component.getUtility(IClientProvider)
        batch = []
        for client_id in digests.pending_ids(after):
            digest = digests.pending(client_id)
            client = clients.get(client_id)
            if client is None or not client.contact_email or \
                    not digests.subscribed(client_id):
                digests.forget(client_id)
                batch.append((client_id, None, None, 0, 0))
                continue
            base = self.public_url.rstrip('/')
            token = self.alerts_token(client_id, now) \
                if self.alerts_token is not None else None
            links = {
                'alerts': base + alerts_path(client_id) + (
                    '?token=' + token if token else ''),
                'unsubscribe': unsubscribe_url(base, self.signer, client_id,
                                               now)}
            subject, body = compose(client, digest, links)
            headers = [
                ('List-Unsubscribe', '<%s>' % links['unsubscribe']),
                ('List-Unsubscribe-Post', 'List-Unsubscribe=One-Click'),
                ('Auto-Submitted', 'auto-generated')]
            batch.append((client_id, client.contact_email,
                          (subject, body, headers), len(digest.changes),
                          digest.dropped))
        return batch
