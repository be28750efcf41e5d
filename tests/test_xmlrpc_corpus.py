"""A corpus of requests, well-behaved and hostile, answered as recorded.

A server gets a corpus of requests over real sockets: well-behaved calls
and hostile ones (entity bombs, external entities, gzip bombs, bodies over
the limit, malformed XML, wrong argument types and counts, odd encodings
and headers). Status, content type, encoding and the decoded answer must
be those recorded in tests/xmlrpc_corpus_answers.py, and so must the log
lines and the metrics the requests leave.

(Until 2026-12-03 this corpus held the server's two ways to each other:
linksync.xmlrpc._channel with linksync.xmlrpc._parse, and twisted.web with
expat and defusedxml. They answered it alike; the first was removed, and
the answers both gave were recorded.)
"""

import gzip
import re
import socket
import xmlrpc.client

import pytest

from linksync.testing import ServerFixture

from xmlrpc_corpus_answers import ANSWERS, LOG_LINES, METRICS

SECRET = 'management-secret'
LIMIT = 64 * 1024


def xml_call(method, *params):
    return xmlrpc.client.dumps(params, method).encode('utf-8')


def head(body, extra=b'', version=b'HTTP/1.1', path=b'/RPC2', length=None):
    return (b'POST %s %s\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n'
            b'%sContent-Length: %d\r\n\r\n' % (
                path, version, extra,
                len(body) if length is None else length))


def request(body, **kw):
    return head(body, **kw) + body


def raw(method_name, params_xml, declaration=b''):
    return (declaration + b'<methodCall><methodName>' + method_name +
            b'</methodName><params>' + b''.join(
                b'<param><value>%s</value></param>' % p for p in params_xml) +
            b'</params></methodCall>')


FRED = (b'<string>fred</string>', b'<string>fred-password</string>')
CHECK = xml_call('checkConnection', 'fred', 'fred-password')
LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n' +
          b''.join(b'<!ENTITY lol%d "%s">\n' % (
              i, (b'&lol%d;' % (i - 1) if i > 1 else b'&lol;') * 10)
              for i in range(1, 10)) +
          b']>\n' + raw(b'checkConnection', (b'&lol9;', b'x')))
XXE = (b'<?xml version="1.0"?>\n<!DOCTYPE m [<!ENTITY xxe SYSTEM '
       b'"file:///etc/passwd">]>\n' + raw(b'checkConnection',
                                          (b'fred', b'&xxe;')))
EXTERNAL_DTD = (b'<?xml version="1.0"?>\n<!DOCTYPE methodCall SYSTEM '
                b'"http://127.0.0.1:9/evil.dtd">\n' +
                raw(b'checkConnection', FRED))
PARAMETER_ENTITY = (b'<?xml version="1.0"?>\n<!DOCTYPE m [<!ENTITY % p '
                    b'SYSTEM "file:///etc/passwd"> %p;]>\n' +
                    raw(b'checkConnection', FRED))
NESTED = b'<array><data><value>' * 100 + b'x' + \
    b'</value></data></array>' * 100
URLS = ['http://a.example/%d' % i for i in range(300)]

