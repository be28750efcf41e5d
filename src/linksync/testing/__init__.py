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
import os
import signal
import socket
import subprocess
import sys
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


class Listening:
    """A server started by a test on a free port of 127.0.0.1, stopped at
    cleanup (or by :meth:`stop`)."""

    _port = None
    port = None

    def _listen(self, factory):
        from twisted.internet import endpoints
        self.rt = reactor_thread()

        def listen():
            endpoint = endpoints.TCP4ServerEndpoint(
                self.rt.reactor, 0, interface='127.0.0.1')
            return endpoint.listen(factory)
        self._port = self.rt.call(listen)
        self.port = self._port.getHost().port
        on_cleanup(self.stop)

    def stop(self):
        if self._port is not None:
            self.rt.call(self._port.stopListening)
            self._port = None


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
        from linksync.server import options as config
        from linksync.server.configure import configure
        # A server started here is composed as `linksync serve` composes it.
        configure()
        if data is None:
            data = tempfile.mkdtemp(prefix='linksync-test-')
        self.data = data
        self.secret = secret
        self.clock = clock if clock is not None else task.Clock()
        self.mailer = mailer
        self.roles = roles
        settings.setdefault('listen', 'tcp:0:interface=127.0.0.1')
        # The checker must not ask the machine's DNS servers about
        # the names tests use: an unused loopback port answers nothing.
        settings.setdefault('dns_server', [('127.0.0.1', 9)])
        # Callbacks and export targets of tests listen on loopback, which
        # the network policy refuses unless it is opened.
        settings.setdefault('allow_network', [config.network('127.0.0.0/8')])
        self.settings = config.defaults(data=data, secret=secret, **settings)
        self.service = None
        self.url = None
        self.metrics_url = None

    def start(self):
        self.rt = reactor_thread()
        self.rt.call(self._start)
        on_cleanup(self.stop)
        return self

    @defer.inlineCallbacks
    def _start(self):
        from linksync.server.service import LinkSyncService
        self.service = LinkSyncService(
            self.settings, reactor=self.rt.reactor, clock=self.clock,
            secret=self.secret, mailer=self.mailer, roles=self.roles)
        self.service.startService()
        if self.roles is None or 'api' in self.roles:
            port = yield self.service.api.listening
            self.port = port.getHost().port
            self.base_url = 'http://127.0.0.1:%d' % self.port
            self.url = self.base_url + '/RPC2'
        if self.settings.metrics_listen:
            # A process's own /metrics (--metrics-listen).
            port = yield self.service.getServiceNamed('metrics').listening
            self.metrics_url = 'http://127.0.0.1:%d/metrics' % (
                port.getHost().port)

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

class SMTPServer(Listening):
    """A local SMTP server keeping what it receives in `messages`.

    Each message is an email.message.Message with the envelope in
    ``msg.envelope = (sender, [recipients])``.
    """

    def __init__(self):
        self.messages = []

    def start(self):
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

        self._listen(Factory())
        return self

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


# -- a client application's callback ------------------------------------------

import warnings  # noqa: E402

with warnings.catch_warnings():
    # It still defines a client on a deprecated class; its server is fine.
    warnings.simplefilter('ignore', DeprecationWarning)
    from twisted.web import xmlrpc as twisted_xmlrpc  # noqa: E402


