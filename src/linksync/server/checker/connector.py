"""Resolving a host, vetting its address and connecting: one path for all.

Every connection the checker opens (HTTP, HTTPS, FTP) goes through
:meth:`Connector.connect`:

1. the host name is resolved with Twisted's own DNS client
   (:mod:`twisted.names`, no thread per look-up; the hosts file first);
2. the address is vetted by the network policy (linksync.server.checker.netpolicy), and
   refused as ``unsupported protocol`` when it is not allowed;
3. a TCP connection is opened to exactly that address (no second look-up a
   DNS trick could answer differently), within the connect timeout measured
   on the injected clock; HTTPS wraps it in TLS for the host name.

The connect timeout covers the look-up too: a name server that does not
answer within it reads "DNS: no answer from the name server within N s",
not as a connection that timed out.
"""

import socket

from twisted.internet import defer, endpoints
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.names import cache, hosts, resolve
from twisted.names import client as dns_client
from twisted.names import dns
from twisted.python import failure

from linksync.server.checker import classify


def make_resolver(servers=None):
    """A twisted.names resolver: the hosts file, then `servers` (only they:
    /etc/resolv.conf is not read then) or those of /etc/resolv.conf."""
    if not servers:
        return dns_client.createResolver()
    return resolve.ResolverChain([
        hosts.Resolver(b'/etc/hosts'), cache.CacheResolver(),
        dns_client.Resolver(servers=[tuple(s) for s in servers])])


def dns_timeouts(budget):
    """The retry timeouts of a twisted.names query (its own default: 1, 3,
    11 and 45 s) whose last one outlasts `budget`, so that the caller's
    timeout on its clock, with its reason, ends a silent look-up."""
    return (1, 3, 11, max(45, int(budget) + 1))


def no_answer(budget):
    """The reason of a look-up that had no answer within `budget` s."""
    return 'DNS: no answer from the name server within %g s' % budget


def _addresses(answers, name, rtype):
    """The addresses of `name` among the answers, following CNAMEs."""
    name = name.lower()
    for _ in range(10):
        found = [r.payload.dottedQuad() if rtype == dns.A
                 else socket.inet_ntop(socket.AF_INET6, r.payload.address)
                 for r in answers if r.type == rtype
                 and str(r.name).lower() == name]
        if found:
            return found
        aliases = [str(r.payload.name).lower() for r in answers
                   if r.type == dns.CNAME and str(r.name).lower() == name]
        if not aliases:
            return []
        name = aliases[0]
    return []


class Connector:
    """Resolves, vets and connects, within the connect timeout."""

    def __init__(self, reactor, clock, policy, resolver=None,
                 connect_timeout=10.0):
        self.reactor = reactor
        self.clock = clock
        self.policy = policy
        self.resolver = resolver if resolver is not None else make_resolver()
        self.connect_timeout = connect_timeout

    @defer.inlineCallbacks
    def resolve(self, host):
        """The first address of `host` (an IP address is its own)."""
        if not host:
            raise classify.Unsupported('no host in the URL')
        host = host.strip('[]')
        if isIPAddress(host) or isIPv6Address(host):
            return host
        name = host.rstrip('.')
        timeouts = dns_timeouts(self.connect_timeout)
        try:
            result = yield self.resolver.lookupAddress(name, timeouts)
            found = _addresses(result[0], name, dns.A)
            if not found:
                result = yield self.resolver.lookupIPV6Address(name,
                                                               timeouts)
                found = _addresses(result[0], name, dns.AAAA)
        except classify.DNS_ERRORS as e:
            raise classify.dns_failure(e, 'host name', name) from None
        if not found:
            raise classify.Unavailable('DNS: %s has no address' % name)
        return found[0]

    def vet(self, address):
        """Raise Unsupported when the policy refuses `address`."""
        refusal = self.policy.refusal(address)
        if refusal is not None:
            raise classify.Unsupported(refusal)

    def connect(self, host, port, factory, tls_creator=None):
        """Connect `factory` to host:port; a Deferred firing the protocol.

        Fails with classify errors (Unsupported for a refused address,
        TimedOut after the connect timeout, ...).
        """
        resolving = [True]

        @defer.inlineCallbacks
        def attempt():
            address = yield self.resolve(host)
            resolving.clear()
            self.vet(address)
            # The endpoint's own timeout (reactor time) is only a backstop;
            # the timeout below, on the injected clock, comes first.
            if isIPv6Address(address):
                endpoint = endpoints.TCP6ClientEndpoint(
                    self.reactor, address, port,
                    timeout=self.connect_timeout + 30)
            else:
                endpoint = endpoints.TCP4ClientEndpoint(
                    self.reactor, address, port,
                    timeout=self.connect_timeout + 30)
            if tls_creator is not None:
                endpoint = endpoints.wrapClientTLS(tls_creator, endpoint)
            protocol = yield endpoint.connect(factory)
            return protocol

        connect_timed_out = classify.on_timeout(
            'connect timed out after %g s' % self.connect_timeout)

        def timed_out(result, timeout):
            if resolving and isinstance(result, failure.Failure):
                # Not a host that did not answer: no GET is tried after it.
                raise classify.Temporary(no_answer(self.connect_timeout))
            return connect_timed_out(result, timeout)
        return attempt().addTimeout(self.connect_timeout, self.clock,
                                    onTimeoutCancel=timed_out)
