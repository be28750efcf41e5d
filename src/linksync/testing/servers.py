"""Real servers for the checker's tests: HTTP(S), FTP and DNS on loopback.

They run in the reactor thread of linksync.testing, listen on free ports
of a loopback address of the caller's choice (127.0.0.x: distinct hosts
for the politeness rules), and are stopped by ``testing.cleanup()``.

:class:`HTTPTestServer` answers by path:

==========================  ==============================================
``/status/CODE``            that status (``?retry-after=N`` adds the header)
``/redirect/N``             a chain of N redirects ending in 200
``/loop/a``, ``/loop/b``    redirect to each other
``/head-refused/CODE``      CODE to HEAD, 200 to GET
``/big``                    405 to HEAD, 200 with a 1 MiB body to GET
``/slow``                   never answers
``/hold/SECONDS``           200 after SECONDS of the server's clock
``/toggle/NAME``            the status in ``toggles[NAME]`` (default 200)
==========================  ==============================================

and keeps a request log (:class:`Hit`: clock time, method, path, requests
in progress and connections open when the request arrived), so a test can
see politeness from the server's side.
"""

import collections
import datetime
import os

from twisted.internet import defer, endpoints, protocol, ssl
from twisted.names import common, dns
from twisted.names import server as dns_server
from twisted.protocols import policies
from twisted.web import resource, server

from linksync import testing

Hit = collections.namedtuple(
    'Hit', 'time method path in_progress connections user_agent')


class _Counting(policies.WrappingFactory):
    """Counts open connections (``len(self.protocols)``)."""

    noisy = False


class _Resource(resource.Resource):
    isLeaf = True

    def __init__(self, owner):
        super().__init__()
        self.owner = owner

    def render(self, request):
        owner = self.owner
        path = request.path.decode('ascii', 'replace')
        method = request.method.decode('ascii', 'replace')
        owner.in_progress += 1
        owner.log.append(Hit(owner.clock.seconds(), method,
                             request.uri.decode('ascii', 'replace'),
                             owner.in_progress, len(owner.factory.protocols),
                             request.getHeader(b'user-agent')))

        def finished(_):
            owner.in_progress -= 1
        request.notifyFinish().addBoth(finished)
        parts = path.strip('/').split('/')
        kind, arg = parts[0], parts[1] if len(parts) > 1 else ''
        if kind == 'status':
            request.setResponseCode(int(arg))
            wait = request.args.get(b'retry-after')
            if wait:
                request.setHeader(b'retry-after', wait[0])
            return b'status %s\n' % arg.encode()
        if kind == 'redirect':
            n = int(arg)
            if n == 0:
                return b'arrived\n'
            request.setResponseCode(302)
            request.setHeader(b'location', b'/redirect/%d' % (n - 1))
            return b''
        if kind == 'loop':
            request.setResponseCode(302)
            request.setHeader(b'location',
                              b'/loop/b' if arg == 'a' else b'/loop/a')
            return b''
        if kind == 'head-refused':
            if method == 'HEAD':
                request.setResponseCode(int(arg))
            return b'only GET\n'
        if kind == 'big':
            if method == 'HEAD':
                request.setResponseCode(405)
                return b''
            return b'x' * (1 << 20)
        if kind == 'toggle':
            request.setResponseCode(owner.toggles.get(arg, 200))
            return b'toggle\n'
        if kind == 'slow':
            owner.hanging.append(request)
            return server.NOT_DONE_YET
        if kind == 'hold':
            def answer():
                if not request.finished and not request._disconnected:
                    request.write(b'held\n')
                    request.finish()
            call = owner.clock.callLater(float(arg), answer)
            request.notifyFinish().addBoth(
                lambda _: call.active() and call.cancel())
            return server.NOT_DONE_YET
        request.setResponseCode(404)
        return b'no such path\n'


