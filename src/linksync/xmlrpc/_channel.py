"""The server's HTTP channel: a short way for plain XML-RPC calls.

twisted.web spends more on an HTTP request than linksync spends on an
XML-RPC call: a Request object with header objects, resource traversal, a
Date header formatted per response, the answer written in pieces and sent
on the reactor's next turn. Nearly every request an XML-RPC client sends is
the same plain thing::

    POST /RPC2 HTTP/1.1      (or POST /)
    Content-Length: N
    ...                      (no Transfer-Encoding, Expect, Content-Encoding)

    <N bytes of XML>

:class:`XMLRPCChannel` answers such a request itself when its head
arrives while the connection is between requests: it reads the head, keeps
the body's pieces until it is all here (at most the size limit), hands it
to the site's :class:`linksync.xmlrpc.XMLRPCResource`
(:meth:`~linksync.xmlrpc.XMLRPCResource.handle`) and writes the answer, one
header block and the body, in one write sent at once. Everything else goes
to twisted.web's HTTPChannel unchanged, from its first byte: other methods
and paths, HTTP/1.0, ``Connection: close``, chunked bodies, ``Expect:
100-continue``, Content-Encoding, bodies over 1 MiB (and those over the
size limit, refused with 413 by linksync.xmlrpc.LimitedRequest), repeated, folded or malformed
headers, a head not received whole in one piece. So twisted.web still
serves the pages and every unusual request, with its hardening.

A method whose result is a Deferred (a mailed password, a multicall) keeps
the connection busy: what the client sends meanwhile waits, with the
transport paused, and is read once the answer is written.
"""

import email.utils
import re
import time

from twisted.internet import tcp
from twisted.web import http, server

from linksync.xmlrpc.resource import (
    Call, LimitedRequest, XMLRPCResource, no_delay)

#: The paths of the XML-RPC endpoint (see linksync.xmlrpc.site.Root).
XMLRPC_PATHS = frozenset({b'/', b'/RPC2'})

#: Bodies larger than this go the long way. The short way keeps a body in
#: memory while it arrives; twisted.web spools a large one to a temporary
#: file, so many slow clients sending large bodies at once cost disk, not
#: memory. A batch of 1,000 URLs is about 70 KB.
SHORT_WAY_MAX_BODY = 1024 * 1024

#: Headers that send a request the long way (twisted.web handles them).
_LONG_WAY_HEADERS = frozenset({
    b'transfer-encoding', b'expect', b'content-encoding', b'upgrade'})

#: A header line as twisted.web takes it without question: a token for a
#: name, a colon, a value without NUL, CR or LF. Any other line (a bare LF
#: that a proxy in front may have read as a line end, a folded line, odd
#: characters) sends the request to twisted.web, which judges it (400):
#: this channel never reads a request head differently from it.
_HEADER_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\x00\r\n]*")

_REASONS = {200: b'OK', 401: b'Unauthorized'}


class _HeaderBlock:
    """The status line and the fixed headers of an answer, made once per
    second (the Date header changes)."""

    def __init__(self):
        self._second = None
        self._blocks = {}

    def get(self, code, content_type, gzipped):
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._blocks = {}
        key = (code, content_type, gzipped)
        block = self._blocks.get(key)
        if block is None:
            date = email.utils.formatdate(second, usegmt=True)
            block = self._blocks[key] = b''.join([
                b'HTTP/1.1 %d %s\r\n' % (code, _REASONS.get(code, b'')),
                b'Server: %s\r\n' % server.version,
                b'Date: %s\r\n' % date.encode('ascii'),
                b'Content-Type: %s\r\n' % content_type,
                b'Content-Encoding: gzip\r\n' if gzipped else b'',
                b'Content-Length: '])
        return block


_header_block = _HeaderBlock()


class CallRequest:
    """What an XML-RPC method may ask of the request that called it
    (``call.request``), for calls answered by the channel itself."""

    def __init__(self, channel, headers, path):
        self.channel = channel
        self.requestHeaders = headers
        self.method = b'POST'
        self.path = self.uri = path
        self.clientproto = b'HTTP/1.1'

    def getHeader(self, name):
        return self.requestHeaders.get(name.lower())

    def getHost(self):
        return self.channel.transport.getHost()

    def getClientAddress(self):
        return self.channel.transport.getPeer()

    def isSecure(self):
        return self.channel.isSecure()


