"""A hardened XML-RPC server resource for Twisted.

Twisted's own ``twisted.web.xmlrpc`` parses with the standard library's
expat without limits and has no ``system.multicall``. This module is the
server side linksync needs:

* methods declared with their parameter types: a wrong argument count or
  type is a Fault naming the method and the parameter, before the method
  runs; the signatures feed ``system.methodSignature``;
* ``system.listMethods``, ``system.methodHelp``, ``system.methodSignature``
  and ``system.multicall`` (calls run in order; a failing call gives a fault
  struct in its place and does not stop the others);
* request bodies over a limit are refused with 413 before they are parsed
  (and before they are stored: see :class:`LimitedRequest`); gzip request
  bodies, of one member or several, are inflated up to the same limit; DTDs and entities are refused
  (defusedxml), so entity-expansion bombs never expand;
* an answer is at most ``max_answer_bytes`` long (16 MiB by default): a
  larger one is a Fault 413 instead; a ``system.multicall`` whose answer
  grows past it stops there (see :meth:`XMLRPCResource._multicall`), so a
  small request cannot ask for an answer without end;
* :class:`Unauthorized` raised by a method answers HTTP 401;
* any other error is logged and answered with a Fault; nothing a client
  sends can stop the service;
* one log line per request (peer, client id, method, outcome, duration);
  parameters, and so passwords, are never logged;
* a body longer than ``parse_in_thread_bytes`` (256 KiB) is parsed in a
  small pool of threads of its own, not in the reactor thread: parsing
  the largest body accepted (20 MiB) takes seconds, during which the
  other clients are served. Smaller bodies, the common calls, are parsed
  at once, as before (no thread hop, no Deferred).
"""

import gzip
import io
import re
import time
import xmlrpc.client
import zlib

from defusedxml.xmlrpc import DefusedExpatParser
from twisted.internet import defer, task, threads
from twisted.logger import Logger, LogLevel
from twisted.python import failure
from twisted.python.threadpool import ThreadPool
from twisted.web import resource, server

from linksync.xmlrpc.faults import Fault, INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, PARSE_ERROR, TOO_LARGE, UNAUTHORIZED, UNAVAILABLE

# The call log: one line per call, under a name of its own for filters.
log = Logger(namespace='linksync.xmlrpc')

DEFAULT_MAX_REQUEST_BYTES = 20 * 1024 * 1024
#: Responses larger than this are gzipped for clients that accept it.
GZIP_RESPONSE_THRESHOLD = 16 * 1024
#: The log line of a call (parameters, and so passwords, never appear).
_REQUEST_LINE = '{peer} {client} {method} {outcome} {ms:.1f}ms'


class Unauthorized(Exception):
    """Bad credentials: answered with HTTP status 401."""


_TYPE_NAMES = {
    str: 'string', int: 'int', bool: 'boolean', float: 'double',
    list: 'array', dict: 'struct', bytes: 'base64',
}


class Param:
    """A declared parameter: a name and the Python type it must have."""

    def __init__(self, name, type, optional=False):
        self.name = name
        self.type = type
        self.optional = optional

    def accepts(self, value):
        if self.type is bool:
            # Some clients (PHP, old Perl) send 0/1 as int for booleans.
            return isinstance(value, bool) or value in (0, 1)
        if self.type is int:
            return isinstance(value, int) and not isinstance(value, bool)
        if self.type is float:
            return isinstance(value, (int, float)) and \
                not isinstance(value, bool)
        if self.type is list:
            return isinstance(value, (list, tuple))
        return isinstance(value, self.type)

    def convert(self, value):
        if self.type is bool:
            return bool(value)
        if self.type is float:
            return float(value)
        if self.type is list:
            return list(value)
        return value


