"""The HTTP face of the server: XML-RPC at any path, pages for people.

A POST to any path that is not a page is an XML-RPC call: ``/`` and
``/RPC2`` as well as ``/app/`` or ``/v2``, where installations of older
link checkers point (their clients keep working unchanged). ``GET /`` is
the status page. Pages hang below the root as children (see
:class:`Root.putChild`); the pages themselves are in linksync.server.web.
"""

from twisted.application import service
from twisted.internet import defer, endpoints
from twisted.logger import Logger
from twisted.protocols import policies
from twisted.web import http, pages, resource, server

from linksync.xmlrpc.resource import DEFAULT_REQUEST_DEADLINE, LimitedRequest

log = Logger()


class Root(resource.Resource):
    """Dispatches GET / to the status page, a page's path to the page, and
    a POST to any other path to XML-RPC."""

    def __init__(self, rpc, status):
        super().__init__()
        self.rpc = rpc
        self.status = status
        self.putChild(b'RPC2', rpc)

    def getChild(self, path, request):
        # Only paths that are no page's come here (the pages are children).
        if request.method == b'POST':
            return self.rpc
        if path == b'':
            return self.status
        return pages.notFound('Not found', 'No such page.')


class ReadingChannel(http.HTTPChannel):
    """An HTTPChannel that reads no further request while its client does
    not read the answers it was sent.

    Twisted's channel stops reading when the transport's send buffer fills
    up between two requests, but not when it fills up while a request is
    answered (the common case: an answer is written as the request is
    handled), and it then goes on with the requests it reads next: a
    client pipelining requests and reading nothing made the server buffer
    answer after answer without end (40 multicalls of 1000
    system.listMethods: 50 MB held for one connection). Here the channel
    stops reading at once, and a request that was read already waits
    (:meth:`hold`) until the client has read enough for the transport to
    take more; so a connection holds at most one answer beyond the
    transport's buffer. A client that reads nothing for the site's
    request deadline is disconnected.
    """

    _held = None
    _held_call = None

    def pauseProducing(self):
        super().pauseProducing()
        if self._handlingRequest and self._networkProducer is not None:
            self._networkProducer.pauseProducing()

    def resumeProducing(self):
        super().resumeProducing()
        held, self._held = self._held, None
        call, self._held_call = self._held_call, None
        if call is not None and call.active():
            call.cancel()
        if held is not None and not held.finished and \
                not held._disconnected:
            held.process()

    def hold(self, request):
        """True when `request` must wait for the client to read what it
        was sent; it is processed once the transport takes data again."""
        if not self._waitingForTransport:
            return False
        self._held = request
        deadline = getattr(self.site, 'request_deadline', None) or \
            DEFAULT_REQUEST_DEADLINE
        self._held_call = self.callLater(deadline, self._not_reading,
                                         deadline)
        return True

    def _not_reading(self, deadline):
        self._held_call = None
        self._held = None
        peer = getattr(self.transport.getPeer(), 'host', '-') \
            if self.transport is not None else '-'
        log.info('{peer} read none of its answers for {seconds} s: '
                 'disconnected', peer=peer, seconds=deadline)
        if self.transport is not None:
            self.transport.abortConnection()

    def connectionLost(self, reason):
        call, self._held_call = self._held_call, None
        if call is not None and call.active():
            call.cancel()
        self._held = None
        return super().connectionLost(reason)


class LinkSyncSite(server.Site):
    """A twisted.web Site whose requests refuse bodies over
    max_request_bytes.

    `root` is a :class:`Root` or an XMLRPCResource (then every path is
    XML-RPC). Every request goes through twisted.web's own HTTPChannel:
    a channel of our own answering plain XML-RPC calls (and a request
    reader of our own instead of expat) were measured with
    ``bench/xmlrpc.py --fastpath-compare`` on 2026-12-03 and removed for
    gaining under 20% on every workload (see the README).
    """

    requestFactory = LimitedRequest

    def protocol(self):
        # HTTP/1.1 only (see acceptableProtocols): the channel itself, not
        # Twisted's wrapper choosing between HTTP/1.1 and HTTP/2.
        return ReadingChannel()

    def __init__(self, root, max_request_bytes,
                 request_deadline=DEFAULT_REQUEST_DEADLINE, **kw):
        # XML-RPC bodies are never forms: skip Twisted's parsing of every
        # POST's Content-Type (through the email package, a sixth of the
        # time of a call).
        kw.setdefault('parsePOSTFormSubmission', False)
        super().__init__(root, **kw)
        self.max_request_bytes = max_request_bytes
        #: Seconds from a request line to the end of its body (LimitedRequest).
        self.request_deadline = request_deadline
        self.noisy = False

    def acceptableProtocols(self):
        # HTTP/1.1 only, never HTTP/2 (over TLS, when the h2 package is
        # there): LimitedRequest's limits are written for HTTPChannel.
        return [b'http/1.1']

    def log(self, request):
        # XML-RPC calls are logged by the XML-RPC resource, with the client
        # id and method; the access log would only repeat them.
        if request.method == b'POST' and request.code != 413:
            return
        peer = request.getClientAddress()
        log.info('{peer} {method} {path} {code}',
                 peer=getattr(peer, 'host', '-'),
                 method=request.method.decode('ascii', 'replace'),
                 path=request.uri.decode('ascii', 'replace')[:200],
                 code=request.code)