#: name -> the bytes sent (one request, or several pipelined).
CORPUS = {
    # Well-behaved calls, each way a library may write them.
    'check': request(CHECK),
    'check at /': request(CHECK, path=b'/'),
    'check bare strings': request(raw(b'checkConnection', (
        b'fred', b'fred-password'))),
    'check declared utf-8': request(raw(
        b'checkConnection', FRED,
        b'<?xml version="1.0" encoding="UTF-8"?>\n')),
    'check keep-alive header': request(
        CHECK, extra=b'Connection: keep-alive\r\n'),
    'register urls': request(xml_call('registerURLs', 'fred',
                                      'fred-password', URLS + [
                                          'not a url', 'http://\xe4.x/',
                                          URLS[0], 'HTTP://A.example/1#x'])),
    'url states gzipped': request(
        xml_call('getURLStates', 'fred', 'fred-password', URLS),
        extra=b'Accept-Encoding: gzip\r\n'),
    'notifications off (int 0 for a boolean)': request(raw(
        b'setClientNotifications', FRED + (b'<int>0</int>',))),
    'notifications?': request(xml_call('getClientNotifications', 'fred',
                                       'fred-password')),
    'status': request(xml_call('getStatus', 'fred', 'fred-password',
                               URLS[1])),
    'list methods': request(xml_call('system.listMethods')),
    'signature': request(xml_call('system.methodSignature',
                                  'registerURLs')),
    'multicall': request(xml_call('system.multicall', [
        {'methodName': 'checkConnection', 'params': ['fred',
                                                     'fred-password']},
        {'methodName': 'checkConnection', 'params': ['fred', 'wrong']},
        {'methodName': 'nosuch', 'params': []},
        {'methodName': 'system.multicall', 'params': [[]]},
        {'params': []}])),
    'register client': request(xml_call(
        'registerClient', SECRET, 'wilma', 'http://127.0.0.1:9/', 'Wilma',
        'wilma@example.com', 'wilma-password')),
    'register client twice': request(xml_call(
        'registerClient', SECRET, 'wilma', 'http://127.0.0.1:9/', 'Wilma',
        'wilma@example.com', 'wilma-password')),
    'pipelined': b''.join(request(xml_call(
        'checkConnection', client, client + '-password'))
        for client in ('fred', 'wilma', 'fred', 'nobody')),
    # What only expat reads, read the same.
    'char reference in password': request(raw(
        b'checkConnection', (b'fred', b'fred&#45;password'))),
    'CDATA password': request(raw(
        b'checkConnection', (b'fred', b'<![CDATA[fred-password]]>'))),
    'comment': request(raw(b'checkConnection', (
        b'fred<!-- x -->', b'fred-password'))),
    'CR LF line ends': request(raw(b'checkConnection', (
        b'fred', b'fred-password')).replace(b'<params>', b'\r\n<params>')),
    'latin-1': request(raw(b'registerURLs', FRED + (
        b'<array><data><value>http://a.example/\xe9</value></data></array>',),
        b'<?xml version="1.0" encoding="ISO-8859-1"?>')),
    'utf-16': request(CHECK.decode().replace("<?xml version='1.0'?>", '')
                      .encode('utf-16')),
    'byte-order mark': request(b'\xef\xbb\xbf' + CHECK),
    'namespaces': request(b'<x:methodCall xmlns:x="urn:x"><x:methodName>'
                          b'checkConnection</x:methodName></x:methodCall>'),
    'deep nesting': request(raw(b'registerURLs', FRED + (NESTED,))),
    # Hostile XML.
    'billion laughs': request(LAUGHS),
    'external entity': request(XXE),
    'external DTD': request(EXTERNAL_DTD),
    'parameter entity': request(PARAMETER_ENTITY),
    'undefined entity': request(raw(b'checkConnection', (b'&x;', b'y'))),
    'processing instruction': request(b'<?xml version="1.0"?><?x y?>' +
                                      raw(b'checkConnection', FRED)),
    'not UTF-8': request(raw(b'checkConnection', (b'fr\xffd', b'x'))),
    'NUL': request(raw(b'checkConnection', (b'fred\x00', b'x'))),
    'malformed': request(b'<methodCall><methodName>checkConnection'
                         b'</methodName><params><param>'),
    'mismatched tags': request(raw(b'checkConnection', (
        b'<string>fred</int>', b'x'))),
    'not XML': request(b'hello'),
    'empty body': request(b''),
    'no method name': request(b'<methodCall><params></params></methodCall>'),
    'empty method name': request(raw(b'', FRED)),
    'a response, not a call': request(xmlrpc.client.dumps(
        xmlrpc.client.Fault(1, 'injected'), methodresponse=True).encode()),
    'huge integer': request(raw(b'setClientNotifications', FRED + (
        b'<int>' + b'9' * 5000 + b'</int>',))),
    'bad boolean': request(raw(b'setClientNotifications', FRED + (
        b'<boolean>2</boolean>',))),
    # Wrong calls.
    'unknown method': request(xml_call('dropDatabase', 'fred')),
    'too few arguments': request(xml_call('checkConnection', 'fred')),
    'too many arguments': request(xml_call('checkConnection', 'fred',
                                           'fred-password', 'x')),
    'int password': request(xml_call('checkConnection', 'fred', 7)),
    'base64 password': request(xml_call('checkConnection', 'fred',
                                        xmlrpc.client.Binary(b'pw'))),
    'struct for the URLs': request(xml_call('registerURLs', 'fred',
                                            'fred-password', {'a': 'b'})),
    'string for a boolean': request(xml_call(
        'setClientNotifications', 'fred', 'fred-password', 'yes')),
    'wrong password': request(xml_call('checkConnection', 'fred', 'nope')),
    'unknown client': request(xml_call('checkConnection', 'nobody', 'x')),
    'wrong secret': request(xml_call(
        'registerClient', 'guess', 'barney', 'http://127.0.0.1:9/', 'B',
        'b@example.com', 'pw')),
    # Bodies and headers.
    'gzip body': request(gzip.compress(CHECK),
                         extra=b'Content-Encoding: gzip\r\n'),
    'gzip bomb': request(gzip.compress(b' ' * (100 * LIMIT)),
                         extra=b'Content-Encoding: gzip\r\n'),
    'bad gzip': request(b'\x1f\x8b not gzip',
                        extra=b'Content-Encoding: gzip\r\n'),
    'unknown encoding': request(b'x', extra=b'Content-Encoding: br\r\n'),
    'over the limit': request(raw(b'registerURLs', FRED + (
        b'<array><data>' + b'<value>http://a.example/</value>' * 3000 +
        b'</data></array>',))),
    'over the limit, declared only': head(b'', length=10 * LIMIT),
    'chunked': (head(b'', extra=b'Transfer-Encoding: chunked\r\n')
                .replace(b'Content-Length: 0\r\n', b'') +
                b''.join(b'%x\r\n%s\r\n' % (len(piece), piece)
                         for piece in (CHECK, b'')).rstrip(b'\r\n') + b'\r\n\r\n'),
    'bare LF hiding a header': request(
        CHECK, extra=b'X-A: b\nTransfer-Encoding: chunked\r\n'),
    'NUL in a header': request(CHECK, extra=b'X-A: b\x00c\r\n'),
    'space before a colon': request(CHECK, extra=b'X-A : b\r\n'),
    'two lengths': request(CHECK, extra=b'Content-Length: 5\r\n'),
    'HTTP/1.0': request(CHECK, version=b'HTTP/1.0'),
}


