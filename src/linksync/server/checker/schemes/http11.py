"""A small HTTP/1.1 client made for link checking, with a connection pool.

A link check needs the status line and two headers (Location, Retry-After)
of a HEAD, or of a GET, whose verdict is its head: its body is never
waited for.
Twisted's general-purpose Agent spends most of a check's CPU time on what
a check does not need (header objects, body delivery, a Deferred chain per
stage); this client parses the head of the answer in one go, skips the
body by its framing (Content-Length, chunked) when it came with the head,
and keeps the connection for the next request to that host then; a body
still to come (it may trickle, stall or never end) is not read: the
connection is dropped.

:class:`Pool` keeps at most ``max_idle`` idle connections per (scheme,
host, port) and opens new ones through a function (linksync.server.checker.connector, so
the network policy and the connect timeout apply). A request sent on a
reused connection that the server had closed meanwhile is sent again once
on a new connection.

>>> parse_head(b'HTTP/1.1 301 Moved\\r\\nLocation: /x\\r\\nA: b\\r\\n')
(301, b'Moved', {b'location': b'/x', b'a': b'b'}, (1, 1))
"""

import collections
import re

from twisted.internet import defer, error, interfaces, protocol, tcp
from twisted.web._newclient import ParseError

#: The head of an answer may not be longer (Chromium allows 256 KiB).
MAX_HEAD = 256 * 1024

#: The end of a head: an empty line, its line breaks CR LF or bare LF.
_HEAD_END = re.compile(b'\r?\n\r?\n')
_LINE_BREAK = re.compile(b'\r?\n')


class StaleConnection(Exception):
    """A reused connection was closed before any answer came."""


def parse_head(head):
    """(status, phrase, {lower-case name: last value}, version) of a head.

    Read as browsers read it: lines may end with a bare LF, the version
    may be lower case, a folded line continues the header before it, a
    line that is no header is skipped. Every ``Set-Cookie`` is kept (a
    tuple, in order). Content-Length values that disagree read as
    ``b'conflict'``: the body's end is then unknown, so the connection is
    not reused (a pooled connection must never be desynchronised).
    """
    lines = _LINE_BREAK.split(head)
    status_line = lines[0]
    parts = status_line.split(b' ', 2)
    if len(parts) < 2 or not parts[0][:5].upper() == b'HTTP/' or \
            not parts[1].isdigit() or len(parts[1]) != 3:
        raise ParseError('bad status line', status_line[:100])
    try:
        major, _, minor = parts[0][5:].partition(b'.')
        version = (int(major), int(minor or 0))
    except ValueError:
        raise ParseError('bad HTTP version', parts[0][:20]) from None
    headers = {}
    cookies = []
    lengths = set()
    name = None
    for line in lines[1:]:
        if not line:
            continue
        if line[:1] in (b' ', b'\t'):
            if name is not None and name != b'set-cookie':
                headers[name] = (headers[name] + b' ' + line.strip()).strip()
            continue
        name, sep, value = line.partition(b':')
        name = name.strip().lower()
        if not sep or not name:
            name = None
            continue
        value = value.strip()
        if name == b'set-cookie':
            cookies.append(value)
            continue
        if name == b'content-length':
            lengths.update(v.strip() for v in value.split(b','))
        headers[name] = value
    if cookies:
        headers[b'set-cookie'] = tuple(cookies)
    if len(lengths) > 1:
        headers[b'content-length'] = b'conflict'
    elif lengths:
        headers[b'content-length'] = lengths.pop()
    return int(parts[1]), parts[2] if len(parts) > 2 else b'', headers, \
        version


def send_now(transport):
    """Hand what was written to `transport` to the kernel now.

    A transport's ``write`` only buffers: the bytes leave at the reactor's
    next turn, and a turn busy with something else (a commit of a batch of
    results takes a good part of a second) would hold them back while the
    host's politeness delay already runs; the next request to that host
    would then follow on the wire at once. So the socket under the
    transport (under TLS too) is written at once, through its
    ``IWriteDescriptor.doWrite``; what the kernel cannot take yet still
    goes at the reactor's next turn, and a failure is left for the reactor
    to find there.
    """
    while transport is not None and \
            not interfaces.IWriteDescriptor.providedBy(transport):
        transport = getattr(transport, 'transport', None)
    if transport is not None and not getattr(transport, 'disconnecting',
                                             True):
        transport.doWrite()


