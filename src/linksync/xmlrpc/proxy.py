"""Calling a client back: the XML-RPC client the server uses.

The syncer fetches a client's links with ``xmlrpc_getAllLinks`` and both the
syncer and the notifier push states with ``updateManyStates``. A client is
a remote party the server does not control, so every call here has:

* a connect timeout and a total timeout;
* a limit on the size of the answer (gzip answers are inflated up to the
  same limit), enforced while it arrives, and optionally on the number of
  values it holds (``getAllLinks`` of a client gone mad);
* incremental, defused parsing: the answer is parsed chunk by chunk as it
  arrives (a large answer never blocks the reactor for long) and DTDs and
  entities are refused;
* a :class:`CallbackError` whose message names the client's URL and the
  problem, for every way the call can fail (a Fault from the client is
  passed on as :class:`CallbackFault`, a subclass);
* optionally an address policy (``make_agent(policy=...)``): the host is
  resolved, each address it resolved to is vetted by the policy, and the
  connection goes to exactly an address it allows (no second look-up a
  DNS trick could answer differently); when it allows none, the call fails
  with :class:`CallbackRefused`, naming the reason, before anything is
  sent. A policy is any object with ``refusal(address) -> None or text``
  (the server passes its --allow-network policy).
"""

import io
import xmlrpc.client
import zlib

from defusedxml.xmlrpc import DefusedExpatParser
from twisted.internet import defer, endpoints, error, protocol
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.interfaces import (IResolutionReceiver,
                                         IStreamClientEndpoint)
from twisted.logger import Logger
from twisted.python import failure
from twisted.web import client as web_client
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from linksync import __version__

DEFAULT_TIMEOUT = 120
DEFAULT_CONNECT_TIMEOUT = 30
DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024
USER_AGENT = 'linksync/%s (link monitoring server)' % __version__

log = Logger()

#: Fault codes and texts by which servers say "no such method".
_NOT_FOUND_CODES = (-32601, 8001)
_NOT_FOUND_TEXTS = ('not found', 'not supported', 'no such method',
                    'unknown method', 'does not exist', 'not defined')


_STALE_CONNECTION = (web_client.ResponseNeverReceived,
                     web_client.RequestNotSent,
                     web_client.RequestTransmissionFailed)


def _cancelled(failure):
    """True when a request failed because its caller cancelled it."""
    return any(reason.check(defer.CancelledError)
               for reason in getattr(failure.value, 'reasons', ()))


def _no_answer(result, timeout):
    """The ``onTimeoutCancel`` of a call: a call the timeout cancelled
    fails with TimeoutError (whatever failure the cancellation left)."""
    if isinstance(result, failure.Failure):
        raise defer.TimeoutError(timeout)
    return result


class CallbackError(Exception):
    """A call to a client failed; the message says how."""


