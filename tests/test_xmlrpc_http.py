"""The server's HTTP face for XML-RPC over real sockets: keep-alive,
pipelining, framings, odd headers, limits, late answers and the call log,
in any mix on one connection.

(These tests held the short way of linksync.xmlrpc._channel, removed on
2026-12-03, to twisted.web; they now test the one remaining path, with
the same assertions on what the server answers.)"""

import http.client
import socket
import xmlrpc.client

import pytest

from linksync.server.mail import SMTPMailer
from linksync.testing import ServerFixture

SECRET = 'management-secret'


@pytest.fixture
def fred(server):
    server.register_client('fred', 'fred-password')
    return server


def call(method, *params, path=b'/RPC2', headers=b'', version=b'HTTP/1.1'):
    body = xmlrpc.client.dumps(params, method).encode()
    return (b'POST %s %s\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n'
            b'%sContent-Length: %d\r\n\r\n%s'
            % (path, version, headers, len(body), body))


CHECK = call('checkConnection', 'fred', 'fred-password')


class Client:
    """A raw HTTP connection reading whole responses."""

    def __init__(self, server):
        self.sock = socket.create_connection(('127.0.0.1', server.port),
                                             timeout=30)
        self.buffer = b''

    def send(self, *pieces):
        for piece in pieces:
            self.sock.sendall(piece)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError('connection closed')
        self.buffer += data

    def response(self):
        """(status line, {header: value}, body)."""
        while b'\r\n\r\n' not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b'\r\n\r\n', 1)
        status, *lines = head.split(b'\r\n')
        headers = {}
        for line in lines:
            name, _, value = line.partition(b':')
            headers[name.strip().lower()] = value.strip()
        if status.startswith(b'HTTP/1.1 100'):
            return status, headers, b''
        length = int(headers.get(b'content-length', b'0'))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def closed(self):
        """True when the server closed the connection (after the data)."""
        try:
            return self.sock.recv(1) == b''
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def result(body):
    return xmlrpc.client.loads(body)[0][0]


def test_plain_calls_on_a_kept_alive_connection(fred):
    client = Client(fred)
    for _ in range(3):
        client.send(CHECK)
        status, headers, body = client.response()
        assert status == b'HTTP/1.1 200 OK'
        assert headers[b'content-type'] == b'text/xml; charset=utf-8'
        assert headers[b'server'].startswith(b'TwistedWeb/')
        assert headers[b'date'].endswith(b' GMT')
        assert result(body) == 2
    client.close()
    # The standard library client's requests are answered too.
    assert fred.proxy().checkConnection('fred', 'fred-password') == 2


def test_bad_credentials_are_401(fred):
    client = Client(fred)
    client.send(call('checkConnection', 'fred', 'wrong'))
    status, headers, body = client.response()
    assert status == b'HTTP/1.1 401 Unauthorized'
    assert headers[b'content-type'] == b'text/plain'
    assert b'wrong password' in body
    # The connection stays usable.
    client.send(CHECK)
    assert result(client.response()[2]) == 2


def test_pipelined_requests_are_answered_in_order(fred):
    client = Client(fred)
    client.send(CHECK + call('getStatus', 'fred', 'fred-password',
                             'http://a.example/') + CHECK)
    assert result(client.response()[2]) == 2
    assert result(client.response()[2])[1] == 'unknown'
    assert result(client.response()[2]) == 2


def test_calls_and_pages_mix_on_one_connection(fred):
    client = Client(fred)
    # A plain call, a page, a call with a gzip body, a plain call, all
    # sent at once.
    import gzip
    body = gzip.compress(xmlrpc.client.dumps(
        ('fred', 'fred-password'), 'checkConnection').encode())
    zipped = (b'POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n'
              b'Content-Length: %d\r\n\r\n%s' % (len(body), body))
    client.send(CHECK + b'GET / HTTP/1.1\r\nHost: x\r\n\r\n' + zipped + CHECK)
    assert result(client.response()[2]) == 2
    # The status page, answered by twisted.web (401: a script without the
    # web UI's credentials).
    status, _, page = client.response()
    assert status == b'HTTP/1.1 401 Unauthorized'
    assert result(client.response()[2]) == 2
    assert result(client.response()[2]) == 2


def test_a_request_in_pieces_is_answered(fred):
    client = Client(fred)
    head, body = CHECK.split(b'\r\n\r\n', 1)
    client.send(head[:10])
    client.send(head[10:] + b'\r\n\r\n')
    client.send(body[:20])
    client.send(body[20:])
    assert result(client.response()[2]) == 2
    # And the next one, whole, on the same connection.
    client.send(CHECK)
    assert result(client.response()[2]) == 2


