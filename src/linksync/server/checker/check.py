"""The URL checker: one entry point for every scheme, never failing.

:class:`Checker` holds what all checks share: the politeness rules (global
concurrency, per-host limits and pauses), the network policy, the DNS
resolver and the HTTP connection pool. ``check(url)`` picks the protocol
checker of the URL's scheme and always fires ``(state, reason)``: every
error is turned into a state by linksync.server.checker.classify, and an unexpected one
(a bug) is logged and reported as a temporary failure, so a crashing check
never stops the service that asked for it.
"""

from twisted.internet import defer, error
from twisted.logger import Logger
from zope.interface import implementer

from linksync import states, urlnorm
from linksync.server import interfaces
from linksync.server.checker import classify
from linksync.server.checker.connector import Connector, make_resolver
from linksync.server.checker.netpolicy import NetworkPolicy
from linksync.server.checker.politeness import Politeness
from linksync.server.checker.schemes.ftp import FTPChecker
from linksync.server.checker.schemes.http import HTTPChecker
from linksync.server.checker.schemes.mailto import MailtoChecker

log = Logger()


def host_of(url):
    """The host part of a URL (lower case), '' when it has none.

    Called for every URL the scheduler hands out, so the usual
    ``scheme://host[:port]/...`` shape is split by hand.

    >>> host_of('http://User@Example.COM:8080/x'), host_of('mailto:a@b.c')
    ('example.com', '')
    >>> host_of('http://[::1]:80/'), host_of('http:///x')
    ('::1', '')
    """
    scheme, sep, rest = url.partition('://')
    if not sep:
        return ''
    netloc = rest.split('/', 1)[0].split('?', 1)[0].rpartition('@')[2]
    if netloc.startswith('['):
        return netloc[1:].split(']', 1)[0].lower()
    return netloc.partition(':')[0].lower()


@implementer(interfaces.IChecker)
class Checker:
    """Checks URLs politely; settings are those of config.CHECKER_OPTIONS.

    With `metrics` (a linksync.server.web.metrics.Metrics), every check is counted by
    the state it found and timed, from the call of check() to its outcome
    (the waits for a politeness slot included), on `clock`.

    With `max_wait` (seconds), a host that asks for a longer pause
    (Retry-After) is not waited for: its URLs are reported temporary at
    once (the one-shot command); without it, the pause is honoured.
    """

    def __init__(self, settings, reactor, clock=None, resolver=None,
                 metrics=None, max_wait=None):
        clock = clock if clock is not None else reactor
        self.clock = clock
        self.metrics = metrics
        #: Checks asked for whose outcome is not known yet (those waiting
        #: for a politeness slot included).
        self.in_progress = 0
        self.politeness = Politeness(
            clock, concurrency=settings.concurrency,
            per_host=settings.per_host_connections,
            per_host_delay=settings.per_host_delay,
            max_pause=settings.max_retry_after, max_wait=max_wait)
        if resolver is None:
            resolver = make_resolver(settings.dns_server)
        self.policy = NetworkPolicy(settings.allow_network or ())
        self.connector = Connector(reactor, clock, self.policy, resolver,
                                   settings.connect_timeout)
        self.http = HTTPChecker(
            reactor, clock, self.politeness, self.connector,
            timeout=settings.timeout, max_redirects=settings.max_redirects,
            user_agent=settings.user_agent, ca_file=settings.ca_file,
            per_host_connections=settings.per_host_connections)
        self.ftp = FTPChecker(clock, self.politeness, self.connector,
                              timeout=settings.timeout)
        self.mailto = MailtoChecker(
            resolver, clock, connect_timeout=settings.connect_timeout,
            timeout=settings.timeout)
        self.handlers = {'http': self.http, 'https': self.http,
                         'ftp': self.ftp, 'mailto': self.mailto}

    def check(self, url):
        started = self.clock.seconds()
        self.in_progress += 1
        scheme = url.split(':', 1)[0].lower() if ':' in url else ''
        handler = self.handlers.get(scheme)
        if handler is None:
            d = defer.succeed((states.UNSUPPORTED,
                               'unsupported protocol: %s' % (
                                   scheme or 'no scheme')))
        else:
            try:
                # What a browser would request (the URLs of clients are
                # in that form already; typed ones and redirects may not).
                target = urlnorm.from_text(url)
            except urlnorm.NoHost:
                d = defer.succeed((states.UNSUPPORTED, 'no host in the URL'))
            except urlnorm.InvalidURL as e:
                d = defer.succeed((states.UNAVAILABLE, 'invalid URL: %s' % e))
            else:
                try:
                    d = handler.check(target)
                except Exception:
                    d = defer.fail()
        d.addCallbacks(self._record, self._classify, (started,),
                       errbackArgs=(url, started))
        d.addBoth(self._ended)
        return d

    def _ended(self, result):
        self.in_progress -= 1
        return result

    def _classify(self, failure, url, started):
        if failure.check(defer.CancelledError,
                         error.ConnectingCancelledError):
            # Not an outcome: the check was stopped (not counted).
            return states.TEMPORARY, 'check cancelled'
        exc = failure.value
        state, reason = classify.exception(exc)
        if reason.startswith('check failed:'):
            log.failure('unexpected error checking {url}', failure, url=url)
        return self._record((state, reason), started)

    def _record(self, result, started):
        if self.metrics is not None:
            now = self.clock.seconds()
            self.metrics.record_check(result[0], now - started, now)
        return result

    def close(self):
        return self.http.close()
