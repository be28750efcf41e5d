"""Checking http: and https: URLs.

* HEAD first; GET when HEAD answers anything but 2xx, 3xx or 401, times
  out or loses the connection (many servers refuse or break HEAD while GET
  works), reading the first bytes of the body only. A host whose HEAD
  answers were not taken twice in a row (it refuses HEAD, or its links
  are broken and GET says so again) is asked GET at once for its next
  checks, then HEAD again: the verdict is GET's either way, one request
  instead of two (HEAD stays first elsewhere: a GET of a page larger than
  the bytes read costs its connection).
* Redirects are followed by hand, each hop a request of its own under the
  politeness rules of its host, up to a limit, with loops detected; the
  cookies they set go back with the next requests of the same check
  (linksync.server.checker.schemes.cookies), as a browser's would.
* Connections are kept alive and reused per host (linksync.server.checker.schemes.http11:
  a lean HTTP/1.1 client and a pool of at most ``per_host_connections``
  idle connections per host).
* Every connection goes through linksync.server.checker.connector (policy on the resolved
  address, connect timeout); each request has a total timeout.
* 429, and 503 with Retry-After, pause the host (linksync.server.checker.politeness).
"""

import base64
import email.utils
import urllib.parse

from twisted.internet import defer, error, ssl
from twisted.internet._sslverify import IOpenSSLTrustRoot
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.logger import Logger
from twisted.python import failure
from zope.interface import implementer

from linksync import __version__, urlnorm
from linksync.server.checker import classify
from linksync.server.checker.schemes import http11
from linksync.server.checker.schemes.cookies import CookieJar

#: A browser-compatible agent: servers that turn away agents not starting
#: with "Mozilla/5.0" then answer as they would to a browser.
USER_AGENT = ('Mozilla/5.0 (compatible; linksync/%s; '
              '+https://pypi.org/project/linksync/)' % __version__)


def head_trusted(code):
    """True when a HEAD status is taken as the answer (no GET follows)."""
    return 200 <= code < 400 or code == 401

#: HEAD answers in a row from one host that were not taken as the answer
#: (a GET followed each) after which that host is asked GET first ...
GET_FIRST_AFTER = 2
#: ... for this many requests, before HEAD is tried again.
GET_FIRST_RUN = 16
#: Hosts whose HEAD answers are remembered (the table is emptied when full).
HOSTS_REMEMBERED = 10_000

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


log = Logger()


@implementer(IOpenSSLClientConnectionCreator)
class ExplainedTLS:
    """Twisted's client TLS for `host` (SNI, the chain checked against
    `trust`, the name against the certificate) whose failures say what is
    wrong, as a browser's warning does: "TLS: certificate is self-signed",
    "... expired on 2025-01-01", "... is for other.example, not
    www.example.com" (linksync.server.checker.classify), instead of
    OpenSSL's "certificate verify failed" for all of them.

    The verification callback Twisted sets on each connection is replaced
    by one making the same checks (OpenSSL's verdict on the chain, then
    service_identity's on the server's certificate) that fails the
    connection with a classify.Unavailable naming the first problem.
    """

    def __init__(self, host, trust=None):
        from service_identity.hazmat import DNS_ID, IPAddress_ID
        from twisted.internet.abstract import isIPAddress, isIPv6Address
        self.host = host
        self.options = ssl.optionsForClientTLS(host, trustRoot=trust)
        # (The name as Twisted encoded it for SNI, IDNA for a non-ASCII one.)
        ascii_host = getattr(self.options, '_hostnameASCII', host)
        self.identity = IPAddress_ID(host) \
            if isIPAddress(host) or isIPv6Address(host) else DNS_ID(ascii_host)

    def clientConnectionForTLS(self, tls_protocol):
        from OpenSSL import SSL
        connection = self.options.clientConnectionForTLS(tls_protocol)
        connection.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                              self._verifier(tls_protocol))
        return connection

    def _verifier(self, tls_protocol):
        protocol = [tls_protocol]   # dropped once judged (no cycle left)

        def verify(connection, cert, errno, depth, ok):
            try:
                if ok and depth:
                    return True
                if not ok:
                    reason = classify.tls_verify_reason(errno, cert, depth)
                else:
                    reason = self._name_problem(cert)
                    if reason is None:
                        protocol.clear()
                        return True
                if protocol:
                    protocol.pop().failVerification(failure.Failure(
                        classify.Unavailable(reason)))
            except Exception:
                # An exception escaping an OpenSSL callback is lost.
                log.failure('while verifying the certificate of {host}',
                            host=self.host)
            protocol.clear()
            return False
        return verify

    def _name_problem(self, cert):
        """None when the server's certificate is for the host, else the
        reason."""
        from service_identity import VerificationError
        from service_identity.hazmat import verify_service_identity
        from service_identity.pyopenssl import extract_patterns
        try:
            verify_service_identity(extract_patterns(cert), [self.identity],
                                    [])
        except VerificationError:
            return classify.tls_name_reason(
                classify.certificate_names(cert.to_cryptography()),
                self.host)
        return None