class HTTPTestServer:
    """An HTTP (or HTTPS, with `tls`=(key PEM, cert PEM)) server."""

    def __init__(self, host='127.0.0.1', clock=None, tls=None):
        self.host = host
        self.tls = tls
        self.clock = clock
        self.log = []
        self.in_progress = 0
        self.hanging = []
        self.port = None
        #: name -> status answered by /toggle/NAME (default 200).
        self.toggles = {}

    def start(self):
        self.rt = testing.reactor_thread()
        if self.clock is None:
            self.clock = self.rt.reactor
        site = server.Site(_Resource(self))
        site.noisy = False
        site.log = lambda request: None
        self.factory = _Counting(site)

        def listen():
            if self.tls:
                key, cert = self.tls
                options = ssl.PrivateCertificate.loadPEM(
                    key + cert).options()
                endpoint = endpoints.SSL4ServerEndpoint(
                    self.rt.reactor, 0, options, interface=self.host)
            else:
                endpoint = endpoints.TCP4ServerEndpoint(
                    self.rt.reactor, 0, interface=self.host)
            return endpoint.listen(self.factory)
        self._port = self.rt.call(listen)
        self.port = self._port.getHost().port
        testing.on_cleanup(self.stop)
        return self

    def url(self, path):
        scheme = 'https' if self.tls else 'http'
        return '%s://%s:%d%s' % (scheme, self.host, self.port, path)

    def hits(self, prefix=''):
        return [h for h in self.log if h.path.startswith(prefix)]

    def stop(self):
        if self._port is None:
            return

        def stop():
            for request in self.hanging:
                if not request.finished and not request._disconnected:
                    request.channel.transport.abortConnection()
            for connection in list(self.factory.protocols):
                connection.transport.abortConnection()
            return self._port.stopListening()
        self.rt.call(stop)
        self._port = None


# -- canned answers ------------------------------------------------------------------

class _Canned(protocol.Protocol):
    def connectionMade(self):
        self.buffer = b''
        self.factory.owner.connections += 1

    def dataReceived(self, data):
        self.buffer += data
        owner = self.factory.owner
        while b'\r\n\r\n' in self.buffer:
            head, self.buffer = self.buffer.split(b'\r\n\r\n', 1)
            method, path = head.split(b' ')[:2]
            owner.requests.append((method.decode(), path.decode()))
            answer, close = owner.answers[path.decode()]
            self.transport.write(answer)
            if close:
                self.transport.loseConnection()
                return


class RawHTTPServer:
    """Answers each path with canned bytes: {path: (bytes, close after)}.

    For the corners of HTTP framing that a well-behaved server library
    never produces. ``requests`` logs (method, path); ``connections``
    counts the connections accepted.
    """

    def __init__(self, answers, host='127.0.0.1'):
        self.answers = answers
        self.host = host
        self.requests = []
        self.connections = 0
        self.in_progress = 0
        self._port = None

    def start(self):
        self.rt = testing.reactor_thread()
        factory = protocol.ServerFactory.forProtocol(_Canned)
        factory.owner = self
        factory.noisy = False
        self._port = self.rt.call(
            endpoints.TCP4ServerEndpoint(self.rt.reactor, 0,
                                         interface=self.host).listen,
            factory)
        self.port = self._port.getHost().port
        testing.on_cleanup(self.stop)
        return self

    def url(self, path):
        return 'http://%s:%d%s' % (self.host, self.port, path)

    def stop(self):
        if self._port is not None:
            self.rt.call(self._port.stopListening)
            self._port = None


# -- certificates ---------------------------------------------------------------

