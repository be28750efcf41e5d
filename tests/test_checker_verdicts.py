"""Verdicts a person in a browser would agree with: HEAD quirks, bot walls,
FTP command injection and FTP paths, against real servers on loopback."""

import collections
import os
import socket
import threading

import pytest

from linksync import states, testing
from linksync.testing import servers as testservers

from test_checker import check, clock, make_checker, web  # noqa: F401

OK, TEMP, GONE = states.OK, states.TEMPORARY, states.UNAVAILABLE


def test_get_is_asked_whenever_head_is_not_a_good_answer(clock, web):
    checker = make_checker(clock)
    checker.http.get_first_after = None     # HEAD first for every URL
    codes = [400, 404, 410, 500, 502, 503]
    results = check(checker, web, *['/head-refused/%d' % c for c in codes])
    assert results == [(OK, '200 OK')] * len(codes)
    methods = collections.defaultdict(list)
    for hit in web.log:
        methods[hit.path].append(hit.method)
    for code in codes:
        assert methods['/head-refused/%d' % code] == ['HEAD', 'GET']


def test_a_good_head_answer_is_trusted(clock, web):
    checker = make_checker(clock)
    assert check(checker, web, '/status/204', '/redirect/1') == [
        (OK, '204 No Content'), (OK, '200 OK after 1 redirect')]
    assert [hit.method for hit in web.log] == ['HEAD'] * 3


def test_a_host_whose_head_answers_are_not_taken_is_asked_get_first(
        clock, web, monkeypatch):
    from linksync.server.checker.schemes import http
    monkeypatch.setattr(http, 'GET_FIRST_RUN', 3)
    checker = make_checker(clock)

    def methods_of(path):
        """The verdict on `path` (checked alone) and the methods asked."""
        del web.log[:]
        verdict, = check(checker, web, path)
        return verdict, [hit.method for hit in web.log]
    # A good HEAD answer in between: no two misses in a row.
    assert methods_of('/head-refused/405') == ((OK, '200 OK'), ['HEAD', 'GET'])
    assert methods_of('/status/200') == ((OK, '200 OK'), ['HEAD'])
    assert methods_of('/head-refused/403') == ((OK, '200 OK'), ['HEAD', 'GET'])
    # The second miss in a row: the next 3 checks ask GET at once, with
    # the verdicts GET gives.
    assert methods_of('/head-refused/501') == ((OK, '200 OK'), ['HEAD', 'GET'])
    assert methods_of('/head-refused/500') == ((OK, '200 OK'), ['GET'])
    assert methods_of('/status/404') == ((GONE, '404 Not Found'), ['GET'])
    assert methods_of('/status/200') == ((OK, '200 OK'), ['GET'])
    # Then HEAD again.
    assert methods_of('/status/200') == ((OK, '200 OK'), ['HEAD'])
    # Each host on its own: another host's HEAD is still asked first.
    other = testservers.HTTPTestServer('127.0.0.3', clock=clock).start()
    results = testservers.run_checks(checker, [other.url('/status/200')],
                                     [other])
    assert list(results.values()) == [(OK, '200 OK')]
    assert [hit.method for hit in other.log] == ['HEAD']


class HeadBreaker:
    """A raw HTTP server: HEAD is dropped (``/drop``) or never answered
    (``/hang``); GET gets 200."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.3', 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.methods = []
        self.held = []
        self.closing = False
        threading.Thread(target=self._serve, daemon=True).start()
        testing.on_cleanup(self.stop)

    def url(self, path):
        return 'http://127.0.0.3:%d%s' % (self.port, path)

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,),
                             daemon=True).start()

    def _one(self, conn):
        data = b''
        with conn:
            while True:
                while b'\r\n\r\n' not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                head, _, data = data.partition(b'\r\n\r\n')
                method, path = head.split(b' ')[:2]
                self.methods.append((method.decode(), path.decode()))
                if method == b'HEAD':
                    if path == b'/drop':
                        return
                    self.held.append(conn)
                    try:
                        while conn.recv(4096):
                            pass
                    except OSError:   # the checker gave up: reset
                        pass
                    return
                conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n'
                             b'\r\nok\n')

    def stop(self):
        self.sock.close()
        for conn in self.held:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_get_is_asked_after_head_drops_the_connection_or_times_out(clock):
    server = HeadBreaker()
    checker = make_checker(clock, timeout=5.0)
    urls = [server.url('/drop'), server.url('/hang')]
    results = testservers.run_checks(checker, urls, settle=False)
    assert results[urls[0]] == (OK, '200 OK')
    assert results[urls[1]] == (OK, '200 OK')
    assert sorted(server.methods) == [('GET', '/drop'), ('GET', '/hang'),
                                      ('HEAD', '/drop'), ('HEAD', '/hang')]


def test_a_bot_wall_status_is_not_a_broken_link(clock, web):
    checker = make_checker(clock)
    [(state, reason)] = check(checker, web, '/status/999')
    assert state == TEMP
    assert reason.startswith('refused as a robot (999')


# -- FTP -----------------------------------------------------------------------------

@pytest.fixture
def ftp(tmp_path):
    root = tmp_path / 'ftp'
    (root / 'pub').mkdir(parents=True)
    (root / 'pub' / 'file.txt').write_bytes(b'hello\n')
    server = testservers.FTPTestServer(str(root), users={'joe': 's3cret'})
    server.start()
    return server


@pytest.mark.parametrize('url', [
    'ftp://joe:s3cret%0D%0AMKD%20pwned@127.0.0.1:{port}/',
    'ftp://joe%0AMKD%20pwned:s3cret@127.0.0.1:{port}/',
    'ftp://127.0.0.1:{port}/pub/%0D%0AMKD%20pwned',
    'ftp://127.0.0.1:{port}/pub/x%00%0AMKD%20pwned/',
])
def test_ftp_refuses_cr_lf_and_nul_instead_of_sending_them(clock, ftp, url):
    url = url.format(port=ftp.port)
    checker = make_checker(clock)
    state, reason = testservers.run_checks(checker, [url])[url]
    assert state == GONE
    assert reason.startswith('CR, LF or NUL in the FTP ')
    for top, dirs, _ in os.walk(ftp.root):
        assert not [d for d in dirs if 'pwned' in d], top


@pytest.fixture
def utf8_ftp(tmp_path):
    """pyftpdlib (paths read as UTF-8) serving `tmp_path` anonymously."""
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer
    authorizer = DummyAuthorizer()
    authorizer.add_anonymous(str(tmp_path))
    handler = type('Handler', (FTPHandler,), {'authorizer': authorizer})
    server = FTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever,
                              kwargs={'timeout': 0.05}, daemon=True)
    thread.start()

    def stop():
        server.close_all()
        thread.join()
    testing.on_cleanup(stop)
    return tmp_path, server.socket.getsockname()[1]


def test_ftp_paths_go_out_byte_for_byte(clock, utf8_ftp):
    root, port = utf8_ftp
    (root / 'caf\u00e9.txt').write_bytes(b'coffee\n')
    (root / 'b\u00fccher').mkdir()
    checker = make_checker(clock)
    base = 'ftp://127.0.0.1:%d/' % port
    file, folder, latin1 = (base + 'caf%C3%A9.txt', base + 'b%C3%BCcher/',
                            base + 'caf%E9.txt')
    results = testservers.run_checks(checker, [file, folder, latin1])
    assert results[file][0] == OK, results[file]
    assert results[folder] == (OK, 'FTP directory listed')
    # Bytes that are no UTF-8 reach the server as they are: it has no such
    # file, and says so.
    assert results[latin1][0] == GONE
    assert '550' in results[latin1][1]