def retry_after(headers, now):
    """Seconds from a Retry-After header (delta or HTTP date), or None.

    `headers` maps lower-case header names to values (bytes).
    """
    value = headers.get(b'retry-after')
    if not value:
        return None
    text = value.decode('latin-1', 'replace').strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


def _request(method, parts, user_agent, cookie=None):
    """The bytes of a request for the split URL `parts` (with the
    ``Cookie`` header value `cookie`)."""
    netloc = parts.netloc
    auth = b''
    if '@' in netloc:
        userinfo, _, netloc = netloc.rpartition('@')
        user, _, password = userinfo.partition(':')
        credentials = '%s:%s' % (urllib.parse.unquote(user),
                                 urllib.parse.unquote(password))
        auth = b'Authorization: Basic ' + base64.b64encode(
            credentials.encode('utf-8')) + b'\r\n'
    target = parts.path or '/'
    if parts.query:
        target += '?' + parts.query
    if cookie:
        auth += b'Cookie: ' + cookie + b'\r\n'
    return b''.join((method, b' ', target.encode('ascii'),
                     b' HTTP/1.1\r\nHost: ', netloc.encode('ascii'),
                     b'\r\nUser-Agent: ', user_agent,
                     b'\r\nAccept: */*\r\n', auth, b'\r\n'))


def redirect_target(current, location):
    """The normalised absolute URL a Location header points to, read as a
    browser reads it: UTF-8 (else latin-1), relative to `current`, its
    host IDNA-encoded and the rest percent-encoded.

    >>> redirect_target('http://a.test/x/y', 'caf\xc3\xa9 1'.encode('latin-1'))
    'http://a.test/x/caf%C3%A9%201'
    >>> redirect_target('http://a.test/', 'http://b\xfccher.test/'.encode('utf-8'))
    'http://xn--bcher-kva.test/'
    """
    try:
        text = location.decode('utf-8')
    except UnicodeDecodeError:
        text = location.decode('latin-1')
    text = text.strip(' \t\r\n\f\v')
    try:
        return urlnorm.from_text(urllib.parse.urljoin(current, text))
    except (urlnorm.InvalidURL, ValueError) as e:
        raise classify.Unavailable('invalid redirect target: %s' % e) \
            from None