class Method:
    """A method the resource publishes."""

    def __init__(self, name, func, params, returns, help):
        self.name = name
        self.func = func
        self.params = list(params)
        self.returns = returns
        self.help = help
        self.required = sum(1 for p in self.params if not p.optional)

    def signatures(self):
        ret = _TYPE_NAMES[self.returns]
        names = [_TYPE_NAMES[p.type] for p in self.params]
        return [[ret] + names[:n]
                for n in range(self.required, len(names) + 1)]

    def check(self, args):
        """The converted arguments; Fault when they do not fit."""
        if not self.required <= len(args) <= len(self.params):
            if self.required == len(self.params):
                expected = str(self.required)
            else:
                expected = '%d to %d' % (self.required, len(self.params))
            raise Fault(INVALID_PARAMS, '%s takes %s arguments (%s), got %d'
                        % (self.name, expected, ', '.join(
                            p.name for p in self.params), len(args)))
        converted = []
        for position, (param, value) in enumerate(zip(self.params, args), 1):
            if not param.accepts(value):
                raise Fault(INVALID_PARAMS, '%s: argument %d (%s) must be '
                            '%s, not %s' % (
                                self.name, position, param.name,
                                _TYPE_NAMES[param.type],
                                _xmlrpc_type_name(value)))
            converted.append(param.convert(value))
        return converted


def _xmlrpc_type_name(value):
    for python_type, name in _TYPE_NAMES.items():
        if type(value) is python_type:
            return name
    if isinstance(value, tuple):
        return 'array'
    if value is None:
        return 'nil'
    return type(value).__name__


class Call:
    """What a method knows of the request that called it.

    `request` offers at least ``getHeader``, ``getHost`` and ``isSecure``
    of a twisted.web request; `peer` is the client's address (text).
    """

    def __init__(self, request=None, method=None, peer='-'):
        self.request = request
        self.method = method
        self.peer = peer
        #: Set by authenticated methods, for the request log.
        self.client_id = None


class MethodTable:
    """The methods of an XML-RPC API, declared with a decorator.

    >>> table = MethodTable()
    >>> @table.method('add', [Param('a', int), Param('b', int)], int)
    ... def add(call, a, b):
    ...     '''Add two integers.'''
    ...     return a + b
    >>> table['add'].signatures()
    [['int', 'int', 'int']]
    """

    def __init__(self):
        self._methods = {}

    def method(self, name, params, returns):
        def decorate(func):
            self.add(Method(name, func, params, returns,
                            (func.__doc__ or '').strip()))
            return func
        return decorate

    def add(self, method):
        self._methods[method.name] = method

    def __getitem__(self, name):
        return self._methods[name]

    def get(self, name):
        return self._methods.get(name)

    def names(self):
        return sorted(self._methods)

    def bind(self, instance):
        """A table whose functions are bound methods of `instance`."""
        bound = MethodTable()
        for m in self._methods.values():
            bound.add(Method(m.name, m.func.__get__(instance), m.params,
                             m.returns, m.help))
        return bound


#: The longest client-given text written into one log field.
LOG_FIELD_LIMIT = 100


def log_field(text, limit=LOG_FIELD_LIMIT, always_quote=False):
    r"""`text` as one field of a log line: as it is when it is short and
    plain; else quoted (line breaks and other controls escaped, so no
    forged line) and cut to `limit` characters, saying how long it was.

    >>> log_field('checkConnection')
    'checkConnection'
    >>> log_field('x\n2026 forged line')
    "'x\\n2026 forged line'"
    >>> log_field('m' * 1000, limit=5)
    "'mmmmm'...(1000 characters)"
    """
    if not isinstance(text, str):
        text = str(text)
    if not always_quote and 0 < len(text) <= limit and text.isprintable() \
            and ' ' not in text:
        return text
    quoted = repr(text[:limit])
    if len(text) > limit:
        quoted += '...(%d characters)' % len(text)
    return quoted


def no_delay(channel):
    """Set TCP_NODELAY on the connection of `channel` (once).

    An XML-RPC answer must leave at once: without TCP_NODELAY, Nagle's
    algorithm holds back its last segment until the client acknowledges
    the others (which a client may delay), and a client waiting for each
    answer gets a third fewer calls through.
    """
    if getattr(channel, '_linksync_nodelay', False):
        return
    channel._linksync_nodelay = True
    set_nodelay = getattr(channel.transport, 'setTcpNoDelay', None)
    if set_nodelay is not None:
        try:
            set_nodelay(True)
        except OSError:
            pass


#: Seconds a request may take from its request line to the end of its body.
DEFAULT_REQUEST_DEADLINE = 60.0