class Server:
    """The server answering the corpus."""

    def __init__(self, tmp_path):
        self.fixture = ServerFixture(data=str(tmp_path / 'var'),
                                     max_request_bytes=LIMIT).start()
        self.fixture.register_client('fred', 'fred-password')

    def exchange(self, data, count=1):
        """The `count` responses to `data` (or as many as came before the
        server closed the connection), normalised."""
        sock = socket.create_connection(('127.0.0.1', self.fixture.port),
                                        timeout=30)
        try:
            sock.sendall(data)
            received = b''
            while len(parse_responses(received, whole=True)) < count:
                piece = sock.recv(65536)
                if not piece:
                    break
                received += piece
        finally:
            sock.close()
        return parse_responses(received)

    def metrics(self):
        sock = socket.create_connection(('127.0.0.1', self.fixture.port))
        sock.sendall(b'GET /metrics HTTP/1.0\r\n\r\n')
        text = b''
        while True:
            piece = sock.recv(65536)
            if not piece:
                break
            text += piece
        sock.close()
        return sorted(line for line in text.decode().splitlines()
                      if line.startswith('linksync_xmlrpc_calls_total'))


def parse_responses(data, whole=False):
    """The responses in `data`; with `whole`, only those received whole."""
    answers = []
    while data:
        head, found, data = data.partition(b'\r\n\r\n')
        if whole and not found:
            break
        status, *lines = head.split(b'\r\n')
        headers = {}
        for line in lines:
            name, _, value = line.partition(b':')
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get(b'content-length', len(data)))
        if whole and len(data) < length:
            break
        body, data = data[:length], data[length:]
        if headers.get(b'content-encoding') == b'gzip':
            body = gzip.decompress(body)
        if headers.get(b'content-type', b'').startswith(b'text/xml'):
            try:
                body = xmlrpc.client.loads(body, use_builtin_types=True)[0]
            except xmlrpc.client.Fault as fault:
                body = ('fault', fault.faultCode, fault.faultString)
        answers.append((status, headers.get(b'content-type'),
                        headers.get(b'content-encoding'),
                        headers.get(b'connection'), body))
    return answers


@pytest.fixture
def server(tmp_path):
    return Server(tmp_path)


