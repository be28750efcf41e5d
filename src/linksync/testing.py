"""Helpers for tests and functional doctests: real servers on 127.0.0.1.

The Twisted reactor runs in a background thread for the whole test process
(:func:`reactor_thread`); test code stays blocking and hands work to the
reactor with :meth:`ReactorThread.call`. Servers listen on free ports of
127.0.0.1, and time is a :class:`twisted.internet.task.Clock` the test
advances, never the wall clock.

Whatever a helper starts is registered with :func:`on_cleanup` and stopped by
:func:`cleanup`, which the test runner calls after every test and doctest.
"""

import atexit
import email
import socket
import tempfile
import threading
import xmlrpc.client

from twisted.internet import defer, task
from twisted.internet import threads as twisted_threads
from twisted.mail import smtp
from zope.interface import implementer

_cleanups = []


def on_cleanup(func, *args, **kw):
    """Run func(*args, **kw) at the next cleanup() (last registered first)."""
    _cleanups.append((func, args, kw))


def cleanup():
    """Stop everything the helpers started since the last cleanup."""
    errors = []
    while _cleanups:
        func, args, kw = _cleanups.pop()
        try:
            func(*args, **kw)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    if errors:
        raise errors[0]


def free_port(host='127.0.0.1'):
    """A TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ReactorThread:
    """The global reactor, running in a daemon thread."""

    def __init__(self):
        from twisted.internet import reactor
        self.reactor = reactor
        self.thread = None

    def start(self):
        if self.thread is not None:
            return
        started = threading.Event()
        self.reactor.callWhenRunning(started.set)
        self.thread = threading.Thread(
            target=self.reactor.run, kwargs={'installSignalHandlers': False},
            name='reactor', daemon=True)
        self.thread.start()
        if not started.wait(30):  # pragma: no cover
            raise RuntimeError('the reactor did not start')
        atexit.register(self.stop)

    def stop(self):
        if self.thread is not None and self.reactor.running:
            self.reactor.callFromThread(self.reactor.stop)
            self.thread.join(10)

    def call(self, func, *args, **kw):
        """Run func in the reactor thread; wait for its (Deferred) result."""
        return twisted_threads.blockingCallFromThread(
            self.reactor, defer.maybeDeferred, func, *args, **kw)


_reactor_thread = None


def reactor_thread():
    """The started ReactorThread of this process."""
    global _reactor_thread
    if _reactor_thread is None:
        _reactor_thread = ReactorThread()
    _reactor_thread.start()
    return _reactor_thread


# -- the server ------------------------------------------------------------------

class ServerFixture:
    """A linksync server in this process, on a free port of 127.0.0.1.

    >>> server = ServerFixture()                            # doctest: +SKIP
    >>> server.start()                                      # doctest: +SKIP
    >>> server.proxy().checkConnection('fred', 'secret')    # doctest: +SKIP
    """

    def __init__(self, data=None, secret='management-secret', clock=None,
                 mailer=None, roles=None, **settings):
        from linksync import config
        if data is None:
            data = tempfile.mkdtemp(prefix='linksync-test-')
        self.data = data
        self.secret = secret
        self.clock = clock if clock is not None else task.Clock()
        self.mailer = mailer
        self.roles = roles
        settings.setdefault('listen', 'tcp:0:interface=127.0.0.1')
        # The checker (issue 3) must not ask the machine's DNS servers about
        # the names tests use: an unused loopback port answers nothing.
        settings.setdefault('dns_server', [('127.0.0.1', 9)])
        self.settings = config.defaults(data=data, secret=secret, **settings)
        self.service = None
        self.url = None

    def start(self):
        self.rt = reactor_thread()
        self.rt.call(self._start)
        on_cleanup(self.stop)
        return self

    @defer.inlineCallbacks
    def _start(self):
        from linksync.server import LinkSyncService
        self.service = LinkSyncService(
            self.settings, reactor=self.rt.reactor, clock=self.clock,
            secret=self.secret, mailer=self.mailer, roles=self.roles)
        self.service.startService()
        port = yield self.service.api.listening
        self.port = port.getHost().port
        self.base_url = 'http://127.0.0.1:%d' % self.port
        self.url = self.base_url + '/RPC2'

    def stop(self):
        if self.service is not None and self.service.running:
            self.rt.call(self.service.stopService)

    def restart(self):
        """Stop and start again on the same data (and port when free)."""
        self.stop()
        self.settings.listen = 'tcp:%d:interface=127.0.0.1' % self.port
        self.rt.call(self._start)

    def proxy(self, **kw):
        """A blocking XML-RPC client of this server."""
        return xmlrpc.client.ServerProxy(self.url, **kw)

    def advance(self, seconds):
        """Move the server's clock forward (in the reactor thread)."""
        self.rt.call(self.clock.advance, seconds)

    def read(self, func, *args, **kw):
        """Run func(app, ...) on a fresh view of the server's database."""
        return self.rt.call(self._with_session, 'read', func, args, kw)

    def run(self, func, *args, **kw):
        """Run func(app, ...) in a committed transaction of the database."""
        return self.rt.call(self._with_session, 'run', func, args, kw)

    def _with_session(self, how, func, args, kw):
        session = self.service.database.session()
        try:
            return getattr(session, how)(func, *args, **kw)
        finally:
            session.close()

    def register_client(self, client_id='fred', password='secret',
                        callback_url='http://127.0.0.1:9/', **kw):
        """Register a client over XML-RPC; returns its proxy arguments."""
        self.proxy().registerClient(
            self.secret, client_id, callback_url,
            kw.get('contact_name', 'Fred'),
            kw.get('contact_email', client_id + '@example.com'), password)
        return client_id, password


# -- mail ----------------------------------------------------------------------------

class SMTPServer:
    """A local SMTP server keeping what it receives in `messages`.

    Each message is an email.message.Message with the envelope in
    ``msg.envelope = (sender, [recipients])``.
    """

    def __init__(self):
        self.messages = []
        self.port = None

    def start(self):
        from twisted.internet import endpoints
        self.rt = reactor_thread()
        server = self

        @implementer(smtp.IMessageDelivery)
        class Delivery:
            def receivedHeader(self, helo, origin, recipients):
                return b'Received: by linksync-test-smtp'

            def validateFrom(self, helo, origin):
                return origin

            def validateTo(self, user):
                return lambda: _Message(server, user)

        class Factory(smtp.SMTPFactory):
            noisy = False

            def buildProtocol(self, addr):
                protocol = smtp.SMTP()
                protocol.factory = self
                protocol.delivery = Delivery()
                return protocol

        def listen():
            endpoint = endpoints.TCP4ServerEndpoint(
                self.rt.reactor, 0, interface='127.0.0.1')
            return endpoint.listen(Factory())

        self._port = self.rt.call(listen)
        self.port = self._port.getHost().port
        on_cleanup(self.stop)
        return self

    def stop(self):
        if self._port is not None:
            self.rt.call(self._port.stopListening)
            self._port = None

    @property
    def address(self):
        return ('127.0.0.1', self.port)


@implementer(smtp.IMessage)
class _Message:
    def __init__(self, server, user):
        self.server = server
        self.user = user
        self.lines = []

    def lineReceived(self, line):
        self.lines.append(line)

    def eomReceived(self):
        msg = email.message_from_bytes(b'\n'.join(self.lines))
        msg.recipient = str(self.user.dest)
        self.server.messages.append(msg)
        return defer.succeed(None)

    def connectionLost(self):
        self.lines = []