class LimitedRequest(server.Request):
    """A request whose body is refused, not stored, past a size limit, and
    that must arrive whole within a deadline.

    The limit is the site's ``max_request_bytes``. A request declaring a
    larger Content-Length, or sending more (chunked), is answered 413 once
    its body has been read and thrown away; one that sends far more than
    the limit is cut off.

    The deadline is the site's ``request_deadline`` (seconds, None: none),
    timed on the channel's clock from the request line to the last byte of
    the body: unlike the idle timeout, a client sending a byte now and then
    does not extend it. Past it the request is answered 408 and its
    connection closed.
    """

    refused = False
    _received = 0
    _deadline_call = None

    def __init__(self, channel, *args, **kw):
        super().__init__(channel, *args, **kw)
        deadline = getattr(getattr(channel, 'site', None), 'request_deadline',
                           None)
        call_later = getattr(channel, 'callLater', None)
        if deadline and call_later is not None:
            self._deadline_call = call_later(deadline, self._too_slow)

    def requestReceived(self, command, path, version):
        self._cancel_deadline()
        return super().requestReceived(command, path, version)

    def connectionLost(self, reason):
        self._cancel_deadline()
        return super().connectionLost(reason)

    def _cancel_deadline(self):
        call, self._deadline_call = self._deadline_call, None
        if call is not None and call.active():
            call.cancel()

    def _too_slow(self):
        self._deadline_call = None
        transport = getattr(self.channel, 'transport', None)
        if transport is None:
            return
        body = b'the request did not arrive within %g seconds\n' % (
            self.channel.site.request_deadline)
        transport.write(
            b'HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\n'
            b'Content-Length: %d\r\nConnection: close\r\n\r\n%s'
            % (len(body), body))
        # As the idle timeout does: close, and abort if the peer does not
        # read what is left to send.
        self.channel.timeoutConnection()

    def _limit(self):
        return getattr(self.channel.site, 'max_request_bytes',
                       DEFAULT_MAX_REQUEST_BYTES)

    def gotLength(self, length):
        no_delay(self.channel)
        if length is not None and length > self._limit():
            self._refuse()
            # No "100 Continue" for a body we will not read.
            self.requestHeaders.removeHeader(b'expect')
            self.content = _NullFile()
            if length > 4 * self._limit():
                self._cut_off()
            return
        super().gotLength(length)

    def handleContentChunk(self, data):
        self._received += len(data)
        if not self.refused and self._received > self._limit():
            self._refuse()
            self.content.close()
            self.content = _NullFile()
        if self.refused:
            if self._received > 4 * self._limit():
                self._cut_off()
            return
        super().handleContentChunk(data)

    def _refuse(self):
        self.refused = True

    def _cut_off(self):
        body = self._refusal_text()
        self.channel.transport.write(
            b'HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain\r\n'
            b'Content-Length: %d\r\nConnection: close\r\n\r\n%s'
            % (len(body), body))
        self.channel.transport.loseConnection()

    def _refusal_text(self):
        return b'request body larger than %d bytes\n' % self._limit()

    def process(self):
        hold = getattr(self.channel, 'hold', None)
        if hold is not None and hold(self):
            return      # the client reads nothing: later (site.ReadingChannel)
        if self.refused:
            if not self.channel or not self.channel.transport or \
                    getattr(self.channel.transport, 'disconnecting', False):
                return
            body = self._refusal_text()
            self.setResponseCode(413)
            self.setHeader(b'content-type', b'text/plain')
            self.setHeader(b'content-length', b'%d' % len(body))
            self.setHeader(b'connection', b'close')
            self.channel.persistent = False
            self.write(body)
            self.finish()
            return
        super().process()


class _NullFile(io.BytesIO):
    """Stands in for the body file of a refused request: stays empty."""

    def write(self, data):
        return len(data)


XML_CONTENT_TYPE = b'text/xml; charset=utf-8'


class Answer:
    """An HTTP answer to an XML-RPC request: status code, content type,
    body (bytes) and whether the body is gzipped."""

    __slots__ = ('code', 'content_type', 'body', 'gzipped')

    def __init__(self, code, content_type, body, gzipped=False):
        self.code = code
        self.content_type = content_type
        self.body = body
        self.gzipped = gzipped


#: The answer to bad credentials (HTTP 401).
UNAUTHORIZED_ANSWER = Answer(
    401, b'text/plain', b'unknown client, wrong password or wrong secret\n')


class TooLarge(Exception):
    """The inflated body is larger than the limit."""