@pytest.mark.parametrize('extra, version', [
    (b'Connection: close\r\n', b'HTTP/1.1'),
    (b'', b'HTTP/1.0'),
])
def test_connection_close_and_http_1_0_close_after_the_answer(
        fred, extra, version):
    client = Client(fred)
    client.send(call('checkConnection', 'fred', 'fred-password',
                     headers=extra, version=version))
    status, headers, body = client.response()
    assert b' 200 ' in status
    assert result(body) == 2
    assert client.closed()


def test_keep_alive_header_keeps_the_connection(fred):
    client = Client(fred)
    client.send(call('checkConnection', 'fred', 'fred-password',
                     headers=b'Connection: Keep-Alive\r\n'))
    assert result(client.response()[2]) == 2
    client.send(CHECK)
    assert result(client.response()[2]) == 2


def test_expect_100_continue(fred):
    client = Client(fred)
    head, body = call('checkConnection', 'fred', 'fred-password',
                      headers=b'Expect: 100-continue\r\n').split(
                          b'\r\n\r\n', 1)
    client.send(head + b'\r\n\r\n')
    status, _, _ = client.response()
    assert status == b'HTTP/1.1 100 Continue'
    client.send(body)
    assert result(client.response()[2]) == 2


def test_chunked_request_body(fred):
    body = xmlrpc.client.dumps(('fred', 'fred-password'),
                               'checkConnection').encode()
    client = Client(fred)
    client.send(b'POST /RPC2 HTTP/1.1\r\nHost: x\r\n'
                b'Transfer-Encoding: chunked\r\n\r\n',
                b'%x\r\n%s\r\n' % (20, body[:20]),
                b'%x\r\n%s\r\n0\r\n\r\n' % (len(body) - 20, body[20:]))
    assert result(client.response()[2]) == 2


@pytest.mark.parametrize('headers', [
    # Repeated, folded and malformed headers: twisted.web judges them.
    b'Content-Length: 5\r\n',
    b'X-Folded: a\r\n b\r\n',
    b'Bad Header: x\r\n',
    b'NoColon\r\n',
])
def test_odd_headers(fred, headers):
    client = Client(fred)
    client.send(call('checkConnection', 'fred', 'fred-password',
                     headers=headers))
    try:
        status, _, body = client.response()
    except (EOFError, ConnectionResetError):
        status = b'closed'
    assert not status.startswith(b'HTTP/1.1 200') or result(body) == 2
    # The server is fine.
    assert fred.proxy().checkConnection('fred', 'fred-password') == 2


def test_other_paths_and_methods(fred):
    client = Client(fred)
    client.send(call('checkConnection', 'fred', 'fred-password',
                     path=b'/metrics'))
    assert client.response()[0] == b'HTTP/1.1 405 Method Not Allowed'
    client.send(b'GET /RPC2 HTTP/1.1\r\nHost: x\r\n\r\n')
    assert client.response()[0] == b'HTTP/1.1 405 Method Not Allowed'
    # POST / is XML-RPC.
    client.send(call('checkConnection', 'fred', 'fred-password', path=b'/'))
    assert result(client.response()[2]) == 2


@pytest.mark.parametrize('path', [
    b'/app/', b'/app', b'/v2', b'/lms/v2', b'/cms/linkcheck/RPC2',
    b'/a%20b/', b'/RPC2/', b'/?x=1', b'/app/?x=1'])
def test_xml_rpc_at_any_path_that_is_no_page(fred, path):
    # Older link checkers' clients are configured with such URLs.
    client = Client(fred)
    client.send(call('checkConnection', 'fred', 'fred-password', path=path))
    status, headers, body = client.response()
    assert status == b'HTTP/1.1 200 OK' and result(body) == 2
    if path.startswith(b'/?'):
        return                          # GET / is the status page
    client.send(b'GET %s HTTP/1.1\r\nHost: x\r\n\r\n' % path)
    assert client.response()[0] in (b'HTTP/1.1 404 Not Found',
                                    b'HTTP/1.1 405 Method Not Allowed')
    proxy = xmlrpc.client.ServerProxy(fred.base_url + path.decode())
    assert proxy.checkConnection('fred', 'fred-password') == 2


def test_pages_keep_their_paths(fred):
    """A POST to a page is the page's, never XML-RPC."""
    client = Client(fred)
    client.send(call('checkConnection', 'fred', 'fred-password',
                     path=b'/login'))
    status, headers, body = client.response()
    assert b'<methodResponse>' not in body and b'200' not in status
    client.send(call('checkConnection', 'fred', 'fred-password',
                     path=b'/search'))
    status, headers, body = client.response()
    assert b'<methodResponse>' not in body


def test_oversized_bodies_are_413(tmp_path):
    server = ServerFixture(data=str(tmp_path / 'var'),
                           max_request_bytes=1000).start()
    server.register_client('fred', 'fred-password')
    client = Client(server)
    client.send(call('registerURLs', 'fred', 'fred-password',
                     ['http://a.example/%d' % i for i in range(100)]))
    status, headers, _ = client.response()
    assert status == b'HTTP/1.1 413 Payload Too Large'