class CallbackServer:
    """A client application's XML-RPC callback on a free port of 127.0.0.1.

    It answers what the server calls:

    * ``xmlrpc_getAllLinks`` (``getAllLinks`` instead when `legacy` is set,
      as older clients name it) with :attr:`links`;
    * ``updateManyStates`` with :attr:`updated` (True), keeping every call's
      rows in :attr:`calls` and the last ``[state, reason]`` of each URL in
      :attr:`states`;
    * ``pushChanges(changes)`` (for export agents), keeping them in
      :attr:`pushed`.

    An answer may be an exception to raise (an ``xmlrpc.client.Fault``), or
    a callable ``(client_id, password, *args)`` returning the answer or a
    Deferred of it. With a `client_id` and `password`, calls bearing other
    credentials get Fault 401 'wrong credentials'; :attr:`credentials`
    keeps those of every call. :meth:`show_log` prints what it was asked
    and empties the log::

        Connect: http://127.0.0.1:PORT/RPC2     (each request)
        Get all links
        Update many states: fred - 2            (client id, number of rows)

    :meth:`down` stops it and cuts its connections, :meth:`up` brings it
    back on the same port.
    """

    path = '/RPC2'

    def __init__(self, client_id=None, password=None, links=(),
                 legacy=False):
        self.client_id = client_id
        self.password = password
        self.links = list(links)
        self.legacy = legacy
        self.updated = True
        self.log = []
        self.credentials = []
        self.calls = []
        self.states = {}
        self.pushed = []
        self.port = None
        self._listening = None
        self._connections = {}

    @property
    def url(self):
        return 'http://127.0.0.1:%d%s' % (self.port, self.path)

    @property
    def batches(self):
        """The number of rows of every updateManyStates call."""
        return [len(rows) for rows in self.calls]

    def rows(self):
        """Every row received, in order."""
        return [row for call in self.calls for row in call]

    def show_log(self):
        for line in self.log:
            print(line)
        del self.log[:]

    # -- the methods ---------------------------------------------------------

    def get_all_links(self, client_id, password):
        self.log.append('Get all links')
        self._check(client_id, password)
        return self._answer(self.links, client_id, password)

    def update_many_states(self, client_id, password, rows):
        self.log.append('Update many states: %s - %d' % (client_id,
                                                         len(rows)))
        self._check(client_id, password)
        self.calls.append(rows)
        for url, state, reason in rows:
            self.states[url] = [state, reason]
        return self._answer(self.updated, client_id, password, rows)

    def push_changes(self, changes):
        self.pushed.extend(changes)
        return True

    def _check(self, client_id, password):
        self.credentials.append((client_id, password))
        if self.client_id is not None and \
                (client_id, password) != (self.client_id, self.password):
            raise twisted_xmlrpc.Fault(401, 'wrong credentials')

    def _answer(self, answer, client_id, password, *args):
        if callable(answer):
            answer = answer(client_id, password, *args)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    # -- listening -------------------------------------------------------------

    def start(self, port=0):
        """Listen on `port` (0: a free one), as a callback whose URL a
        database already names listens on the port it names."""
        self.rt = reactor_thread()
        self.rt.call(self._listen, port)
        on_cleanup(self.stop)
        return self

    def _listen(self, port):
        from twisted.internet import endpoints
        from twisted.protocols.policies import WrappingFactory
        from twisted.web import server as web_server
        site = web_server.Site(_CallbackResource(self))
        site.noisy = False
        factory = WrappingFactory(site)
        # The wrappers of the open connections, for down().
        self._connections = factory.protocols
        endpoint = endpoints.TCP4ServerEndpoint(
            self.rt.reactor, port, interface='127.0.0.1')

        def listening(listening_port):
            self._listening = listening_port
            self.port = listening_port.getHost().port
        return endpoint.listen(factory).addCallback(listening)

    def down(self):
        """Stop answering: no listening socket, open connections cut."""
        def stop():
            for protocol in list(self._connections):
                protocol.transport.abortConnection()
            port, self._listening = self._listening, None
            if port is not None:
                return port.stopListening()
        self.rt.call(stop)

    def up(self):
        """Answer again, on the same port."""
        if self._listening is None:
            self.rt.call(self._listen, self.port)

    def stop(self):
        if self._listening is not None or self._connections:
            self.down()


class _CallbackResource(twisted_xmlrpc.XMLRPC):
    """The XML-RPC resource of a CallbackServer."""

    def __init__(self, callback):
        super().__init__(allowNone=False)
        self.callback = callback

    def render_POST(self, request):
        host = (request.getHeader(b'host') or b'').decode('latin-1')
        self.callback.log.append('Connect: http://%s%s' % (
            host, request.uri.decode('latin-1')))
        return super().render_POST(request)

    def lookupProcedure(self, path):
        callback = self.callback
        links = 'getAllLinks' if callback.legacy else 'xmlrpc_getAllLinks'
        procedures = {links: callback.get_all_links,
                      'updateManyStates': callback.update_many_states,
                      'pushChanges': callback.push_changes}
        if path not in procedures:
            raise twisted_xmlrpc.NoSuchFunction(
                self.NOT_FOUND, 'procedure %s not found' % path)
        return procedures[path]


