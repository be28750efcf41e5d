"""Checking mailto: URLs: the address syntax and the domain's mail records.

Every address of the URL must be syntactically valid and its domain must
have an MX record (a null MX, RFC 7505, means it takes no mail) or,
failing that, an address record. No mail is sent and no SMTP connection is
opened. Look-ups use Twisted's own DNS client (twisted.names), under the
checker's timeouts on its clock: the look-ups of each domain within the
connect timeout (the time allowed to resolve a host), the whole check within
the total timeout.

>>> addresses('mailto:joe@example.com,ann@example.org?subject=hi')
['joe@example.com', 'ann@example.org']
>>> addresses('mailto:?to=joe%40example.com')
['joe@example.com']
"""

import re
import urllib.parse

from twisted.internet import defer
from twisted.names import dns
from twisted.python import failure

from linksync import states
from linksync.server.checker import classify
from linksync.server.checker.connector import dns_timeouts, no_answer

_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}|\"[^\"]{0,62}\"")
_LABEL = re.compile(r'(?!-)[A-Za-z0-9-]{1,63}(?<!-)')


def addresses(url):
    """The addresses of a mailto URL (the path and any ``to`` fields)."""
    _, _, rest = url.partition(':')
    path, _, query = rest.partition('?')
    found = [a for a in urllib.parse.unquote(path).split(',') if a.strip()]
    for key, value in urllib.parse.parse_qsl(query):
        if key.lower() == 'to':
            found.extend(a for a in value.split(',') if a.strip())
    return [a.strip() for a in found]


def domain_of(address):
    """The domain of a syntactically valid address; ValueError otherwise."""
    local, at, domain = address.rpartition('@')
    if not at or not _LOCAL.fullmatch(local) or local.startswith('.') \
            or local.endswith('.') or '..' in local:
        raise ValueError('invalid e-mail address %r' % address[:100])
    domain = domain.rstrip('.')
    labels = domain.split('.')
    if len(domain) > 253 or len(labels) < 2 or \
            not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError('invalid domain in e-mail address %r' %
                         address[:100])
    return domain.lower()


class MailtoChecker:
    """Checks mailto URLs against the DNS, within the timeouts (seconds on
    `clock`)."""

    def __init__(self, resolver, clock, connect_timeout=10.0, timeout=30.0):
        self.resolver = resolver
        self.clock = clock
        self.connect_timeout = connect_timeout
        self.timeout = timeout

    def check(self, url):
        return self._check(url).addTimeout(
            self.timeout, self.clock, onTimeoutCancel=_no_answer(self.timeout))

    @defer.inlineCallbacks
    def _check(self, url):
        found = addresses(url)
        if not found:
            raise classify.Unavailable('no e-mail address in the URL')
        domains = []
        for address in found:
            try:
                domain = domain_of(address)
            except ValueError as e:
                raise classify.Unavailable(str(e)) from None
            if domain not in domains:
                domains.append(domain)
        reasons = []
        for domain in domains:
            reason = yield self.check_domain(domain).addTimeout(
                self.connect_timeout, self.clock,
                onTimeoutCancel=_no_answer(self.connect_timeout))
            reasons.append(reason)
        return states.OK, '; '.join(reasons)

    @defer.inlineCallbacks
    def check_domain(self, domain):
        timeouts = dns_timeouts(self.connect_timeout)
        try:
            answers, _, _ = yield self.resolver.lookupMailExchange(domain,
                                                                   timeouts)
            exchanges = [r.payload for r in answers if r.type == dns.MX]
            if exchanges:
                best = min(exchanges, key=lambda mx: mx.preference)
                if str(best.name) in ('', '.'):
                    raise classify.Unavailable(
                        '%s accepts no mail (null MX)' % domain)
                return '%s: mail exchanger %s' % (domain, best.name)
            answers, _, _ = yield self.resolver.lookupAddress(domain,
                                                              timeouts)
            if any(r.type == dns.A for r in answers):
                return '%s: no MX, has an address' % domain
        except classify.DNS_ERRORS as e:
            raise classify.dns_failure(e, 'mail domain', domain) from None
        raise classify.Unavailable(
            'DNS: %s has no MX or address record' % domain)


def _no_answer(budget):
    def translate(result, timeout):
        if isinstance(result, failure.Failure):
            raise classify.Temporary(no_answer(budget))
        return result
    return translate