class XMLRPCChannel(http.HTTPChannel):
    """An HTTPChannel answering plain XML-RPC requests itself (see the
    module docstring). Its site's ``xmlrpc`` is the XMLRPCResource (None:
    everything goes to twisted.web); the site counts the requests answered
    here in ``answered_directly``."""

    #: The data received while an answer is awaited (None: none is).
    _waiting = None
    #: The pieces of a request whose body is not all here yet (None: no
    #: such request), their size and the size of the whole request.
    _partial = None
    _partial_size = _partial_needed = 0
    _peer = '-'
    _lost = False

    def connectionMade(self):
        super().connectionMade()
        self._peer = getattr(self.transport.getPeer(), 'host', '-')
        # The short way makes no twisted.web request, which would set it.
        no_delay(self)

    def dataReceived(self, data):
        if self._waiting is not None:
            self._waiting.append(data)
            return
        if self._partial is not None:
            # The rest of a request whose head was read.
            self.resetTimeout()
            self._partial.append(data)
            self._partial_size += len(data)
            if self._partial_size < self._partial_needed:
                return
            data = b''.join(self._partial)
            self._partial = None
        elif not self._between_requests():
            return super().dataReceived(data)
        else:
            self.resetTimeout()
        while data:
            rest = self._answer_request(data)
            if rest is None:
                return super().dataReceived(data)
            data = rest
            if self._waiting is not None:
                if data:
                    self._waiting.append(data)
                return
            if not self._between_requests():
                # The answer closed the connection, or the transport was
                # paused: twisted.web takes the rest (and drops it when the
                # connection is going).
                return super().dataReceived(data) if data else None

    def _between_requests(self):
        """True when the channel is at the start of a request, with no
        request of twisted.web's open and no data of one buffered."""
        return (not self.requests and not self._handlingRequest and
                self.line_mode and not self._buffer and
                not self._busyReceiving and self.persistent and
                not self.paused and self.transport is not None and
                not self.transport.disconnecting and
                getattr(self.site, 'xmlrpc', None) is not None)

    def _answer_request(self, data):
        """Answer the request at the start of `data` if it goes the short
        way; returns the data after it, or None (twisted.web takes it)."""
        end = data.find(b'\r\n\r\n', 0, self.totalHeadersSize)
        if end < 0 or not data.startswith(b'POST /'):
            return None
        lines = data[:end].split(b'\r\n')
        if len(lines) > self.maxHeaders + 1:
            return None
        parts = lines[0].split(b' ')
        if len(parts) != 3 or parts[2] != b'HTTP/1.1' or \
                parts[1] not in XMLRPC_PATHS:
            return None
        headers = {}
        header_line = _HEADER_LINE.fullmatch
        for line in lines[1:]:
            if header_line(line) is None:
                return None  # folded or malformed: twisted.web judges
            name, _, value = line.partition(b':')
            name = name.lower()
            if name in headers or name in _LONG_WAY_HEADERS:
                return None
            headers[name] = value.strip(b' \t')
        length = headers.get(b'content-length')
        if length is None or not length.isdigit():
            return None
        length = int(length)
        resource = self.site.xmlrpc
        if length > resource.max_request_bytes:
            return None  # refused with 413 by LimitedRequest
        if length > SHORT_WAY_MAX_BODY:
            return None  # kept in a file by twisted.web while it comes
        connection = headers.get(b'connection')
        if connection is not None and connection.lower() != b'keep-alive':
            return None
        start = end + 4
        if len(data) - start < length:
            # The body is still on its way: keep what came (at most the
            # size limit) until it is all here.
            self._partial = [data]
            self._partial_size = len(data)
            self._partial_needed = start + length
            return b''
        body = data[start:start + length]
        call = Call(CallRequest(self, headers, parts[1]),
                           peer=self._peer)
        accepted = headers.get(b'accept-encoding', b'').lower()
        answered = []

        def reply(answer):
            answered.append(True)
            self._reply(answer)
        self.site.answered_directly += 1
        resource.handle(call, body, b'gzip' in accepted, reply)
        if not answered:
            self._await_answer()
        return data[start + length:]

    def _await_answer(self):
        # Like twisted.web while a request is answered: read no further.
        self._waiting = []
        self._handlingRequest = True
        self._networkProducer.pauseProducing()
        if self.timeOut:
            self._savedTimeOut = self.setTimeout(None)

    def _reply(self, answer):
        if self._lost:
            return
        self._send(_header_block.get(answer.code, answer.content_type,
                                     answer.gzipped) +
                   b'%d\r\n\r\n' % len(answer.body) + answer.body)
        if self._waiting is not None:
            waiting, self._waiting = self._waiting, None
            self._handlingRequest = False
            if not self._waitingForTransport:
                self._networkProducer.resumeProducing()
            if self._savedTimeOut:
                self.setTimeout(self._savedTimeOut)
            data = b''.join(waiting)
            if data:
                self.dataReceived(data)

    def _send(self, data):
        """Write `data` to the transport, sent at once when it can be.

        A TCP transport sends what it is given on the reactor's next turn;
        an answer sent now reaches the client one turn (and two changes of
        the reactor's interest in the socket) earlier. Only when nothing
        waits in the transport's buffers, so nothing is reordered.
        """
        transport = self.transport
        if isinstance(transport, tcp.Connection) and \
                not transport.dataBuffer and \
                not getattr(transport, '_tempDataBuffer', True) and \
                transport.connected and not transport.disconnecting:
            try:
                sent = transport.socket.send(data)
            except OSError:
                sent = 0  # the transport finds out and reports it
            data = data[sent:]
        if data:
            transport.write(data)

    def connectionLost(self, reason):
        self._lost = True
        self._waiting = self._partial = None
        super().connectionLost(reason)
