"""Checking http: and https: URLs.

* HEAD first; GET when the server answers 405, 403 or 501 to HEAD (some
  servers refuse or break HEAD), reading the first bytes of the body only.
* Redirects are followed by hand, each hop a request of its own under the
  politeness rules of its host, up to a limit, with loops detected.
* Connections are kept alive and reused per host (a connection pool of at
  most ``per_host_connections`` idle connections per host).
* Every connection goes through linksync.connector (policy on the resolved
  address, connect timeout); each request has a total timeout.
* 429, and 503 with Retry-After, pause the host (linksync.politeness).
"""

import base64
import email.utils
import urllib.parse

from twisted.internet import defer, protocol
from twisted.internet._sslverify import IOpenSSLTrustRoot
from twisted.internet import ssl
from twisted.web import client as web_client
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from linksync import __version__, classify, deadline, urlnorm
from linksync.connector import CheckedEndpoint

USER_AGENT = ('linksync/%s (link monitoring; checks links registered by '
              'its clients)' % __version__)

#: Statuses after which a HEAD is retried as GET.
HEAD_REFUSED = frozenset((403, 405, 501))
REDIRECTS = frozenset((301, 302, 303, 307, 308))
#: Bytes of a GET body read (and thrown away) before the connection is
#: dropped; a body up to that size lets the connection be reused.
BODY_LIMIT = 16 * 1024


@implementer(IOpenSSLTrustRoot)
class ExtraTrust:
    """The platform's certificate authorities plus those of a PEM file."""

    def __init__(self, pem_path):
        from cryptography import x509
        with open(pem_path, 'rb') as f:
            data = f.read()
        try:
            self.certificates = x509.load_pem_x509_certificates(data)
        except ValueError:
            raise ValueError('no certificate in %s' % pem_path) from None

    def _addCACertsToContext(self, context):
        from OpenSSL import crypto
        context.set_default_verify_paths()
        store = context.get_cert_store()
        for cert in self.certificates:
            store.add_cert(crypto.X509.from_cryptography(cert))


@implementer(IAgentEndpointFactory)
class _EndpointFactory:
    def __init__(self, connector, trust_root):
        self.connector = connector
        self.trust_root = trust_root

    def endpointForURI(self, uri):
        host = uri.host.decode('ascii')
        tls = None
        if uri.scheme == b'https':
            tls = ssl.optionsForClientTLS(host.strip('[]'),
                                          trustRoot=self.trust_root)
        elif uri.scheme != b'http':
            raise web_client.SchemeNotSupported(uri.scheme)
        return CheckedEndpoint(self.connector, host, uri.port, tls)


class _FirstBytes(protocol.Protocol):
    """Reads a body up to a limit, then drops the connection."""

    def __init__(self, limit):
        self.limit = limit
        self.received = 0
        self.done = defer.Deferred(self._cancel)

    def _cancel(self, d):
        if self.transport is not None:
            self.transport.stopProducing()

    def dataReceived(self, data):
        self.received += len(data)
        if self.received > self.limit and self.transport is not None:
            self.transport.stopProducing()

    def connectionLost(self, reason):
        # A body cut short (or ended badly) does not change the verdict:
        # the status line and headers were already received.
        if not self.done.called:
            self.done.callback(self.received)


def retry_after(headers, now):
    """Seconds from a Retry-After header (delta or HTTP date), or None."""
    values = headers.getRawHeaders(b'retry-after')
    if not values:
        return None
    text = values[-1].decode('latin-1', 'replace').strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


def _request_target(url):
    """(URL without credentials as bytes, Authorization header or None)."""
    if '@' not in url:
        return url.encode('ascii'), None
    parts = urllib.parse.urlsplit(url)
    auth = None
    if '@' in parts.netloc:
        userinfo, _, hostport = parts.netloc.rpartition('@')
        user, _, password = userinfo.partition(':')
        credentials = '%s:%s' % (urllib.parse.unquote(user),
                                 urllib.parse.unquote(password))
        auth = b'Basic ' + base64.b64encode(credentials.encode('utf-8'))
        parts = parts._replace(netloc=hostport)
    return urllib.parse.urlunsplit(parts).encode('ascii'), auth