def inflate(data, limit):
    r"""Inflate a gzip body, refusing to produce more than `limit` bytes.

    A body of several gzip members (what ``cat a.gz b.gz`` makes, and RFC
    1952 allows) inflates to their contents one after the other, the limit
    holding for them all; NUL bytes padding the end are ignored.

    >>> import gzip
    >>> inflate(gzip.compress(b'<a>') + gzip.compress(b'</a>'), 100)
    b'<a></a>'
    >>> inflate(gzip.compress(b'x' * 60) * 2, 100)
    Traceback (most recent call last):
    ...
    linksync.xmlrpc.resource.TooLarge
    """
    parts = []
    produced = 0
    rest = data
    while True:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            part = decompressor.decompress(rest, limit - produced + 1)
        except zlib.error as e:
            raise ValueError('bad gzip body: %s' % e) from None
        produced += len(part)
        if produced > limit or decompressor.unconsumed_tail:
            raise TooLarge()
        parts.append(part)
        if not decompressor.eof:
            raise ValueError('bad gzip body: it ends within a member')
        rest = decompressor.unused_data
        if not rest.strip(b'\0'):
            return b''.join(parts)


def parse_request(body):
    """(params, method name) from an XML-RPC request body; Fault when bad.

    Read by expat through defusedxml (no DTDs, no entity declarations).
    """
    unmarshaller = xmlrpc.client.Unmarshaller(use_builtin_types=True)
    parser = DefusedExpatParser(unmarshaller, forbid_dtd=True)
    try:
        parser.feed(body)
        parser.close()
        params = unmarshaller.close()
        name = unmarshaller.getmethodname()
    except Fault:
        raise
    except Exception as e:
        raise Fault(PARSE_ERROR, 'not a well-formed XML-RPC request: %s: %s'
                    % (type(e).__name__, e)) from None
    if not isinstance(name, str) or not name:
        raise Fault(PARSE_ERROR, 'no method name in the request')
    return params, name


_METHOD_NAME = re.compile(rb'<methodName>\s*([^<]*?)\s*</methodName>')


def multicall_entries(body):
    """The calls a system.multicall request body carries, counted without
    parsing it (0 for any other request): each call's struct has a member
    named ``methodName``, and its markup can be nowhere else but in a
    comment or a CDATA section.

    >>> import xmlrpc.client
    >>> multicall_entries(xmlrpc.client.dumps(([{'methodName': 'a',
    ...     'params': []}] * 3,), 'system.multicall').encode())
    3
    >>> multicall_entries(b'<methodCall><methodName>ping</methodName>')
    0
    """
    found = _METHOD_NAME.search(body, 0, 4096)
    if found is None or found.group(1) != b'system.multicall':
        return 0
    return body.count(b'<name>methodName</name>')


#: Bodies longer than this (bytes, inflated) are parsed in a thread.
PARSE_IN_THREAD_BYTES = 256 * 1024
#: Threads parsing big bodies at once (the others wait their turn).
PARSE_THREADS = 2
#: Bytes of big bodies waiting for or in their parse, at most, in all: a
#: body that would pass it is answered a fault 503 at once (try again),
#: so that many clients sending big calls at once cannot make the server
#: hold them all.
PARSE_BUDGET_BYTES = 64 * 1024 * 1024
_parse_pool = None

#: The most calls one system.multicall may carry: beyond, a fault at once,
#: so a small request cannot ask for an answer many times its size.
MAX_MULTICALL_CALLS = 1000
#: List items the calls of a system.multicall may carry (their list
#: arguments' lengths added up) before the reactor is given back between
#: two of them: a multicall of many calls that each carry a long list (of
#: URLs) does not hold it for all of them.
MULTICALL_PAUSE_ITEMS = 2000
#: The longest answer (bytes of XML, before gzip) the server makes.
DEFAULT_MAX_ANSWER_BYTES = 16 * 1024 * 1024

_RESPONSE_HEAD = (b"<?xml version='1.0'?>\n<methodResponse>\n<params>\n"
                  b"<param>\n<value><array><data>\n")
_RESPONSE_TAIL = b"</data></array></value>\n</param>\n</params>\n" \
    b"</methodResponse>\n"
_PARAMS_HEAD = '<params>\n<param>\n'
_PARAMS_TAIL = '</param>\n</params>\n'