class HTTPClient(protocol.Protocol):
    """One connection; one request at a time."""

    def __init__(self):
        self.buffer = b''
        self.pending = None
        self.answer = None
        self.reused = False
        self.connected_ = False
        self.pool_key = None
        self.pool = None
        self.idle_timer = None
        self._socket = None

    def connectionMade(self):
        self.connected_ = True
        transport = self.transport
        # A plain TCP connection is written straight to its socket (see
        # _write); under TLS the bytes go through the TLS layer (whose
        # wrapper provides the interfaces of the TCP transport under it).
        if isinstance(transport, tcp.Connection) and not transport.TLS:
            self._socket = transport.getHandle()

    # -- asking ----------------------------------------------------------------

    def request(self, data, head_only, body_limit):
        """Send the request bytes; a Deferred firing (status, phrase,
        headers)."""
        self.head_only = head_only
        self.body_limit = body_limit
        self.buffer = b''
        self.answer = None
        self.got_bytes = False
        self.pending = defer.Deferred(self._cancel)
        self._write(data)
        return self.pending

    def _write(self, data):
        # One request at a time, a few hundred bytes: the kernel takes it
        # whole from an idle connection's socket. Written there directly,
        # it is not buffered by the transport, which would register the
        # socket for writing and unregister it after the reactor's next
        # turn sent it (two epoll_ctl calls and a turn per request).
        sock = self._socket
        if sock is not None:
            try:
                sent = sock.send(data)
            except OSError:
                # (EAGAIN, or a failure the reactor finds on its own.)
                sent = 0
            if sent == len(data):
                return
            # The rest, and all later writes, go through the transport, so
            # that the bytes keep their order.
            self._socket = None
            data = data[sent:]
        self.transport.write(data)
        send_now(self.transport)

    def _cancel(self, d):
        self.pending = None
        self.transport.abortConnection()

    # -- reading ------------------------------------------------------------------

    def dataReceived(self, data):
        if self.pending is None:
            self.transport.abortConnection()  # nobody asked for this
            return
        self.got_bytes = True
        if self.answer is None:
            # (Searched from where the last search stopped, less the 3
            # bytes an end split across two reads may have begun with.)
            start = max(len(self.buffer) - 3, 0)
            self.buffer += data
            while True:
                found = _HEAD_END.search(self.buffer, start)
                if found is None or found.start() > MAX_HEAD:
                    if len(self.buffer) > MAX_HEAD:
                        self._fail(ParseError('answer head too long', ''))
                    return
                try:
                    answer = parse_head(self.buffer[:found.start()])
                except ParseError as e:
                    self._fail(e)
                    return
                data = self.buffer[found.end():]
                self.buffer = b''
                if 100 <= answer[0] < 200:
                    self.buffer = data  # an interim answer: read on
                    start = 0
                    continue
                break
            self.answer = answer
            self._frame(answer)
            asked = self.pending
            self._body(data)
            # (When the body was all here, the answer was given, and the
            # connection, back in the pool, may carry a new request now.)
            if self.pending is asked:
                # The head is the verdict. A body that is not all here
                # with it is not waited for (it may trickle, stall or never
                # end): the connection is dropped instead of kept.
                self._done(keep=False)
            return
        data = self.buffer + data if self.buffer else data
        self.buffer = b''
        self._body(data)

    def _frame(self, answer):
        status, _, headers, version = answer
        connection = headers.get(b'connection', b'').lower()
        self.keep = (version >= (1, 1) and connection != b'close') or \
            connection == b'keep-alive'
        self.received = 0
        if self.head_only or status in (204, 304):
            self.mode, self.left = 'length', 0
        elif b'chunked' in headers.get(b'transfer-encoding', b'').lower():
            self.mode, self.cstate = 'chunked', 'size'
            if b'content-length' in headers:
                self.keep = False   # two framings: trust neither for reuse
        elif b'content-length' in headers:
            try:
                self.mode, self.left = 'length', int(
                    headers[b'content-length'])
            except ValueError:
                self.mode, self.keep = 'close', False
        else:
            self.mode, self.keep = 'close', False

    def _body(self, data):
        if self.mode == 'length':
            self.left -= len(data)
            self.received += len(data)
            if self.left <= 0:
                self._done(keep=self.left == 0 and self.keep)
                return
        elif self.mode == 'chunked':
            if self._chunks(data):
                return
        else:
            self.received += len(data)
        if self.received > self.body_limit:
            self._done(keep=False)

    def _chunks(self, data):
        """Skip chunked data; True when the answer is finished."""
        buf = self.buffer + data if self.buffer else data
        self.buffer = b''
        while True:
            if self.cstate == 'data':
                take = min(self.chunk_left, len(buf))
                self.chunk_left -= take
                self.received += take
                buf = buf[take:]
                if self.chunk_left:
                    return False
                self.cstate = 'crlf'
            if self.cstate == 'crlf':
                if len(buf) < 2:
                    self.buffer = buf
                    return False
                buf = buf[2:]
                self.cstate = 'size'
            end = buf.find(b'\r\n')
            if end < 0:
                if len(buf) > 4096:
                    self._done(keep=False)      # the head is the verdict
                    return True
                self.buffer = buf
                return False
            line, buf = buf[:end], buf[end + 2:]
            if self.cstate == 'trailer':
                if not line:
                    self._done(keep=self.keep)
                    return True
                continue
            try:
                size = int(line.split(b';', 1)[0], 16)
            except ValueError:
                # A broken body after a good head: the head is the
                # verdict, the connection is not reused.
                self._done(keep=False)
                return True
            if size == 0:
                self.cstate = 'trailer'
            else:
                self.chunk_left = size
                self.cstate = 'data'

    # -- ending ------------------------------------------------------------------

    def _done(self, keep):
        d, self.pending = self.pending, None
        status, phrase, headers, _ = self.answer
        if keep and self.pool is not None:
            self.pool.put(self)
        else:
            self.transport.loseConnection()
        d.callback((status, phrase, headers))

    def _fail(self, exc):
        d, self.pending = self.pending, None
        self.transport.abortConnection()
        if d is not None:
            d.errback(exc)

    def connectionLost(self, reason):
        self.connected_ = False
        if self.pool is not None:
            self.pool.forget(self)
        d, self.pending = self.pending, None
        if d is None:
            return
        if self.answer is not None:
            # The body ended with the connection, or was cut short: the
            # head is what a check needs.
            d.callback(self.answer[:3])
        elif self.reused and not self.got_bytes and \
                reason.check(error.ConnectionDone, error.ConnectionLost):
            d.errback(StaleConnection())
        else:
            d.errback(reason)


