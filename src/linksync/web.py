"""The HTTP face of the server: XML-RPC at / and /RPC2, pages for people.

``POST /`` and ``POST /RPC2`` are the XML-RPC endpoint; ``GET /`` is the
status page. Other pages hang below the root as children (see
:class:`Root.putChild`).
"""

import html

from twisted.logger import Logger
from twisted.web import resource, server

from linksync import __version__, xmlrpc
from linksync.rpcchannel import XMLRPCChannel

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
        return resource.NoResource('No such page.')


class StatusPage(resource.Resource):
    """A short page saying what this server holds."""

    isLeaf = True

    def __init__(self, session):
        super().__init__()
        self.session = session

    def render_GET(self, request):
        counts = self.session.read(
            lambda app: (len(app.urls), len(app.clients)))
        request.setHeader(b'content-type', b'text/html; charset=utf-8')
        return (
            '<!DOCTYPE html><html><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width">'
            '<title>linksync</title></head><body><h1>linksync %s</h1>'
            '<p>%d URLs monitored for %d clients.</p>'
            '<p>XML-RPC endpoint: <code>POST /RPC2</code></p>'
            '</body></html>' % (html.escape(__version__), *counts)
        ).encode('utf-8')


class LinkSyncSite(server.Site):
    """A Site whose requests refuse bodies over max_request_bytes, and
    whose channels answer plain XML-RPC calls themselves.

    `root` is a :class:`Root` or an XMLRPCResource (then every path is
    XML-RPC); its XML-RPC resource is the site's ``xmlrpc``, which
    :class:`linksync.rpcchannel.XMLRPCChannel` calls for POST / and POST
    /RPC2.
    """

    requestFactory = xmlrpc.LimitedRequest
    protocol = XMLRPCChannel
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
        elif isinstance(root, xmlrpc.XMLRPCResource):
            self.xmlrpc = root
        else:
            self.xmlrpc = None

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