def marshal_value(value):
    """The XML-RPC ``<value>`` of `value` (bytes), as the standard
    library's marshaller writes it within an answer."""
    text = xmlrpc.client.dumps((value,), allow_none=False)
    assert text.startswith(_PARAMS_HEAD) and text.endswith(_PARAMS_TAIL)
    return text[len(_PARAMS_HEAD):-len(_PARAMS_TAIL)].encode('utf-8')


class Marshalled:
    """An answer whose body is made already (a multicall's, marshalled as
    its calls were answered)."""

    __slots__ = ('data',)

    def __init__(self, data):
        self.data = data


def multicall_answer(entries):
    """The answer body of a system.multicall from the marshalled values of
    its entries: the bytes xmlrpc.client.dumps((entries,),
    methodresponse=True) gives for the unmarshalled entries.

    >>> entries = [[1], {'faultCode': 2, 'faultString': 'x'}]
    >>> made = multicall_answer([marshal_value(e) for e in entries])
    >>> made == xmlrpc.client.dumps((entries,), methodresponse=True).encode()
    True
    """
    return _RESPONSE_HEAD + b''.join(entries) + _RESPONSE_TAIL


class XMLRPCResource(resource.Resource):
    """Serves the methods of a MethodTable over XML-RPC (POST only)."""

    isLeaf = True

    def __init__(self, table, max_request_bytes=DEFAULT_MAX_REQUEST_BYTES,
                 metrics=None, max_multicall_calls=MAX_MULTICALL_CALLS,
                 max_answer_bytes=DEFAULT_MAX_ANSWER_BYTES, reactor=None,
                 parse_in_thread_bytes=PARSE_IN_THREAD_BYTES):
        super().__init__()
        self.table = table
        #: With a reactor, bodies longer than `parse_in_thread_bytes`
        #: are parsed in a thread (without one, all are parsed at once).
        self.reactor = reactor
        self.parse_in_thread_bytes = parse_in_thread_bytes
        self.multicall_pause_items = MULTICALL_PAUSE_ITEMS
        #: The parser of request bodies: (params, method name) or Fault.
        self.parse = parse_request
        #: Bytes of big bodies being parsed or waiting for it, and their
        #: bound (PARSE_BUDGET_BYTES).
        self.parsing_bytes = 0
        self.parse_budget_bytes = PARSE_BUDGET_BYTES
        self.max_multicall_calls = max_multicall_calls
        self.max_answer_bytes = max_answer_bytes
        self.max_request_bytes = max_request_bytes
        self.metrics = metrics
        # The call counters by (method, outcome), labelled once.
        self._counters = {}

    # -- HTTP ------------------------------------------------------------------

    def render_GET(self, request):
        request.setResponseCode(405)
        request.setHeader(b'allow', b'POST')
        request.setHeader(b'content-type', b'text/plain')
        return b'This is an XML-RPC endpoint: POST requests only.\n'

    def render_POST(self, request):
        started = time.perf_counter()
        peer = request.getClientAddress()
        call = Call(request, peer=getattr(peer, 'host', '-'))
        try:
            body = self._read_body(request)
        except TooLarge:
            request.setResponseCode(413)
            request.setHeader(b'content-type', b'text/plain')
            self._log(call, '<none>', '413', started)
            return b'inflated request body larger than %d bytes\n' % \
                self.max_request_bytes
        except _UnsupportedEncoding as e:
            request.setResponseCode(415)
            request.setHeader(b'content-type', b'text/plain')
            self._log(call, '<none>', '415', started)
            return ('unsupported Content-Encoding %s\n' % e).encode()
        accepted = (request.getHeader(b'accept-encoding') or b'').lower()

        def reply(answer):
            if request._disconnected:
                return
            request.setResponseCode(answer.code)
            request.setHeader(b'content-type', answer.content_type)
            if answer.gzipped:
                request.setHeader(b'content-encoding', b'gzip')
            # A Content-Length lets keep-alive clients reuse the connection
            # (Python's xmlrpc.client reads no body on errors).
            request.setHeader(b'content-length', b'%d' % len(answer.body))
            request.write(answer.body)
            request.finish()
        self.handle(call, body, b'gzip' in accepted, reply, started)
        return server.NOT_DONE_YET

    def _read_body(self, request):
        request.content.seek(0)
        body = request.content.read(self.max_request_bytes + 1)
        if len(body) > self.max_request_bytes:
            raise TooLarge()
        encoding = (request.getHeader(b'content-encoding') or b'').strip()
        if encoding.lower() in (b'', b'identity'):
            return body
        if encoding.lower() in (b'gzip', b'x-gzip'):
            try:
                return inflate(body, self.max_request_bytes)
            except ValueError:
                return b''  # parse_request answers the fault
        raise _UnsupportedEncoding(encoding.decode('latin-1'))

    # -- answering a call, whatever the HTTP machinery ----------------------------

    def handle(self, call, body, accepts_gzip, reply, started=None):
        """Answer the XML-RPC request `body` (bytes, decoded already).

        ``reply(answer)`` gets the :class:`Answer` once it is known: before
        this returns when the body was parsed at once and the method's
        result is not a Deferred (the common case: no Deferred is made for
        it), later otherwise. The call is logged once answered.
        """
        if started is None:
            started = time.perf_counter()
        if len(body) > self.parse_in_thread_bytes:
            calls = multicall_entries(body)
            if calls > self.max_multicall_calls:
                # Refused before it is parsed: parsing it whole would cost
                # the time and the memory the cap is there to spare.
                self._unparsable(Fault(
                    INVALID_PARAMS, 'system.multicall takes at most %d calls'
                    ' (%d given): split them' % (self.max_multicall_calls,
                                                 calls)),
                    call, accepts_gzip, reply, started)
                return
        if self.reactor is not None and \
                len(body) > self.parse_in_thread_bytes:
            if self.parsing_bytes + len(body) > self.parse_budget_bytes and \
                    self.parsing_bytes:
                self._unparsable(Fault(
                    UNAVAILABLE, 'the server is busy reading other large '
                    'calls: send this one again shortly'),
                    call, accepts_gzip, reply, started)
                return
            self.parsing_bytes += len(body)

            def parsed(result, size=len(body)):
                self.parsing_bytes -= size
                return result
            d = threads.deferToThreadPool(self.reactor, self._pool(),
                                          self.parse, body)
            d.addBoth(parsed)
            d.addCallbacks(
                lambda parsed: self._handle_parsed(
                    call, parsed, accepts_gzip, reply, started),
                lambda fail: self._unparsable(
                    fail.value if fail.check(Fault) else Fault(
                        PARSE_ERROR, 'not a well-formed XML-RPC request: %s'
                        % fail.getErrorMessage()),
                    call, accepts_gzip, reply, started))
            d.addErrback(lambda fail: log.failure(
                'answering a call failed', failure=fail))
            return
        try:
            parsed = self.parse(body)
        except Fault as f:
            self._unparsable(f, call, accepts_gzip, reply, started)
            return
        self._handle_parsed(call, parsed, accepts_gzip, reply, started)

    def _pool(self):
        """The threads parsing big bodies: one pool for the process,
        started at first use and stopped with the reactor."""
        global _parse_pool
        if _parse_pool is None:
            _parse_pool = ThreadPool(0, PARSE_THREADS,
                                     'linksync-xmlrpc-parse')
            _parse_pool.start()
            self.reactor.addSystemEventTrigger('during', 'shutdown',
                                               _parse_pool.stop)
        return _parse_pool

    def _unparsable(self, fault, call, accepts_gzip, reply, started):
        reply(self._answer(fault, accepts_gzip))
        self._log(call, '<unparsable>', 'fault %d' % fault.faultCode,
                  started)

    def _handle_parsed(self, call, parsed, accepts_gzip, reply, started):
        params, name = parsed
        call.method = name
        try:
            result = self.dispatch(call, name, params)
        except Exception:
            result = failure.Failure()
        if isinstance(result, defer.Deferred):
            result.addBoth(self._finish, call, name, accepts_gzip, reply,
                           started)
        else:
            self._finish(result, call, name, accepts_gzip, reply, started)

    def _finish(self, result, call, name, accepts_gzip, reply, started):
        if isinstance(result, failure.Failure):
            if result.check(Unauthorized):
                reply(UNAUTHORIZED_ANSWER)
                self._log(call, name, '401', started)
                return None
            result = self._fault_of(result, name)
        outcome = 'fault %d' % result.faultCode \
            if isinstance(result, Fault) else 'ok'
        reply(self._answer(result, accepts_gzip))
        self._log(call, name, outcome, started)
        return None

    def _answer(self, result, accepts_gzip):
        """The Answer carrying `result` (a value, a Fault or Marshalled)."""
        if isinstance(result, Marshalled):
            return self._packed(result.data, accepts_gzip)
        try:
            if isinstance(result, Fault):
                payload = xmlrpc.client.dumps(result, methodresponse=True)
            else:
                payload = xmlrpc.client.dumps(
                    (result,), methodresponse=True, allow_none=False)
        except Exception as e:
            log.failure('cannot marshal the result of a call')
            payload = xmlrpc.client.dumps(Fault(
                INTERNAL_ERROR, 'cannot marshal the result: %s' % e),
                methodresponse=True)
        data = payload.encode('utf-8')
        if len(data) > self.max_answer_bytes:
            data = xmlrpc.client.dumps(Fault(
                TOO_LARGE, 'the answer is larger than %d bytes: ask for '
                'less at once' % self.max_answer_bytes),
                methodresponse=True).encode('utf-8')
        return self._packed(data, accepts_gzip)

    def _packed(self, data, accepts_gzip):
        if len(data) > GZIP_RESPONSE_THRESHOLD and accepts_gzip:
            return Answer(200, XML_CONTENT_TYPE,
                          gzip.compress(data, compresslevel=5), gzipped=True)
        return Answer(200, XML_CONTENT_TYPE, data)

    def _log(self, call, name, outcome, started):
        elapsed = time.perf_counter() - started
        # What log.info(...) would emit, made here: Logger.emit checks its
        # arguments at a cost like that of writing the line.
        log.observer({
            'log_logger': log, 'log_level': LogLevel.info,
            'log_namespace': log.namespace, 'log_source': None,
            'log_format': _REQUEST_LINE, 'log_time': time.time(),
            'peer': call.peer, 'client': log_field(call.client_id or '-'),
            'method': log_field(name), 'outcome': outcome,
            'ms': elapsed * 1000})
        if self.metrics is not None:
            # Label only methods that exist: clients cannot make up labels.
            if name not in _SYSTEM_METHODS and self.table.get(name) is None:
                name = '<other>'
            if outcome.startswith('fault'):
                outcome = 'fault'
            counter = self._counters.get((name, outcome))
            if counter is None:
                counter = self._counters[name, outcome] = \
                    self.metrics.xmlrpc_calls.labels(name, outcome)
            counter.inc()
            self.metrics.xmlrpc_seconds.observe(elapsed)

    # -- dispatching -------------------------------------------------------------

    def dispatch(self, call, name, params):
        """Call method `name`; returns its result or a Deferred."""
        if name == 'system.multicall':
            return self._multicall(call, params)
        if name.startswith('system.'):
            return self._introspect(name, params)
        method = self.table.get(name)
        if method is None:
            raise Fault(METHOD_NOT_FOUND, 'no method %s' % log_field(
                name, always_quote=True))
        args = method.check(params)
        return method.func(call, *args)

    def _fault_of(self, fail, name):
        if fail.check(Fault):
            return fail.value
        log.failure('unexpected error in {method}', failure=fail,
                    method=log_field(name))
        return Fault(INTERNAL_ERROR, 'internal error in %s: %s' % (
            name, fail.type.__name__))

    @defer.inlineCallbacks
    def _multicall(self, call, params):
        """Run the calls in order; the answer is marshalled as they are
        answered. Should it pass max_answer_bytes, the call whose answer
        would pass it gets a fault 413 in place of its answer (it ran), and
        the calls after it are not run (a fault 413 each, room for which is
        kept): the answer stays within the bound (or within one short
        fault per call, when the bound is smaller than that)."""
        if len(params) != 1 or not isinstance(params[0], (list, tuple)):
            raise Fault(INVALID_PARAMS,
                        'system.multicall takes one array of call structs')
        if len(params[0]) > self.max_multicall_calls:
            raise Fault(INVALID_PARAMS, 'system.multicall takes at most %d '
                        'calls (%d given): split them'
                        % (self.max_multicall_calls, len(params[0])))
        results = []
        size = len(_RESPONSE_HEAD) + len(_RESPONSE_TAIL)
        calls = params[0]
        not_run = marshal_value({
            'faultCode': TOO_LARGE,
            'faultString': 'not run: the answer of this system.multicall '
            'would pass %d bytes; split the calls' % self.max_answer_bytes})
        full = False
        carried = 0
        for index, entry in enumerate(calls):
            if full:
                results.append(not_run)
                continue
            if carried > self.multicall_pause_items:
                carried = 0
                yield self.pause()
            if not isinstance(entry, dict) or \
                    not isinstance(entry.get('methodName'), str) or \
                    not isinstance(entry.get('params', []), (list, tuple)):
                fault = Fault(INVALID_PARAMS, 'a call must be a struct with '
                              'methodName (string) and params (array)')
            elif entry['methodName'] == 'system.multicall':
                fault = Fault(INVALID_PARAMS, 'system.multicall cannot be '
                              'nested')
            else:
                sub = Call(call.request, entry['methodName'], call.peer)
                carried += sum(len(p) for p in entry.get('params', ())
                               if isinstance(p, (list, tuple)))
                try:
                    value = yield defer.maybeDeferred(
                        self.dispatch, sub, entry['methodName'],
                        list(entry.get('params', [])))
                except Unauthorized:
                    fault = Fault(UNAUTHORIZED, 'unknown client, wrong '
                                  'password or wrong secret')
                except Exception:
                    fault = self._fault_of(failure.Failure(),
                                           entry['methodName'])
                else:
                    call.client_id = call.client_id or sub.client_id
                    try:
                        marshalled = marshal_value([value])
                    except Exception as e:
                        log.failure('cannot marshal the result of a call')
                        fault = Fault(INTERNAL_ERROR, 'cannot marshal the '
                                      'result: %s' % e)
                    else:
                        # Room is kept for the faults of the calls after
                        # this one, should they not be run.
                        room = self.max_answer_bytes - size - len(not_run) \
                            * (len(calls) - index - 1)
                        if len(marshalled) <= room:
                            size += len(marshalled)
                            results.append(marshalled)
                            continue
                        fault = Fault(TOO_LARGE, 'the answer of this '
                                      'system.multicall would pass %d '
                                      'bytes: this call ran, its answer is '
                                      'left out; split the calls'
                                      % self.max_answer_bytes)
                        full = True
            marshalled = marshal_value({'faultCode': fault.faultCode,
                                        'faultString': fault.faultString})
            size += len(marshalled)
            results.append(marshalled)
        return Marshalled(multicall_answer(results))

    def pause(self):
        """A Deferred firing once the reactor did the work waiting (at
        once without a reactor): a heavy system.multicall waits for it
        between two calls."""
        if self.reactor is None:
            return defer.succeed(None)
        return task.deferLater(self.reactor, 0, lambda: None)

    def _introspect(self, name, params):
        if name == 'system.listMethods':
            if params:
                raise Fault(INVALID_PARAMS, 'system.listMethods takes no '
                            'arguments')
            return self.table.names() + [
                'system.listMethods', 'system.methodHelp',
                'system.methodSignature', 'system.multicall']
        if name not in ('system.methodHelp', 'system.methodSignature'):
            raise Fault(METHOD_NOT_FOUND, 'no method %s' % log_field(
                name, always_quote=True))
        if len(params) != 1 or not isinstance(params[0], str):
            raise Fault(INVALID_PARAMS, '%s takes one method name' % name)
        target = params[0]
        builtin = _SYSTEM_METHODS.get(target)
        method = self.table.get(target)
        if method is None and builtin is None:
            raise Fault(METHOD_NOT_FOUND, 'no method %r' % target)
        if name == 'system.methodHelp':
            return method.help if method else builtin[1]
        return method.signatures() if method else builtin[0]


class _UnsupportedEncoding(Exception):
    pass


_SYSTEM_METHODS = {
    'system.listMethods': ([['array']], 'The names of all methods.'),
    'system.methodHelp': (
        [['string', 'string']], 'The documentation of a method.'),
    'system.methodSignature': (
        [['array', 'string']],
        'The signatures of a method: arrays of the return type followed by '
        'the parameter types.'),
    'system.multicall': (
        [['array', 'array']],
        'Run several calls in one request, in order. Takes an array of '
        'structs {methodName, params}; returns an array holding, for each '
        'call, an array with its result or a fault struct.'),
}
