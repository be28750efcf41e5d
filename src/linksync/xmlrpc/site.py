"""The HTTP face of the server: XML-RPC at / and /RPC2, pages for people.

``POST /`` and ``POST /RPC2`` are the XML-RPC endpoint; ``GET /`` is the
status page. Other pages hang below the root as children (see
:class:`Root.putChild`); the pages themselves are in linksync.server.web.
"""

from twisted.application import service
from twisted.internet import defer, endpoints
from twisted.logger import Logger
from twisted.protocols import policies
from twisted.web import http, pages, resource, server

from linksync.xmlrpc.resource import LimitedRequest, XMLRPCResource
from linksync.xmlrpc._channel import XMLRPCChannel

log = Logger()


class Root(resource.Resource):
    """Dispatches POST / to XML-RPC and GET / to the status page."""

    def __init__(self, rpc, status):
        super().__init__()
        self.rpc = rpc
        self.status = status
        self.putChild(b'RPC2', rpc)

    def getChild(self, path, request):
        if path == b'':
            return self.rpc if request.method == b'POST' else self.status
        return pages.notFound('Not found', 'No such page.')


class LinkSyncSite(server.Site):
    """A Site whose requests refuse bodies over max_request_bytes, and
    whose channels answer plain XML-RPC calls themselves.

    `root` is a :class:`Root` or an XMLRPCResource (then every path is
    XML-RPC); its XML-RPC resource is the site's ``xmlrpc``, which
    :class:`linksync.xmlrpc._channel.XMLRPCChannel` calls for POST / and POST
    /RPC2.
    """

    requestFactory = LimitedRequest
    protocol = XMLRPCChannel
    #: False: serve with twisted.web's own HTTPChannel and parse every
    #: request with the XML parser (no short ways), for bench/xmlrpc.py
    #: ``--fastpath-compare``, which measures what the short ways earn.
    fast_paths = True
    #: XML-RPC requests answered by the channel itself.
    answered_directly = 0

    def __init__(self, root, max_request_bytes, **kw):
        # XML-RPC bodies are never forms: skip Twisted's parsing of every
        # POST's Content-Type (through the email package, a sixth of the
        # time of a call).
        kw.setdefault('parsePOSTFormSubmission', False)
        super().__init__(root, **kw)
        self.max_request_bytes = max_request_bytes
        self.noisy = False
        if isinstance(root, Root):
            self.xmlrpc = root.rpc
        elif isinstance(root, XMLRPCResource):
            self.xmlrpc = root
        else:
            self.xmlrpc = None
        if not self.fast_paths:
            self.protocol = http.HTTPChannel
            if self.xmlrpc is not None:
                self.xmlrpc.plain_reader = False

    def acceptableProtocols(self):
        # The channel speaks HTTP/1.1 only: never negotiate HTTP/2.
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


class OpenConnections(policies.WrappingFactory):
    """Listens for a site and keeps its open connections, so that a
    service stopping can close them: a kept-alive connection would
    otherwise still reach the site (and a database that was closed)."""

    noisy = False

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

    def listen(self, reactor, endpoint, site):
        self.endpoint = endpoint
        self.connections = OpenConnections(site)
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