def test_large_bodies_are_answered(fred):
    # Over 1 MiB, under the size limit: twisted.web spools it to a file
    # while it comes, and it is answered; the connection goes on.
    urls = ['http://a.example/%0200d' % i for i in range(5000)]
    request = call('registerURLs', 'fred', 'fred-password', urls)
    assert len(request) > 1024 * 1024
    client = Client(fred)
    client.send(request)
    status, _, body = client.response()
    assert status == b'HTTP/1.1 200 OK' and result(body) == []
    client.send(CHECK)
    assert result(client.response()[2]) == 2


def test_a_late_answer_holds_what_follows(tmp_path, smtp_server):
    # registerClient without a password answers once the mail is sent (a
    # Deferred): the pipelined call after it waits for it, in order.
    mailer = SMTPMailer('127.0.0.1', smtp_server.port,
                        'linksync@test.example')
    server = ServerFixture(data=str(tmp_path / 'var'), mailer=mailer).start()
    server.register_client('fred', 'fred-password')
    client = Client(server)
    client.send(call('registerClient', SECRET, 'wilma', 'http://a/',
                     'Wilma', 'wilma@example.com') + CHECK + CHECK)
    assert result(client.response()[2]) is True
    assert result(client.response()[2]) == 2
    assert result(client.response()[2]) == 2
    assert len(smtp_server.messages) == 1


def test_a_client_leaving_before_a_late_answer(tmp_path, smtp_server):
    mailer = SMTPMailer('127.0.0.1', smtp_server.port,
                        'linksync@test.example')
    server = ServerFixture(data=str(tmp_path / 'var'), mailer=mailer).start()
    client = Client(server)
    client.send(call('registerClient', SECRET, 'wilma', 'http://a/',
                     'Wilma', 'wilma@example.com'))
    client.close()
    # The registration goes on; the server stays fine.
    proxy = server.proxy()
    assert proxy.registerClient(SECRET, 'betty', 'http://a/', 'Betty',
                                'betty@example.com', 'pw') is True
    assert proxy.checkConnection('betty', 'pw') == 2


def test_info_frame_url_ignores_the_host_header(fred):
    # The caller chooses the Host header: the link names the address the
    # request arrived on instead (or --public-url).
    client = Client(fred)
    client.send(call('getInfoFrameURL', 'fred', 'fred-password').replace(
        b'Host: 127.0.0.1', b'Host: links.example:8080'))
    # (with the signed token that opens the page, see linksync.server.web)
    assert result(client.response()[2]).startswith(
        'http://127.0.0.1:%d/alerts/fred?token=' % fred.port)


def test_large_answers_are_gzipped(fred):
    urls = ['http://example.com/%d' % i for i in range(2000)]
    proxy = fred.proxy()
    proxy.registerURLs('fred', 'fred-password', urls)
    conn = http.client.HTTPConnection('127.0.0.1', fred.port, timeout=30)
    conn.request('POST', '/RPC2', body=xmlrpc.client.dumps(
        ('fred', 'fred-password', urls), 'getURLStates').encode(),
        headers={'Accept-Encoding': 'gzip'})
    response = conn.getresponse()
    assert response.getheader('Content-Encoding') == 'gzip'
    import gzip
    [rows], _ = xmlrpc.client.loads(gzip.decompress(response.read()))
    assert len(rows) == 2000
    conn.close()


def test_a_body_in_pieces_then_the_next_request(fred):
    client = Client(fred)
    head, body = CHECK.split(b'\r\n\r\n', 1)
    client.send(head + b'\r\n\r\n' + body[:7])
    client.send(body[7:30])
    # The end of the body and the next request in one piece.
    client.send(body[30:] + CHECK)
    assert result(client.response()[2]) == 2
    assert result(client.response()[2]) == 2


def test_a_client_leaving_in_the_middle_of_a_body(fred):
    client = Client(fred)
    client.send(CHECK[:-10])
    client.close()
    assert fred.proxy().checkConnection('fred', 'fred-password') == 2


def test_every_call_is_logged_once_with_client_and_method(fred):
    from twisted.logger import formatEvent, globalLogPublisher
    lines = []

    def observe(event):
        if event.get('log_namespace') == 'linksync.xmlrpc':
            lines.append(formatEvent(event))
    globalLogPublisher.addObserver(observe)
    try:
        client = Client(fred)
        client.send(CHECK)
        client.response()
        client.send(call('checkConnection', 'fred', 'fred-password',
                         headers=b'Expect: 100-continue\r\n'))
        client.response()
        client.response()
    finally:
        globalLogPublisher.removeObserver(observe)
    # The fixture's registerClient is logged after its answer is sent: its
    # line may come in after the observer was added.
    lines = [line for line in lines if ' registerClient ' not in line]
    assert len(lines) == 2
    for line in lines:
        assert line.startswith('127.0.0.1 fred checkConnection ok ')
        assert 'fred-password' not in line