class HTTPChecker:
    """Checks http(s) URLs with a shared, persistent connection pool."""

    def __init__(self, reactor, clock, politeness, connector, timeout=30.0,
                 max_redirects=20, user_agent=None, ca_file=None,
                 per_host_connections=2):
        self.clock = clock
        self.politeness = politeness
        self.connector = connector
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.user_agent = (user_agent or USER_AGENT).encode('utf-8')
        self.trust = ExtraTrust(ca_file) if ca_file else None
        self._tls = {}
        #: host -> HEAD answers in a row not taken; host -> requests left
        #: that ask GET first (GET_FIRST_AFTER; None: HEAD always first).
        self.get_first_after = GET_FIRST_AFTER
        self._head_misses = {}
        self._get_first = {}
        self.pool = http11.Pool(clock, self._connect,
                                max_idle=per_host_connections)

    def _connect(self, key, factory):
        scheme, host, port = key
        tls = self._tls_options(host) if scheme == 'https' else None
        return self.connector.connect(host, port, factory, tls)

    def _tls_options(self, host):
        options = self._tls.get(host)
        if options is None:
            if len(self._tls) >= 10_000:
                self._tls.clear()
            options = self._tls[host] = ExplainedTLS(host, self.trust)
        return options

    @defer.inlineCallbacks
    def check(self, url):
        """(state, reason) of an http(s) URL (a Deferred).

        One generator per check; the requests below are plain Deferred
        chains (this is the checker's hot path).
        """
        # The cookies of this check (made on the first Set-Cookie), and
        # what the jar held when each URL was requested: a URL seen again
        # with the same cookies is a loop.
        jar = None
        seen = {url: None}
        current = url
        redirects = 0
        while True:
            parts = urllib.parse.urlsplit(current)
            host = parts.hostname
            if not host:
                raise classify.Unsupported('no host in the URL')
            slot = yield self.politeness.acquire(host)
            # (Which request goes first is decided when the host's turn
            # comes: by then the answers of its earlier checks are known.)
            get_first = self._asks_get_first(host)
            try:
                code, phrase, location, paused, cookies, challenged = \
                    yield self._start(slot, b'GET' if get_first else b'HEAD',
                                      parts, host, jar)
            except (classify.TimedOut, http11.StaleConnection,
                    http11.ParseError,
                    ConnectionError, error.ConnectionLost,
                    error.ConnectionDone):
                if get_first:
                    raise
                code = paused = cookies = None
            if cookies:
                jar = self._keep(jar, parts, cookies)
            # A host that asked to wait (429, 503 with Retry-After) is not
            # asked again at once.
            if get_first or paused:
                pass
            elif code is not None and head_trusted(code):
                self._head_misses.pop(host, None)
            else:
                self._head_missed(host)
                code, phrase, location, paused, cookies, challenged = \
                    yield self.request(b'GET', parts, jar)
                if cookies:
                    jar = self._keep(jar, parts, cookies)
            if code not in REDIRECTS or location is None:
                return classify.http_status(code, phrase, redirects,
                                            challenged)
            target = redirect_target(current, location)
            if target.split(':', 1)[0] not in ('http', 'https'):
                raise classify.Unsupported(
                    'redirected to an unsupported scheme: %s' % target[:200])
            held = jar.state() if jar is not None else None
            if target in seen and seen[target] == held:
                raise classify.Unavailable(
                    'redirect loop at %s' % target[:200])
            if redirects >= self.max_redirects:
                raise classify.Unavailable(
                    'too many redirects (more than %d)' % self.max_redirects)
            seen[target] = held
            current = target
            redirects += 1

    def _asks_get_first(self, host):
        """True when the next request to `host` is a GET at once (its
        HEAD answers were not taken lately); counts it."""
        left = self._get_first.get(host)
        if not left:
            return False
        if left > 1:
            self._get_first[host] = left - 1
        else:
            del self._get_first[host]
        return True

    def _head_missed(self, host):
        """A HEAD answer of `host` was not taken (a GET follows)."""
        if self.get_first_after is None:
            return
        misses = self._head_misses.get(host, 0) + 1
        if misses < self.get_first_after:
            if len(self._head_misses) >= HOSTS_REMEMBERED:
                self._head_misses.clear()
            self._head_misses[host] = misses
            return
        self._head_misses.pop(host, None)
        if len(self._get_first) >= HOSTS_REMEMBERED:
            self._get_first.clear()
        self._get_first[host] = GET_FIRST_RUN

    def _keep(self, jar, parts, cookies):
        if jar is None:
            jar = CookieJar()
        jar.update(parts.scheme, parts.hostname, parts.path or '/', cookies,
                   self.clock.seconds())
        return jar

    def request(self, method, parts, jar=None):
        """One request under the politeness rules and the total timeout,
        with the cookies of `jar` (a CookieJar or None): a Deferred
        (status, phrase, Location or None, whether the host asked to wait,
        the Set-Cookie values or None, the bot-protection service whose
        challenge the answer is or None)."""
        host = parts.hostname
        d = self.politeness.acquire(host)
        d.addCallback(self._start, method, parts, host, jar)
        return d

    def _start(self, slot, method, parts, host, jar=None):
        """The request, once the host's `slot` is granted, with the
        cookies of `jar` (a CookieJar or None)."""
        cookie = jar.header(parts.scheme, host, parts.path or '/') \
            if jar is not None else None
        d = self._exchange(method, parts, host, slot, cookie).addTimeout(
            self.timeout, self.clock,
            onTimeoutCancel=classify.on_timeout(
                'no answer to %s within %g s' % (method.decode('ascii'),
                                                 self.timeout)))

        def release(result):
            slot.release()
            return result
        # A pause the host asks for is known before its next request may
        # start.
        d.addCallback(self._answered, host)
        d.addBoth(release)
        return d

    def _exchange(self, method, parts, host, slot, cookie=None):
        port = parts.port or (443 if parts.scheme == 'https' else 80)
        key = (parts.scheme, host, port)
        data = _request(method, parts, self.user_agent, cookie)
        head_only = method == b'HEAD'
        client = self.pool.take(key)
        if client is not None:
            d = self._send(client, data, head_only, slot)
        else:
            d = self.pool.get(key, fresh=True)
            d.addCallback(self._send, data, head_only, slot)
        d.addErrback(self._stale, key, data, head_only, slot)
        return d

    def _send(self, client, data, head_only, slot):
        d = client.request(data, head_only, BODY_LIMIT)
        # The host's delay runs from the writing of the request, not from
        # the granting of its slot (politeness).
        slot.sent()
        return d

    def _stale(self, failure, key, data, head_only, slot):
        # The server closed the kept-alive connection meanwhile: once more
        # on a new one.
        failure.trap(http11.StaleConnection)
        d = self.pool.get(key, fresh=True)
        d.addCallback(self._send, data, head_only, slot)
        return d

    def _answered(self, answer, host):
        code, phrase, headers = answer
        challenged = classify.challenge(code, headers)
        paused = code == 429 or (code == 503 and b'retry-after' in headers)
        if paused:
            self.politeness.pause(
                host, retry_after(headers, self.clock.seconds()))
        else:
            self.politeness.answered(host)
        return code, phrase, headers.get(b'location'), paused, \
            headers.get(b'set-cookie'), challenged

    def close(self):
        self.pool.close()
        return defer.succeed(None)