#: Open connections from one address, at most (None: no limit).
DEFAULT_MAX_CONNECTIONS_PER_PEER = 100
#: Open connections in all, at most: below the common limit of 1024 open
#: files, so that the database, logs and outgoing checks still get some.
DEFAULT_MAX_CONNECTIONS = 900


class OpenConnections(policies.WrappingFactory):
    """Listens for a site and keeps its open connections, so that a
    service stopping can close them: a kept-alive connection would
    otherwise still reach the site (and a database that was closed).

    It also bounds them: at most `per_peer` open connections from one
    address and `total` in all (None: no bound). A connection over either
    bound is closed as soon as it is accepted, before a byte is read, and
    counted in ``refused``; those already open are not disturbed. (Twisted's
    own LimitConnectionsByPeer reads the peer of IPv4Address objects as a
    tuple, which they are not.)
    """

    noisy = False

    def __init__(self, wrappedFactory, per_peer=None, total=None):
        super().__init__(wrappedFactory)
        self.per_peer = per_peer
        self.total = total
        self.refused = 0
        self._by_peer = {}

    def buildProtocol(self, addr):
        host = getattr(addr, 'host', None)
        if self.total is not None and len(self.protocols) >= self.total or \
                self.per_peer is not None and host is not None and \
                self._by_peer.get(host, 0) >= self.per_peer:
            self.refused += 1
            if self.refused in (1, 10, 100) or self.refused % 1000 == 0:
                log.warn('refused {n} connection(s) over the limits (the '
                         'last from {peer}: {open} open from it, {all} in '
                         'all)', n=self.refused, peer=host,
                         open=self._by_peer.get(host, 0),
                         all=len(self.protocols))
            return None
        protocol = super().buildProtocol(addr)
        if protocol is not None and host is not None:
            protocol.linksync_peer = host
            self._by_peer[host] = self._by_peer.get(host, 0) + 1
        return protocol

    def unregisterProtocol(self, protocol):
        super().unregisterProtocol(protocol)
        host = getattr(protocol, 'linksync_peer', None)
        if host is not None:
            left = self._by_peer.get(host, 1) - 1
            if left > 0:
                self._by_peer[host] = left
            else:
                self._by_peer.pop(host, None)

    def open_from(self, host):
        """How many connections are open from `host`."""
        return self._by_peer.get(host, 0)

    def close_all(self):
        for protocol in list(self.protocols):
            protocol.transport.abortConnection()


class ListeningService(service.Service):
    """A service serving a web site on a Twisted endpoint.

    Subclasses call :meth:`listen` when they start; ``listening`` fires
    with the port, or fails when the endpoint cannot be listened on
    (``endpoint`` says which, for the error message). Stopping the
    service stops listening and closes the connections still open.
    """

    #: Logged once listening (a twisted.logger format: {host}, {port}).
    announcement = 'listening on http://{host}:{port}/'

    def __init__(self):
        self.port = None
        self.endpoint = None
        self.listening = defer.Deferred()
        self.connections = None

    def listen(self, reactor, endpoint, site, per_peer=None, total=None):
        """Listen on `endpoint` for `site`, with at most `per_peer` open
        connections from one address and `total` in all."""
        self.endpoint = endpoint
        self.connections = OpenConnections(site, per_peer, total)
        d = endpoints.serverFromString(reactor, endpoint).listen(
            self.connections)
        d.addCallbacks(self._listening, self._failed)

    def _listening(self, port):
        self.port = port
        address = port.getHost()
        log.info(self.announcement, host=address.host, port=address.port)
        self.listening.callback(port)

    def _failed(self, failure):
        log.error('cannot listen on {listen}: {error}', listen=self.endpoint,
                  error=failure.getErrorMessage())
        self.listening.errback(failure)

    @defer.inlineCallbacks
    def stopService(self):
        super().stopService()
        if self.port is not None:
            yield self.port.stopListening()
        if self.connections is not None:
            self.connections.close_all()