class Pool:
    """Idle connections per (scheme, host, port), at most `max_idle` each."""

    def __init__(self, clock, connect, max_idle=2, idle_timeout=60.0):
        self.clock = clock
        self.connect = connect
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.idle = collections.defaultdict(list)

    def take(self, key):
        """An idle connected HTTPClient for `key`, or None."""
        idle = self.idle.get(key)
        while idle:
            client = idle.pop()
            if not idle:
                del self.idle[key]
            self._stop_timer(client)
            if client.connected_:
                client.reused = True
                return client
            idle = self.idle.get(key)
        return None

    def get(self, key, fresh=False):
        """A Deferred firing a connected HTTPClient for `key` (a new
        connection with `fresh`)."""
        client = None if fresh else self.take(key)
        if client is not None:
            return defer.succeed(client)
        d = self.connect(key, _Factory())

        def made(client):
            client.pool_key = key
            client.pool = self
            client.reused = False
            return client
        return d.addCallback(made)

    def put(self, client):
        idle = self.idle[client.pool_key]
        if len(idle) >= self.max_idle:
            client.transport.loseConnection()
            return
        idle.append(client)
        client.idle_timer = self.clock.callLater(
            self.idle_timeout, client.transport.loseConnection)

    def forget(self, client):
        self._stop_timer(client)
        idle = self.idle.get(client.pool_key)
        if idle and client in idle:
            idle.remove(client)
            if not idle:
                del self.idle[client.pool_key]

    def _stop_timer(self, client):
        if client.idle_timer is not None and client.idle_timer.active():
            client.idle_timer.cancel()
        client.idle_timer = None

    def close(self):
        for clients in list(self.idle.values()):
            for client in list(clients):
                self._stop_timer(client)
                client.transport.loseConnection()
        self.idle.clear()


class _Factory(protocol.ClientFactory):
    protocol = HTTPClient
    noisy = False