def make_certificate(names, issuer=None, ca=False, not_before=None,
                     not_after=None):
    """(key PEM, certificate PEM) for `names` (host names or IPs).

    Self-signed without `issuer`; else signed by `issuer` = (key PEM,
    certificate PEM). `ca` makes a certificate authority. Valid from
    yesterday for 30 days, or from `not_before` to `not_after` (UTC
    datetimes; an expired certificate, one not valid yet).
    """
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(
        NameOID.COMMON_NAME, names[0] if names else 'linksync test CA')])
    if issuer is None:
        issuer_key, issuer_name = key, subject
    else:
        issuer_key = serialization.load_pem_private_key(issuer[0], None)
        issuer_name = x509.load_pem_x509_certificate(issuer[1]).subject
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(issuer_name)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before or
                                 now - datetime.timedelta(days=1))
               .not_valid_after(not_after or
                                now + datetime.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                              critical=True))
    if names:
        alt = []
        for name in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt),
                                        critical=False)
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    cert = builder.sign(issuer_key, hashes.SHA256())
    return (key.private_bytes(serialization.Encoding.PEM,
                              serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            cert.public_bytes(serialization.Encoding.PEM))


# -- FTP --------------------------------------------------------------------------

class FTPTestServer:
    """Twisted's FTP server on `root` (anonymous) and `users` homes.

    `users` maps a user name to a password; each user's home is
    ``root/home/NAME``.
    """

    def __init__(self, root, host='127.0.0.1', users=None):
        self.root = root
        self.host = host
        self.users = users or {}
        self._port = None

    def start(self):
        from twisted.cred import checkers, portal
        from twisted.protocols import ftp
        self.rt = testing.reactor_thread()
        home = os.path.join(self.root, 'home')
        for user in self.users:
            os.makedirs(os.path.join(home, user), exist_ok=True)
        realm = ftp.FTPRealm(anonymousRoot=self.root,
                             userHome=home)
        accounts = checkers.InMemoryUsernamePasswordDatabaseDontUse()
        for user, password in self.users.items():
            accounts.addUser(user, password)
        cred = [checkers.AllowAnonymousAccess(), accounts]
        factory = ftp.FTPFactory(portal.Portal(realm, cred))
        factory.noisy = False
        factory.allowAnonymous = True

        def listen():
            endpoint = endpoints.TCP4ServerEndpoint(
                self.rt.reactor, 0, interface=self.host)
            return endpoint.listen(factory)
        self.factory = factory
        self._port = self.rt.call(listen)
        self.port = self._port.getHost().port
        testing.on_cleanup(self.stop)
        return self

    def url(self, path, user=None):
        auth = '%s:%s@' % (user, self.users[user]) if user else ''
        return 'ftp://%s%s:%d%s' % (auth, self.host, self.port, path)

    def stop(self):
        if self._port is not None:
            def stop():
                for p in list(getattr(self.factory, 'instances', [])):
                    if p.transport is not None:
                        p.transport.abortConnection()
                return self._port.stopListening()
            self.rt.call(stop)
            self._port = None


# -- DNS --------------------------------------------------------------------------

class _Zone(common.ResolverBase):
    def __init__(self, records, failing, held=(), holding=None):
        super().__init__()
        self.records = records
        self.failing = failing
        self.held = held
        self.holding = holding if holding is not None else []

    def _lookup(self, name, cls, type, timeout=None):
        name = (name.decode('ascii') if isinstance(name, bytes)
                else str(name)).lower().rstrip('.')
        if name in self.held:
            d = defer.Deferred()
            self.holding.append(d)
            return d.addCallback(lambda _: self._answer(name, type))
        return self._answer(name, type)

    def _answer(self, name, type):
        if name in self.failing:
            return defer.fail(dns.DNSQueryTimeoutError(name))
        if name not in self.records:
            return defer.fail(dns.AuthoritativeDomainError(name))
        answers = []
        for rtype, value in self.records[name]:
            if rtype != type:
                continue
            if rtype == dns.A:
                payload = dns.Record_A(value)
            elif rtype == dns.MX:
                payload = dns.Record_MX(value[0], value[1])
            elif rtype == dns.AAAA:
                payload = dns.Record_AAAA(value)
            else:
                continue
            answers.append(dns.RRHeader(name, rtype, dns.IN, 60, payload,
                                        auth=True))
        return defer.succeed((answers, [], []))


class DNSTestServer:
    """A DNS server answering from `records` on 127.0.0.1 (UDP).

    `records` maps a name to a list of ('A', '1.2.3.4'), ('MX', (10,
    'mx.example')) or ('AAAA', '::1'); unknown names are NXDOMAIN; names
    in `failing` get a server failure. Queries for names in `held` are
    answered only when release() is called (``in_progress`` counts them,
    so run_checks can settle on this server too).
    """

    _TYPES = {'A': dns.A, 'MX': dns.MX, 'AAAA': dns.AAAA}

    def __init__(self, records, failing=(), held=()):
        self.records = {name.lower(): [(self._TYPES[t], v) for t, v in rrs]
                        for name, rrs in records.items()}
        self.failing = set(failing)
        self.held = set(held)
        self.holding = []
        self._port = None

    @property
    def in_progress(self):
        return len(self.holding)

    def release(self):
        """Answer the held queries (in the reactor thread)."""
        def release():
            holding, self.holding[:] = list(self.holding), []
            for d in holding:
                d.callback(None)
        self.rt.call(release)

    def start(self):
        self.rt = testing.reactor_thread()
        factory = dns_server.DNSServerFactory(
            authorities=[_Zone(self.records, self.failing, self.held,
                               self.holding)])
        factory.noisy = False
        protocol = dns.DNSDatagramProtocol(factory)
        protocol.noisy = False
        self._port = self.rt.call(self.rt.reactor.listenUDP, 0, protocol,
                                  interface='127.0.0.1')
        self.port = self._port.getHost().port
        testing.on_cleanup(self.stop)
        return self

    @property
    def address(self):
        return ('127.0.0.1', self.port)

    def stop(self):
        if self._port is not None:
            self.rt.call(self._port.stopListening)
            self._port = None


# -- running checks against these servers ---------------------------------------

def run_checks(checker, urls, servers=(), step=0.25, max_steps=4000,
               settle=True):
    """Check `urls` with `checker`; {url: (state, reason)}.

    The checker's clock (a task.Clock) is moved `step` seconds at a time,
    but only while every request the checker has started has reached one
    of the HTTP `servers` (or none is started): so the servers' request
    log records each request at the clock time it was sent, and a test can
    compare those times exactly. Without `settle` the clock moves on
    regardless (for requests that never reach a server).
    """
    import time
    rt = testing.reactor_thread()
    results = {}

    def start():
        for url in urls:
            checker.check(url).addCallback(
                lambda result, url=url: results.__setitem__(url, result))
    rt.call(start)

    def settled():
        return not settle or _settled(checker, servers)
    for _ in range(max_steps):
        if len(results) == len(set(urls)):
            return results
        if rt.call(settled):
            rt.call(checker.clock.advance, step)
        time.sleep(0.002)
    raise AssertionError('checks unfinished: %s' % sorted(
        set(urls) - set(results)))


def _settled(checker, servers):
    """True when every request `checker` started has reached one of the
    HTTP `servers`."""
    arrived = sum(s.in_progress for s in servers)
    return checker.politeness.active == arrived


def check_registered(server, urls, servers=(), step=1.0, max_steps=5000):
    """Let a started ServerFixture's checker check `urls` (registered by
    its clients); {url: (state, reason)} once every one is stored.

    The server's clock moves `step` seconds at a time, only while every
    request its checker started has reached one of the HTTP `servers` (as
    in run_checks).
    """
    import time
    checker = server.service.getServiceNamed('checker').checker
    for _ in range(max_steps):
        found = stored_states(server, urls)
        if all(state is not None for state, _ in found.values()) and \
                len(found) == len(set(urls)):
            return found
        if server.rt.call(_settled, checker, servers):
            server.advance(step)
        time.sleep(0.002)
    raise AssertionError('checks unfinished: %s' % sorted(
        url for url, (state, _) in stored_states(server, urls).items()
        if state is None))


def stored_states(server, urls):
    """{url: (state, reason)} as a ServerFixture's database holds them
    (state None: not checked yet; URLs it does not hold are left out)."""
    def read(app):
        result = {}
        for url in urls:
            obj = app.urls.get(url)
            if obj is not None:
                result[url] = (obj.state, obj.reason)
        return result
    return server.read(read)