def redirect_target(current, location):
    """The normalised absolute URL a Location header points to."""
    text = location.decode('latin-1', 'replace').strip()
    text = urllib.parse.quote(text, safe="%/:=&?~#+!$,;'@()*[]")
    try:
        return urlnorm.normalize(urllib.parse.urljoin(current, text))
    except (urlnorm.InvalidURL, ValueError) as e:
        raise classify.Unavailable('invalid redirect target: %s' % e) \
            from None


class HTTPChecker:
    """Checks http(s) URLs with a shared, persistent connection pool."""

    def __init__(self, reactor, clock, politeness, connector, timeout=30.0,
                 max_redirects=10, user_agent=None, ca_file=None,
                 per_host_connections=2):
        self.clock = clock
        self.politeness = politeness
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.user_agent = (user_agent or USER_AGENT).encode('utf-8')
        # Shared by all requests (the Agent copies it before adding Host).
        self.headers = Headers({b'user-agent': [self.user_agent],
                                b'accept': [b'*/*']})
        trust = ExtraTrust(ca_file) if ca_file else None
        self.pool = web_client.HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = per_host_connections
        self.pool.cachedConnectionTimeout = 60
        self.agent = web_client.Agent.usingEndpointFactory(
            reactor, _EndpointFactory(connector, trust), pool=self.pool)

    @defer.inlineCallbacks
    def check(self, url):
        """(state, reason) of an http(s) URL (a Deferred)."""
        seen = {url}
        current = url
        redirects = 0
        while True:
            code, phrase, location = yield self.fetch(current)
            if code not in REDIRECTS or location is None:
                return classify.http_status(code, phrase, redirects)
            target = redirect_target(current, location)
            if target.split(':', 1)[0] not in ('http', 'https'):
                raise classify.Unsupported(
                    'redirected to an unsupported scheme: %s' % target[:200])
            if target in seen:
                raise classify.Unavailable(
                    'redirect loop at %s' % target[:200])
            if redirects >= self.max_redirects:
                raise classify.Unavailable(
                    'too many redirects (more than %d)' % self.max_redirects)
            seen.add(target)
            current = target
            redirects += 1

    @defer.inlineCallbacks
    def fetch(self, url):
        """(status, phrase, Location or None) of HEAD, or GET if refused."""
        host = urllib.parse.urlsplit(url).hostname
        if not host:
            raise classify.Unsupported('no host in the URL')
        result = yield self.request(b'HEAD', url, host)
        if result[0] in HEAD_REFUSED:
            result = yield self.request(b'GET', url, host)
        return result

    @defer.inlineCallbacks
    def request(self, method, url, host):
        """One request under the politeness rules and the total timeout:
        (status, phrase, Location or None)."""
        slot = yield self.politeness.acquire(host)
        try:
            result = yield deadline.within(
                self.clock, self._exchange(method, url, host), self.timeout,
                lambda: classify.TimedOut('no answer to %s within %g s' % (
                    method.decode('ascii'), self.timeout)))
        finally:
            slot.release()
        return result

    @defer.inlineCallbacks
    def _exchange(self, method, url, host):
        target, auth = _request_target(url)
        headers = self.headers
        if auth is not None:
            headers = headers.copy()
            headers.setRawHeaders(b'authorization', [auth])
        response = yield self.agent.request(method, target, headers)
        body = _FirstBytes(BODY_LIMIT)
        response.deliverBody(body)
        yield body.done
        code = response.code
        if code == 429 or (code == 503 and response.headers.hasHeader(
                b'retry-after')):
            self.politeness.pause(
                host, retry_after(response.headers, self.clock.seconds()))
        else:
            self.politeness.answered(host)
        location = response.headers.getRawHeaders(b'location')
        return code, response.phrase, location[-1] if location else None

    def close(self):
        return self.pool.closeCachedConnections()