def test_the_corpus_is_answered_as_recorded(server):
    from twisted.logger import formatEvent, globalLogPublisher
    lines = []

    def observe(event):
        if event.get('log_namespace') == 'linksync.xmlrpc':
            # The duration differs; the rest may not.
            lines.append(re.sub(r' [0-9.]+ms$', '', formatEvent(event)))
    def settle():
        # A call is logged just after its answer is sent: once the reactor
        # thread runs this no-op, every call answered so far was logged.
        server.fixture.rt.call(lambda: None)
    settle()
    globalLogPublisher.addObserver(observe)
    try:
        got = {name: server.exchange(data, 4 if name == 'pipelined' else 1)
               for name, data in CORPUS.items()}
        settle()
    finally:
        globalLogPublisher.removeObserver(observe)
    assert set(ANSWERS) == set(CORPUS)
    for name in CORPUS:
        assert got[name] == ANSWERS[name], name
    assert lines == LOG_LINES
    assert server.metrics() == METRICS

    ok, unauthorized = b'HTTP/1.1 200 OK', b'HTTP/1.1 401 Unauthorized'
    too_large = b'HTTP/1.1 413 '
    for name in ('check', 'check at /', 'check bare strings',
                 'check declared utf-8', 'check keep-alive header',
                 'char reference in password', 'CDATA password',
                 'CR LF line ends', 'utf-16', 'byte-order mark',
                 'gzip body', 'chunked', 'HTTP/1.0'):
        status = b'HTTP/1.0 200 OK' if name == 'HTTP/1.0' else ok
        assert got[name] == [(status, b'text/xml; charset=utf-8', None,
                              got[name][0][3], (2,))], name
    assert [answer[0] for answer in got['pipelined']] == [
        ok, ok, ok, unauthorized]
    for name in ('wrong password', 'unknown client', 'wrong secret'):
        assert got[name][0][0] == unauthorized, name
    assert got['gzip body'][0][2] is None
    assert got['url states gzipped'][0][2] == b'gzip'
    assert len(got['url states gzipped'][0][4][0]) == 300
    for name in ('over the limit', 'over the limit, declared only',
                 'gzip bomb'):
        assert got[name][0][0].startswith(too_large), name
    faults = {
        'billion laughs': -32700, 'external entity': -32700,
        'external DTD': -32700, 'parameter entity': -32700,
        'undefined entity': -32700, 'processing instruction': 401,
        'not UTF-8': -32700, 'NUL': -32700, 'malformed': -32700,
        'mismatched tags': -32700, 'not XML': -32700, 'empty body': -32700,
        'no method name': -32700, 'empty method name': -32700,
        'bad gzip': -32700, 'huge integer': -32700, 'bad boolean': -32700,
        'unknown method': -32601, 'too few arguments': -32602,
        'too many arguments': -32602, 'int password': -32602,
        'base64 password': -32602, 'struct for the URLs': -32602,
        'string for a boolean': -32602, 'register client twice': 409,
        'namespaces': -32602, 'a response, not a call': 1,
    }
    for name, code in faults.items():
        answer, = got[name]
        if code == 401:
            # A processing instruction is allowed, and then the call is
            # answered normally (expat reads it).
            assert answer[0] == ok and answer[4] == (2,), name
            continue
        assert answer[0] == ok and answer[4][:2] == ('fault', code), (
            name, answer)
    # Nothing of the files the entities named came back.
    for name in ('external entity', 'parameter entity', 'external DTD'):
        assert 'root:' not in repr(got[name])
    # Headers twisted.web refuses are refused the same, never read.
    for name in ('bare LF hiding a header', 'NUL in a header',
                 'space before a colon', 'two lengths'):
        assert got[name][0][0] == b'HTTP/1.1 400 Bad Request', name
    assert got['unknown encoding'][0][0].startswith(b'HTTP/1.1 415')
    for line in lines:
        assert 'password' not in line.split()[1:]


def test_the_corpus_pipelined_on_one_connection(server):
    # The requests that keep a connection open, all sent at once: the
    # server answers them in order, each as it answers it alone.
    keep = [name for name in CORPUS if not name.startswith((
        'over the limit', 'gzip bomb', 'HTTP/1.0', 'bare LF', 'NUL in',
        'space before', 'two lengths', 'register client', 'pipelined'))]
    data = b''.join(CORPUS[name] for name in keep)
    answers = server.exchange(data, len(keep))
    assert len(answers) == len(keep)
    assert answers == [ANSWERS[name][0] for name in keep]