class XMLRPCDummy(CallbackServer):
    """The callback of the seed's story: at ``/``, answering links 1 and 3
    of example.com, accepting any credentials (it keeps them)."""

    path = '/'

    def __init__(self, links=('http://example.com/1', 'http://example.com/3'),
                 legacy=False):
        super().__init__(links=links, legacy=legacy)


# -- the syncer: driving it from tests -------------------------------------------

def install_xmlrpcdummy(**kw):
    """Start an XMLRPCDummy (stopped at cleanup) and return it."""
    return XMLRPCDummy(**kw).start()


def syncer_of(server):
    """The ISyncer of a started ServerFixture."""
    return server.service.getServiceNamed('syncer').syncer


def sync_now(server, *client_ids):
    """Run the server's syncer now (the due clients, or those named) and
    wait for it; returns the list of ISyncResult."""
    syncer = syncer_of(server)
    if client_ids:
        return server.rt.call(syncer.sync_clients, client_ids)
    return server.rt.call(syncer.sync)


def wait_for_syncer(server):
    """Wait until the server's syncer has finished what it started."""
    server.rt.call(syncer_of(server).idle)


def wait_for_digests(server):
    """Wait until the server has mailed the digests it started mailing."""
    server.rt.call(server.service.api.reports.idle)


# -- tracked structures (linksync.tracked) -----------------------------------------

class ChangeCatcher:
    """A callback for tracked structures that keeps what it is given.

    Give ``catcher.cb`` to ``track(..., callback=catcher.cb)``. `last` is
    what the latest call received (a change, or the list of changes of a
    ``with`` block), `change` the latest single change, `changes` every
    change in order; the fields of the latest change read as attributes of
    the catcher (``catcher.func_name``, ``catcher.target``, ...).
    """

    def __init__(self):
        self.changes = []
        self.calls = 0
        self.last = None
        self.change = None

    def cb(self, change):
        self.calls += 1
        self.last = change
        batch = change if isinstance(change, list) else [change]
        self.changes.extend(batch)
        self.change = batch[-1]

    def __getattr__(self, name):
        if name.startswith('_') or self.__dict__.get('change') is None:
            raise AttributeError(name)
        return getattr(self.change, name)


# -- stores and the client kit ------------------------------------------------

def _flaky_call(counter, every, after_write, name, error, func,
                write=False):
    """Call func(), unless this call is one of every `every`-th (counted
    in `counter`): then raise `error` before (or, for a write with
    `after_write`, after) making it. A Deferred result fails the same
    way."""
    counter['calls'] += 1
    fails = counter['on'] and counter['calls'] % every == 0
    if fails and not (write and after_write):
        counter['failures'] += 1
        raise error('%s: call %d fails on purpose' % (name,
                                                      counter['calls']))
    result = func()
    if not fails:
        return result

    def lost(_=None):    # the write was made, but its answer is lost
        counter['failures'] += 1
        raise error('%s: the answer of call %d is lost on purpose' % (
            name, counter['calls']))
    if isinstance(result, defer.Deferred):
        return result.addCallback(lost)
    return lost()


class FlakyAccessor:
    """An accessor failing on purpose (see :func:`flaky`)."""

    def __init__(self, inner, every, after_write, counter):
        self.inner = inner
        self.every = every
        self.after_write = after_write
        self.counter = counter

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _call(self, func, write=False):
        from linksync.stores.errors import StoreUnavailable
        return _flaky_call(self.counter, self.every, self.after_write,
                           self.inner.store.name, StoreUnavailable, func,
                           write)

    def get(self, id):
        return self._call(lambda: self.inner.get(id))

    def find(self, name=None, **fields):
        return self._call(lambda: self.inner.find(name, **fields))

    def add(self, record):
        return self._call(lambda: self.inner.add(record), write=True)

    def update(self, record):
        return self._call(lambda: self.inner.update(record), write=True)

    def remove(self, id):
        return self._call(lambda: self.inner.remove(id), write=True)


