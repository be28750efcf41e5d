"""The zoo's servers: scripted HTTP answers on a real loopback socket.

A :class:`ScriptedHTTPServer` reads each request head and answers it with
what its script says, byte for byte, so the corners a well-behaved server
library never produces (bare LF, folded headers, stalled bodies, HEAD
answers that differ from GET) can be served. A script is a function
``(method, path, headers) -> [step, ...]``; a step is bytes to write, the
string ``'close'`` (drop the connection), ``'hold'`` (keep it open and
silent until the client gives up) or ``('pause', seconds)`` (wait real
time, so the next bytes arrive in a separate read).

``in_progress`` counts requests received whose script has not ended (a
held one counts until the client drops it), which is what
linksync.testing.servers.run_checks needs to move a test clock safely.
"""

from twisted.internet import endpoints, protocol

from linksync import testing


class _Scripted(protocol.Protocol):
    def connectionMade(self):
        self.buffer = b''
        self.busy = False
        self.held = False
        greeting = self.factory.owner.greeting
        if greeting is not None:
            self.transport.write(greeting)
            self.transport.loseConnection()

    def dataReceived(self, data):
        self.buffer += data
        if self.buffer.startswith(b'\x16'):
            # A TLS hello on this plain port: answer as nginx does.
            self.transport.write(
                b'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n'
                b'Connection: close\r\n\r\n')
            self.transport.loseConnection()
            return
        self._next()

    def _next(self):
        if self.busy or b'\r\n\r\n' not in self.buffer:
            return
        head, self.buffer = self.buffer.split(b'\r\n\r\n', 1)
        lines = head.decode('latin-1').split('\r\n')
        method, path = lines[0].split(' ')[:2]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(':')
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        owner = self.factory.owner
        owner.requests.append((method, path, headers))
        owner.in_progress += 1
        self.busy = True
        self._run(list(owner.script(method, path, headers)))

    def _run(self, steps):
        owner = self.factory.owner
        while steps:
            step = steps.pop(0)
            if isinstance(step, bytes):
                self.transport.write(step)
            elif step == 'close':
                self._done()
                self.transport.loseConnection()
                return
            elif step == 'hold':
                self.held = True
                return
            else:
                owner.rt.reactor.callLater(step[1], self._run, steps)
                return
        self._done()
        self._next()

    def _done(self):
        if self.busy:
            self.busy = False
            self.factory.owner.in_progress -= 1

    def connectionLost(self, reason):
        self._done()


class ScriptedHTTPServer:
    """Answers requests on `host` as `script` says (see the module).

    `tls`: Twisted server TLS options (then HTTPS); `greeting`: bytes sent
    on every connection, which is then closed (a server that speaks
    first, as FTP servers do).
    """

    def __init__(self, script, host='127.0.0.1', tls=None, greeting=None):
        self.script = script
        self.tls = tls
        self.greeting = greeting
        self.host = host
        self.requests = []
        self.in_progress = 0
        self._port = None

    def start(self):
        self.rt = testing.reactor_thread()
        factory = protocol.ServerFactory.forProtocol(_Scripted)
        factory.owner = self
        factory.noisy = False
        if self.tls is not None:
            endpoint = endpoints.SSL4ServerEndpoint(
                self.rt.reactor, 0, self.tls, interface=self.host)
        else:
            endpoint = endpoints.TCP4ServerEndpoint(
                self.rt.reactor, 0, interface=self.host)
        self._port = self.rt.call(endpoint.listen, factory)
        self.port = self._port.getHost().port
        testing.on_cleanup(self.stop)
        return self

    def stop(self):
        if self._port is not None:
            self.rt.call(self._port.stopListening)
            self._port = None


# -- TLS ----------------------------------------------------------------------

def expired_certificate(names, issuer):
    """(key PEM, certificate PEM) for `names`, signed by `issuer`, whose
    validity ended yesterday."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    issuer_key = serialization.load_pem_private_key(issuer[0], None)
    issuer_name = x509.load_pem_x509_certificate(issuer[1]).subject
    now = datetime.datetime.now(datetime.timezone.utc)
    alt = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(
                NameOID.COMMON_NAME, names[0])]))
            .issuer_name(issuer_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=60))
            .not_valid_after(now - datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .sign(issuer_key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM,
                              serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            cert.public_bytes(serialization.Encoding.PEM))


def server_tls(default, by_name=None):
    """Twisted server TLS options presenting `default` (key PEM, cert
    PEM), or by_name[server name] when the client's SNI names one."""
    from twisted.internet import ssl

    def options_of(pem):
        # ALPN offered by the server: without it, a client offering ALPN
        # (curl, urllib3) gets a TLS "internal error" alert from Twisted.
        certificate = ssl.PrivateCertificate.loadPEM(pem[0] + pem[1])
        return ssl.CertificateOptions(
            privateKey=certificate.privateKey.original,
            certificate=certificate.original,
            acceptableProtocols=[b'http/1.1'])

    options = options_of(default)
    if by_name:
        contexts = {name.encode('idna'): options_of(pem).getContext()
                    for name, pem in by_name.items()}
        context = options.getContext()

        def pick(connection):
            chosen = contexts.get(connection.get_servername())
            if chosen is not None:
                connection.set_context(chosen)
        context.set_tlsext_servername_callback(pick)
    return options