class CallbackHTTPError(CallbackError):
    """The other side answered with an HTTP status other than 200
    (`code`: 401 for refused credentials, 503, ...)."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


class CallbackConnectionError(CallbackError):
    """No answer: refused, unknown host, cut connection or time limit
    (worth trying again later). `refused`: the request was not sent."""

    def __init__(self, message, refused=False):
        super().__init__(message)
        self.refused = refused


class CallbackRefused(CallbackConnectionError):
    """The address policy refused every address of the host: nothing was
    sent (try again once the policy opens it)."""

    def __init__(self, message):
        super().__init__(message, refused=True)


class CallbackFault(CallbackError):
    """The client answered with an XML-RPC Fault."""

    def __init__(self, url, method, fault):
        super().__init__('%s answered %s with fault %s: %s' % (
            url, method, fault.faultCode, fault.faultString))
        self.fault = fault

    @property
    def method_not_found(self):
        text = str(self.fault.faultString).lower()
        return self.fault.faultCode in _NOT_FOUND_CODES or \
            any(t in text for t in _NOT_FOUND_TEXTS)


class _CountingUnmarshaller(xmlrpc.client.Unmarshaller):
    """An Unmarshaller refusing answers of more than `max_values` values."""

    def __init__(self, max_values):
        super().__init__(use_builtin_types=True)
        # An array of N values is itself one more value.
        self.remaining = max_values + 1

    def end(self, tag):
        if tag == 'value':
            self.remaining -= 1
            if self.remaining < 0:
                raise _TooMany()
        return super().end(tag)


class _ResponseParser(protocol.Protocol):
    """Parses an XML-RPC response body as it arrives, within a size limit."""

    def __init__(self, finished, limit, gzipped, describe, max_values=None):
        self.finished = finished
        self.limit = limit
        self.max_values = max_values
        self.describe = describe
        self.received = 0
        self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) \
            if gzipped else None
        if max_values is None:
            self.unmarshaller = xmlrpc.client.Unmarshaller(
                use_builtin_types=True)
        else:
            self.unmarshaller = _CountingUnmarshaller(max_values)
        self.parser = DefusedExpatParser(self.unmarshaller, forbid_dtd=True)
        self.error = None

    def dataReceived(self, data):
        if self.error is not None:
            return
        try:
            if self.inflater is not None:
                data = self._inflate(data)
            self.received += len(data)
            if self.received > self.limit:
                raise _TooLarge()
            self.parser.feed(data)
        except _TooLarge:
            self._fail(CallbackError('%s: the answer is larger than %d bytes'
                                     % (self.describe(), self.limit)))
        except _TooMany:
            self._fail(CallbackError('%s: the answer holds more than %d '
                                     'values' % (self.describe(),
                                                 self.max_values)))
        except Exception as e:
            self._fail(CallbackError('%s: not a well-formed XML-RPC answer '
                                     '(%s: %s)' % (self.describe(),
                                                   type(e).__name__, e)))

    def _inflate(self, data):
        """Inflate the next bytes of a gzip answer, within the limit; a
        new gzip member may start where one ends (RFC 1952)."""
        parts = []
        room = self.limit - self.received + 1
        while True:
            if room <= 0:
                # (max_length 0 would mean no limit at all.)
                raise _TooLarge()
            part = self.inflater.decompress(data, room)
            if self.inflater.unconsumed_tail:
                raise _TooLarge()
            parts.append(part)
            room -= len(part)
            if not self.inflater.eof:
                break
            data = self.inflater.unused_data
            self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            if not data:
                break
        return b''.join(parts)

    def _fail(self, exc):
        self.error = exc
        self.transport.stopProducing()

    def connectionLost(self, reason):
        if self.finished.called:
            return
        if self.error is not None:
            self.finished.errback(self.error)
            return
        if not reason.check(web_client.ResponseDone,
                            web_client.PotentialDataLoss):
            self.finished.errback(CallbackError(
                '%s: the answer was cut off (%s)' % (
                    self.describe(), reason.getErrorMessage())))
            return
        try:
            self.parser.close()
            result = self.unmarshaller.close()
        except xmlrpc.client.Fault as fault:
            self.finished.errback(fault)
            return
        except Exception as e:
            self.finished.errback(CallbackError(
                '%s: not a well-formed XML-RPC answer (%s: %s)' % (
                    self.describe(), type(e).__name__, e)))
            return
        self.finished.callback(result[0] if len(result) == 1 else result)


class _TooLarge(Exception):
    pass


class _TooMany(Exception):
    pass


def make_pool(reactor, persistent=True):
    """The connection pool of make_agent; its owner closes it when done
    (``pool.closeCachedConnections()``)."""
    pool = web_client.HTTPConnectionPool(reactor, persistent=persistent)
    pool.maxPersistentPerHost = 2
    pool.retryAutomatically = False
    factory = getattr(pool, '_factory', None)
    if isinstance(factory, type):
        # Twisted logs "Starting factory" and "Stopping factory" at info
        # level for every connection: two lines a call in the log.
        pool._factory = type('QuietHTTPClientFactory', (factory,),
                             {'noisy': False})
    return pool


def make_agent(reactor, connect_timeout=DEFAULT_CONNECT_TIMEOUT,
               persistent=True, tls_policy=None, pool=None, policy=None,
               resolver=None):
    """A Twisted HTTP Agent for calling clients (keep-alive pool).

    With `policy`, every connection goes through :class:`VettedEndpoints`:
    to an address of the host that ``policy.refusal`` allows, resolved by
    `resolver` (an IHostnameResolver; default: the reactor's).
    """
    if pool is None:
        pool = make_pool(reactor, persistent)
    if policy is not None:
        return web_client.Agent.usingEndpointFactory(
            reactor, VettedEndpoints(reactor, policy, connect_timeout,
                                     tls_policy, resolver), pool=pool)
    kw = {'connectTimeout': connect_timeout, 'pool': pool}
    if tls_policy is not None:
        kw['contextFactory'] = tls_policy
    return web_client.Agent(reactor, **kw)


@implementer(IAgentEndpointFactory)
class VettedEndpoints:
    """The endpoints of an Agent whose connections an address policy
    vets, on the address the host resolved to, at connect time."""

    def __init__(self, reactor, policy, connect_timeout=DEFAULT_CONNECT_TIMEOUT,
                 tls_policy=None, resolver=None):
        self.reactor = reactor
        self.policy = policy
        self.connect_timeout = connect_timeout
        self.tls_policy = tls_policy
        self.resolver = resolver

    def endpointForURI(self, uri):
        if uri.scheme not in (b'http', b'https'):
            raise web_client.SchemeNotSupported(
                'unsupported scheme: %r' % (uri.scheme,))
        tls = None
        if uri.scheme == b'https':
            tls_policy = self.tls_policy or \
                web_client.BrowserLikePolicyForHTTPS()
            tls = tls_policy.creatorForNetloc(uri.host, uri.port)
        return _VettedEndpoint(self, uri.host.decode('ascii'), uri.port,
                               tls)


@implementer(IResolutionReceiver)
class _Addresses:
    """Collects the addresses of a host name resolution."""

    def __init__(self):
        self.addresses = []
        self.done = defer.Deferred()

    def resolutionBegan(self, resolution):
        pass

    def addressResolved(self, address):
        self.addresses.append(address.host)

    def resolutionComplete(self):
        self.done.callback(self.addresses)


@implementer(IStreamClientEndpoint)
class _VettedEndpoint:
    """Resolve, vet, connect to exactly the address vetted."""

    def __init__(self, factory, host, port, tls):
        self.factory = factory
        self.host = host.strip('[]')
        self.port = port
        self.tls = tls

    def _resolve(self):
        if isIPAddress(self.host) or isIPv6Address(self.host):
            return defer.succeed([self.host])
        receiver = _Addresses()
        resolver = self.factory.resolver or self.factory.reactor.nameResolver
        resolver.resolveHostName(receiver, self.host, self.port)
        return receiver.done

    @defer.inlineCallbacks
    def connect(self, protocol_factory):
        addresses = yield self._resolve()
        if not addresses:
            raise error.DNSLookupError(self.host)
        policy = self.factory.policy
        refusals = [policy.refusal(address) for address in addresses]
        allowed = [a for a, r in zip(addresses, refusals) if r is None]
        if not allowed:
            reason = refusals[0]
            if self.host != addresses[0]:
                reason = '%s (the address of %s)' % (reason, self.host)
            log.warn('refused to connect to {host}:{port}: {reason}',
                     host=self.host, port=self.port, reason=reason)
            raise CallbackRefused(reason)
        address = allowed[0]
        kind = endpoints.TCP6ClientEndpoint if isIPv6Address(address) \
            else endpoints.TCP4ClientEndpoint
        endpoint = kind(self.factory.reactor, address, self.port,
                        timeout=self.factory.connect_timeout)
        if self.tls is not None:
            endpoint = endpoints.wrapClientTLS(self.tls, endpoint)
        connected = yield endpoint.connect(protocol_factory)
        return connected


class CallbackProxy:
    """Calls XML-RPC methods on one client's callback URL."""

    def __init__(self, url, reactor, agent=None, timeout=DEFAULT_TIMEOUT,
                 max_response_bytes=DEFAULT_MAX_RESPONSE_BYTES,
                 user_agent=USER_AGENT):
        self.url = url
        self.user_agent = user_agent
        self.reactor = reactor
        self.agent = agent if agent is not None else make_agent(reactor)
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes

    def __repr__(self):
        return '<CallbackProxy %s>' % self.url

    def call(self, method, *params, max_values=None):
        """Call `method`; a Deferred firing with the result.

        Fails with CallbackFault when the client answers a Fault, and with
        CallbackError for every other problem, among them an answer holding
        more than `max_values` values (when given).
        """
        try:
            body = xmlrpc.client.dumps(params, method, encoding='utf-8',
                                       allow_none=False).encode('utf-8')
            url = self.url.encode('ascii')
        except (TypeError, OverflowError, UnicodeError) as e:
            return defer.fail(CallbackError(
                'cannot call %s on %s: %s' % (method, self.url, e)))
        headers = Headers({
            b'content-type': [b'text/xml; charset=utf-8'],
            b'user-agent': [self.user_agent.encode('ascii')],
            b'accept-encoding': [b'gzip'],
        })
        describe = lambda: '%s (%s)' % (self.url, method)  # noqa: E731

        # Set when the call is cancelled, by the caller or at the timeout:
        # Twisted reports a request cancelled while connecting as a DNS
        # failure, say, so the failure cannot tell.
        cancelled = []

        def send(retry):
            d = self.agent.request(
                b'POST', url, headers,
                web_client.FileBodyProducer(io.BytesIO(body)))
            if retry:
                # A kept-alive connection the client closed meanwhile (HTTP
                # 1.0 servers close without saying so) fails before any
                # answer: send once more, on a new connection. Both
                # callback methods are safe to repeat.
                def again(failure):
                    failure.trap(*_STALE_CONNECTION)
                    if cancelled or _cancelled(failure):
                        return failure
                    return send(False)
                d.addErrback(again)
            return d
        try:
            d = send(True)
        except Exception as e:
            return defer.fail(CallbackError('%s: %s' % (describe(), e)))
        d.addCallback(self._read, describe, max_values)

        def settle(result):
            if cancelled and isinstance(result, failure.Failure):
                return failure.Failure(defer.CancelledError())
            return result
        d.addBoth(settle)

        def cancel(call):
            cancelled.append(True)
            d.cancel()
        call = defer.Deferred(cancel)
        d.chainDeferred(call)
        # The timeout cancels `call` (on self.reactor, the clock of the
        # tests); then, and only then (not when the caller cancels), the
        # CancelledError becomes a TimeoutError, which _explain words.
        call.addTimeout(self.timeout, self.reactor,
                        onTimeoutCancel=_no_answer)
        call.addErrback(self._explain, method, describe)
        return call

    def _read(self, response, describe, max_values=None):
        if response.code != 200:
            response.deliverBody(_Discard())
            raise CallbackHTTPError('%s: HTTP status %d %s' % (
                describe(), response.code,
                response.phrase.decode('latin-1', 'replace')), response.code)
        encoding = response.headers.getRawHeaders(b'content-encoding', [b''])
        gzipped = encoding[0].strip().lower() in (b'gzip', b'x-gzip')
        def cancel(d):
            if parser.transport is not None:
                parser.transport.stopProducing()
        finished = defer.Deferred(cancel)
        parser = _ResponseParser(finished, self.max_response_bytes, gzipped,
                                 describe, max_values)
        response.deliverBody(parser)
        return finished

    def _explain(self, fail, method, describe):
        if fail.check(xmlrpc.client.Fault):
            raise CallbackFault(self.url, method, fail.value)
        if fail.check(CallbackRefused):
            raise CallbackRefused('%s: %s' % (describe(), fail.value))
        if fail.check(CallbackError):
            return fail
        if fail.check(defer.TimeoutError):
            raise CallbackConnectionError(
                '%s: no answer within %s seconds' % (describe(),
                                                     self.timeout))
        if fail.check(defer.CancelledError):
            # The caller cancelled (the server is stopping): that is no
            # failure of the client's, and must not be retried as one.
            return fail
        if fail.check(error.ConnectionRefusedError):
            raise CallbackConnectionError('%s: connection refused'
                                          % describe(), refused=True)
        if fail.check(error.DNSLookupError):
            raise CallbackConnectionError('%s: unknown host' % describe())
        if fail.check(web_client.ResponseFailed):
            reasons = '; '.join(r.getErrorMessage()
                                for r in fail.value.reasons)
            raise CallbackConnectionError(
                '%s: the connection failed (%s)' % (describe(), reasons))
        if fail.check(error.ConnectError):
            raise CallbackConnectionError('%s: %s' % (
                describe(), fail.getErrorMessage()))
        raise CallbackError('%s: %s' % (describe(),
                                        fail.getErrorMessage()))

    # -- the callback methods of PROTOCOL.md ---------------------------------

    @defer.inlineCallbacks
    def get_all_links(self, client_id, password, max_links=None):
        """The client's links (list of str), type-checked.

        Calls ``xmlrpc_getAllLinks`` and falls back to ``getAllLinks`` when
        the client has no such method. With `max_links`, an answer holding
        more links fails as soon as that shows, before it is all read.
        """
        try:
            links = yield self.call('xmlrpc_getAllLinks', client_id,
                                    password, max_values=max_links)
        except CallbackFault as e:
            if not e.method_not_found:
                raise
            links = yield self.call('getAllLinks', client_id, password,
                                    max_values=max_links)
        if not isinstance(links, (list, tuple)):
            raise CallbackError('%s answered getAllLinks with %s, not an '
                                'array of URLs' % (self.url,
                                                   type(links).__name__))
        bad = next((link for link in links if not isinstance(link, str)),
                   None)
        if bad is not None:
            raise CallbackError('%s answered getAllLinks with an array '
                                'holding %r, not only strings' % (
                                    self.url, bad))
        return links

    def update_many_states(self, client_id, password, rows):
        """Send [[url, state, reason], ...]; the answer is ignored."""
        d = self.call('updateManyStates', client_id, password, rows)
        d.addCallback(lambda _: None)
        return d


class _Discard(protocol.Protocol):
    def dataReceived(self, data):
        pass

    def connectionLost(self, reason):
        pass