#: The protocol methods that change something on a linksync server.
_SERVER_WRITES = ('registerURLs', 'unregisterURLs', 'registerLink')


def flaky(store, every=3, after_write=False):
    """Make every `every`-th call to the accessors of `store` fail with
    StoreUnavailable: before the call, or (`after_write`) after a write was
    made, as when an answer is lost on the way. For a RemoteStore, the
    calls failing are its client's calls to the server (each XML-RPC call,
    with ServerUnreachable, as a network failure would; the other calls go
    to the server). Returns a dict counting ``calls`` and ``failures``;
    set its ``on`` to False to make the store recover."""
    counter = {'calls': 0, 'failures': 0, 'on': True}
    client = getattr(store, 'client', None)
    if client is not None:
        from linksync.client.errors import ServerUnreachable
        once = client._once
        client._once = lambda call: _flaky_call(
            counter, every, after_write, '%s (%s)' % (client.url,
                                                      call.method),
            ServerUnreachable, lambda: once(call),
            call.method in _SERVER_WRITES)
        return counter
    for data_type, accessor in list(store.accessors.items()):
        store.accessors[data_type] = FlakyAccessor(accessor, every,
                                                   after_write, counter)
    return counter


class ClientKit:
    """A client kit (linksync.client.ClientService) in this process,
    answering on a free port of 127.0.0.1, for a started ServerFixture.

    It registers its client with the server (callback: its own URL)
    unless told not to, and keeps its links in `path`. Its clock (a
    task.Clock unless given) drives its retries and stamps its links.
    """

    def __init__(self, server, path='links.yaml', client_id='fred',
                 password='secret', register=True, clock=None, **kw):
        self.server = server
        self.path = path
        self.client_id = client_id
        self.password = password
        self.clock = clock if clock is not None else task.Clock()
        self.port = free_port()
        self.callback_url = 'http://127.0.0.1:%d/RPC2' % self.port
        self.kw = kw
        self.service = None
        if register:
            server.register_client(client_id, password, self.callback_url)

    def start(self):
        from linksync.client.service import ClientService
        self.rt = reactor_thread()
        self.service = ClientService(
            self.path, self.server.url, self.client_id, self.password,
            'tcp:%d:interface=127.0.0.1' % self.port, self.rt.reactor,
            self.clock, **self.kw)

        def start():
            self.service.startService()
            return self.service.ready
        self.rt.call(start)
        on_cleanup(self.stop)
        return self

    def stop(self):
        if self.service is not None and self.service.running:
            self.rt.call(self.service.stopService)

    @property
    def db(self):
        return self.service.db

    def call(self, func, *args, **kw):
        """Run func in the reactor thread (where the kit lives)."""
        return self.rt.call(func, *args, **kw)

    def advance(self, seconds):
        """Move the kit's clock (retries) forward, then wait until no
        synchronisation or write to the server is under way."""
        self.rt.call(self.clock.advance, seconds)
        self.rt.call(self.service.idle)


# -- web pages (linksync.server.web) ---------------------------------------------------

import base64  # noqa: E402
import collections  # noqa: E402
import html.parser  # noqa: E402
import urllib.error  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

Answer = collections.namedtuple('Answer', 'status headers text')


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kw):
        return None


def fetch(url, password=None, user='', form=None, cookie=None,
          accept='text/html,*/*;q=0.8', headers=None):
    """GET `url` (POST when `form`, a dict, is given) as a browser would,
    without following redirects; an Answer (status, headers, text).

    `password` (with `user`) is sent as HTTP Basic credentials, `cookie`
    as the Cookie header; `accept` is the Accept header (None: none, as
    scripts send); `headers` more headers (a dict).
    """
    data = urllib.parse.urlencode(form).encode() if form is not None \
        else None
    request = urllib.request.Request(url, data=data)
    if accept is not None:
        request.add_header('Accept', accept)
    if password is not None:
        pair = ('%s:%s' % (user, password)).encode('utf-8')
        request.add_header('Authorization',
                           'Basic ' + base64.b64encode(pair).decode())
    if cookie:
        request.add_header('Cookie', cookie)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        response = opener.open(request, timeout=30)
    except urllib.error.HTTPError as e:
        response = e
    with response:
        return Answer(response.status, response.headers,
                      response.read().decode('utf-8'))