# -- FTP (pyftpdlib) -------------------------------------------------------------

class PyFTPServer:
    """pyftpdlib's FTP server on `root` in a thread of its own.

    `users` maps a name to (password, home); anonymous logins see `root`.
    `encoding` is how the server reads and writes path names ('utf8' or
    'latin-1'). ``commands`` records every command line it received.
    """

    def __init__(self, root, users=None, encoding='utf8'):
        self.root = root
        self.users = users or {}
        self.encoding = encoding
        self.commands = []
        #: Never holds a request (see run_checks): the clock stands still
        #: while an FTP check runs, whose steps all happen in real time.
        self.in_progress = 0

    def start(self):
        import logging
        import threading

        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.ioloop import IOLoop
        from pyftpdlib.servers import FTPServer

        authorizer = DummyAuthorizer()
        authorizer.add_anonymous(str(self.root))
        for name, (password, home) in self.users.items():
            authorizer.add_user(name, password, str(home), perm='elradfmw')
        owner = self

        class Handler(FTPHandler):
            encoding = self.encoding

            def pre_process_command(self, line, cmd, arg):
                owner.commands.append(line)
                return super().pre_process_command(line, cmd, arg)

        Handler.authorizer = authorizer
        # No 3 s pause before a "530 login refused": the verdict is the
        # same, and the test clock need not race it.
        Handler.auth_failed_timeout = 0
        logging.getLogger('pyftpdlib').setLevel(logging.CRITICAL)
        # An IOLoop of its own: pyftpdlib's default one is shared by every
        # server of the process.
        self.server = FTPServer(('127.0.0.1', 0), Handler, ioloop=IOLoop())
        self.port = self.server.address[1]
        self._stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        testing.on_cleanup(self.stop)
        return self

    def _serve(self):
        # (As pyftpdlib's own test servers do: poll, and close in the
        # serving thread.)
        while not self._stopping.is_set():
            self.server.serve_forever(timeout=0.01, blocking=False,
                                      handle_exit=False)
        self.server.close_all()

    def stop(self):
        self._stopping.set()
        self.thread.join(10)


# -- DNS with aliases ----------------------------------------------------------------

class _AliasZone:
    """A twisted.names authority answering A, MX and CNAME records; a
    CNAME answers every query for its name, followed by what its target
    has."""

    def __init__(self, records, failing):
        from twisted.names import common

        zone = self

        class Zone(common.ResolverBase):
            def _lookup(self, name, cls, type, timeout=None):
                return zone.lookup(name, type)
        self.resolver = Zone()
        self.records = records
        self.failing = failing

    def lookup(self, name, qtype):
        from twisted.internet import defer
        from twisted.names import dns

        name = (name.decode('ascii') if isinstance(name, bytes)
                else str(name)).lower().rstrip('.')
        if name in self.failing:
            return defer.fail(dns.DNSQueryTimeoutError(name))
        if name not in self.records:
            return defer.fail(dns.AuthoritativeDomainError(name))
        answers = []
        # As a recursive resolver answers: the alias chain, then the
        # records of its end (none when it ends nowhere).
        for _ in range(10):
            alias = None
            for rtype, value in self.records.get(name, ()):
                if rtype == 'CNAME':
                    payload = alias = dns.Record_CNAME(value)
                elif rtype == 'A' and qtype == dns.A:
                    payload = dns.Record_A(value)
                elif rtype == 'MX' and qtype == dns.MX:
                    payload = dns.Record_MX(*value)
                else:
                    continue
                answers.append(dns.RRHeader(name, payload.TYPE, dns.IN, 60,
                                            payload, auth=True))
            if alias is None:
                break
            name = str(alias.name).lower()
        return defer.succeed((answers, [], []))


class DNSZoneServer:
    """A DNS server on 127.0.0.1 (UDP) answering from `records`: name ->
    [('A', '1.2.3.4') | ('MX', (10, 'mx.name')) | ('CNAME', 'name')];
    unknown names are NXDOMAIN, names in `failing` a server failure."""

    def __init__(self, records, failing=()):
        self.records = {name.lower(): rrs for name, rrs in records.items()}
        self.failing = set(failing)
        self._port = None

    def start(self):
        from twisted.names import dns
        from twisted.names import server as dns_server

        self.rt = testing.reactor_thread()
        factory = dns_server.DNSServerFactory(authorities=[
            _AliasZone(self.records, self.failing).resolver])
        factory.noisy = False
        udp = dns.DNSDatagramProtocol(factory)
        udp.noisy = False
        self._port = self.rt.call(self.rt.reactor.listenUDP, 0, udp,
                                  interface='127.0.0.1')
        self.address = ('127.0.0.1', self._port.getHost().port)
        testing.on_cleanup(self.stop)
        return self

    def stop(self):
        if self._port is not None:
            self.rt.call(self._port.stopListening)
            self._port = None