class _PageText(html.parser.HTMLParser):
    """The text of a page's <main>, a line per block, cells split by |."""

    BLOCKS = {'h1', 'h2', 'h3', 'p', 'tr', 'section', 'div', 'table',
              'form', 'br', 'label', 'ul', 'li', 'summary'}
    HIDDEN = {'select', 'button', 'style', 'script', 'svg'}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.lines = ['']
        self.inside = False
        self.hidden = 0
        self.cells = 0

    def handle_starttag(self, tag, attrs):
        if tag == 'main':
            self.inside = True
        elif tag in self.HIDDEN:
            # A picture reads as its text alternative.
            label = dict(attrs).get('aria-label')
            if tag == 'svg' and label and self.inside and not self.hidden:
                self.lines.append('[picture: %s]' % label)
                self.lines.append('')
            self.hidden += 1
        elif tag == 'br' and self.cells:
            self.lines[-1] += ' '              # a line break in a cell
        elif tag in self.BLOCKS:
            self.lines.append('')
            self.cells = 0
        elif tag in ('td', 'th'):
            if self.cells:
                self.lines[-1] += ' | '
            self.cells += 1

    def handle_endtag(self, tag):
        if tag == 'main':
            self.inside = False
        elif tag in self.HIDDEN:
            self.hidden -= 1
        elif tag in self.BLOCKS:
            self.lines.append('')

    def handle_data(self, data):
        if self.inside and not self.hidden:
            self.lines[-1] += ' '.join(('.' + data + '.').split())[1:-1]

    def text(self):
        lines = (' '.join(line.split()) for line in self.lines)
        return '\n'.join(line for line in lines if line)


def page_text(page):
    """What a page shows in its <main>, as plain text (tests and docs)."""
    parser = _PageText()
    parser.feed(page)
    parser.close()
    return parser.text()


# -- scale-out: linksync processes on a shared database -----------------------

#: How to run the `linksync` command of this checkout.
LINKSYNC_COMMAND = [sys.executable, '-m', 'linksync.cli']


class Command:
    """A `linksync ARGS...` process, its output kept in `lines`.

    :meth:`start` waits until a line containing `ready` is printed (and
    fails with the output so far when the process exits first);
    :meth:`stop` sends SIGTERM and returns the exit status. Its output is
    read all along (a chatty process never blocks on a full pipe). Stopped
    at cleanup.
    """

    def __init__(self, *args, ready='linksync running', env=None):
        self.args = [str(a) for a in args]
        self.ready = ready
        self.env = dict(os.environ)
        self.env.pop('LINKSYNC_SECRET', None)
        self.env.update(env or {})
        self.lines = []
        self.process = None
        self._ready = threading.Event()

    def start(self, timeout=120):
        self.process = subprocess.Popen(
            LINKSYNC_COMMAND + self.args, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env=self.env)
        on_cleanup(self.stop)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout) or self.process.poll() is not None \
                and not self._seen_ready:
            self.stop()
            raise AssertionError('linksync %s did not start:\n%s' % (
                ' '.join(self.args[:1]), self.text))
        return self

    _seen_ready = False

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)
            if self.ready in line:
                self._seen_ready = True
                self._ready.set()
        self._ready.set()  # exited

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Stop the process (when running); its exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.process.kill()
                self.process.wait()
        self._reader.join(10)
        return self.process.returncode

    @property
    def text(self):
        return ''.join(self.lines)


class ClientProcess(Command):
    """``linksync client serve ARGS`` in a process of its own (a
    :class:`Command`): start() returns once it says it serves (its first
    synchronisation tried), ``serving`` is that line; stop() ends it
    (SIGTERM) and returns its exit status."""

    READY = 'linksync client: serving'

    def __init__(self, *args, env=None):
        super().__init__('client', 'serve', *args, ready=self.READY, env=env)

    @property
    def serving(self):
        return next(line.rstrip('\n') for line in self.lines
                    if line.startswith(self.READY))


def zeo_server(data):
    """A started `linksync zeo` on a free port for directory `data`; its
    address is ``server.address`` (HOST:PORT)."""
    address = '127.0.0.1:%d' % free_port()
    server = Command('zeo', '--data', data, '--listen', address,
                     ready='ZEO server')
    server.address = address
    return server.start()


class PostgreSQLServer:
    """A PostgreSQL server of its own, in a temporary directory, on a free
    port of 127.0.0.1 (Debian's `postgresql` package: initdb, pg_ctl).

    PostgreSQL refuses to run as root: under root, the cluster belongs to
    the unprivileged ``postgres`` user. :meth:`unavailable` says why none
    can start here (None when one can). ``dsn`` names database
    ``linksync``, made by :meth:`start`. Stopped at cleanup.
    """

    USER = 'postgres'

    def __init__(self):
        self.port = free_port()
        self.dir = None
        self.dsn = 'postgresql://%s@127.0.0.1:%d/linksync' % (
            self._user(), self.port)

    @staticmethod
    def bindir():
        """The directory of initdb and pg_ctl, or None."""
        import glob
        import shutil
        found = shutil.which('pg_ctl')
        if found:
            return os.path.dirname(os.path.realpath(found))
        dirs = sorted(glob.glob('/usr/lib/postgresql/*/bin'),
                      key=lambda d: [int(p) for p in d.split('/')[-2]
                                     .split('.') if p.isdigit()])
        return dirs[-1] if dirs else None

    @classmethod
    def _user(cls):
        if os.geteuid() != 0:
            import pwd
            return pwd.getpwuid(os.geteuid()).pw_name
        return cls.USER

    @classmethod
    def unavailable(cls):
        """Why no PostgreSQL server can start here, or None."""
        bindir = cls.bindir()
        if bindir is None or not os.path.exists(
                os.path.join(bindir, 'initdb')):
            return ('PostgreSQL is not installed (apt-get install '
                    'postgresql)')
        if os.geteuid() == 0:
            import pwd
            try:
                pwd.getpwnam(cls.USER)
            except KeyError:
                return 'running as root without a %r user to run ' \
                    'PostgreSQL as' % cls.USER
        try:
            import psycopg2  # noqa: F401
            import relstorage  # noqa: F401
        except ImportError:
            return ('RelStorage is not installed (pip install '
                    'linksync[postgresql])')
        return None

    def _run(self, *args):
        kw = {}
        if os.geteuid() == 0:
            kw['user'] = self.USER
        result = subprocess.run(
            [os.path.join(self.bindir(), args[0])] + list(args[1:]),
            capture_output=True, text=True, timeout=120, cwd=self.dir, **kw)
        if result.returncode != 0:
            raise RuntimeError('%s failed: %s' % (
                args[0], (result.stderr or result.stdout).strip()[-2000:]))
        return result

    def start(self):
        self.dir = tempfile.mkdtemp(prefix='linksync-pg-')
        os.chmod(self.dir, 0o755)
        if os.geteuid() == 0:
            import pwd
            entry = pwd.getpwnam(self.USER)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        on_cleanup(self.stop)
        data = os.path.join(self.dir, 'data')
        self._run('initdb', '-D', data, '-A', 'trust', '-U', self._user(),
                  '-E', 'UTF8', '--no-sync')
        self._run('pg_ctl', '-D', data, '-w', '-t', '60', '-l',
                  os.path.join(self.dir, 'log'), '-o',
                  '-h 127.0.0.1 -p %d -k %s -F' % (self.port, self.dir),
                  'start')
        self._started = True
        self._run('createdb', '-h', '127.0.0.1', '-p', str(self.port),
                  '-U', self._user(), 'linksync')
        return self

    _started = False

    def stop(self):
        import shutil
        if self._started:
            self._started = False
            self._run('pg_ctl', '-D', os.path.join(self.dir, 'data'), '-w',
                      '-m', 'fast', 'stop')
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
