"""The lean HTTP/1.1 client of the checker, on answers of every framing."""

import pytest
from twisted.internet import task

from linksync import states
from linksync.testing import servers as testservers

from test_checker import make_checker

# The answer to HEAD: the length of the body a GET would get, no body.
OK_HEAD = b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n'
CHUNKED = (b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'
           b'5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n')
HTTP10 = b'HTTP/1.0 200 OK\r\n\r\nuntil the connection closes'
INTERIM = (b'HTTP/1.1 100 Continue\r\n\r\n'
           b'HTTP/1.1 204 No Content\r\n\r\n')
GARBAGE = b'SMTP ready\r\n\r\n'
NO_LENGTH_KEEP = b'HTTP/1.1 200 OK\r\n\r\nbody'


@pytest.fixture
def clock():
    return task.Clock()


def run(clock, server, paths, **settings):
    checker = make_checker(clock, **settings)
    urls = [server.url(p) for p in paths]
    results = testservers.run_checks(checker, urls)
    return [results[u] for u in urls]


def test_framings_keep_the_connection_when_they_can(clock):
    server = testservers.RawHTTPServer({
        '/length': (OK_HEAD, False),
        '/interim': (INTERIM, False),
        '/redirect': (b'HTTP/1.1 302 Found\r\nLocation: /length\r\n'
                      b'Content-Length: 0\r\n\r\n', False),
    }).start()
    results = run(clock, server, ['/length', '/interim', '/redirect'],
                  per_host_connections=1)
    assert results == [(states.OK, '200 OK'), (states.OK, '204 No Content'),
                       (states.OK, '200 OK after 1 redirect')]
    assert server.connections == 1


def test_head_refused_twice_is_the_answer(clock):
    server = testservers.RawHTTPServer({
        '/a': (b'HTTP/1.1 405 No HEAD\r\nContent-Length: 0\r\n\r\n',
               False),
    }).start()
    assert run(clock, server, ['/a']) == [(states.UNAVAILABLE, '405 No HEAD')]
    assert server.requests == [('HEAD', '/a'), ('GET', '/a')]


def test_get_bodies_chunked_and_close_delimited(clock):
    server = testservers.RawHTTPServer({}).start()
    # A server refusing HEAD (405) and answering GET with each framing.
    for name, answer, close in (('chunked', CHUNKED, False),
                                ('http10', HTTP10, True),
                                ('nolength', NO_LENGTH_KEEP, True)):
        server.answers['/' + name] = (answer, close)
    refused = b'HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n'

    class Switch(dict):
        def __getitem__(self, path):
            answer, close = dict.__getitem__(self, path)
            method = server.requests[-1][0]
            return (refused, False) if method == 'HEAD' else (answer, close)
    server.answers = Switch(server.answers)
    results = run(clock, server, ['/chunked', '/http10', '/nolength'],
                  per_host_connections=1)
    assert results == [(states.OK, '200 OK')] * 3
    for path in ('/chunked', '/http10', '/nolength'):
        assert [m for m, p in server.requests if p == path] == [
            'HEAD', 'GET']
    # (A chunked body whose end went unnoticed would hang until the
    # timeout, and be temporary.)


def test_a_closed_kept_alive_connection_is_retried_once(clock):
    # The server closes after each answer without saying so.
    server = testservers.RawHTTPServer({
        '/1': (OK_HEAD, True), '/2': (OK_HEAD, True),
    }).start()
    results = run(clock, server, ['/1', '/2'], per_host_connections=1)
    assert results == [(states.OK, '200 OK')] * 2
    assert server.connections == 2


def test_garbage_and_silence(clock):
    server = testservers.RawHTTPServer({
        '/garbage': (GARBAGE, False), '/closed': (b'', True),
        '/long': (b'HTTP/1.1 200 OK\r\nX: ' + b'y' * 300_000, False),
    }).start()
    garbage, closed, long = run(clock, server,
                                ['/garbage', '/closed', '/long'])
    assert garbage[0] == states.UNAVAILABLE
    assert garbage[1].startswith('invalid HTTP answer')
    assert closed == (states.TEMPORARY, 'connection closed before an answer')
    assert long[0] == states.UNAVAILABLE


def test_two_framings_never_desynchronise_a_kept_connection(clock):
    # Content-Length values that disagree, or Content-Length beside
    # chunked: the end of the body is not known for sure, so the
    # connection is not reused; the head still gives the verdict.
    server = testservers.RawHTTPServer({}).start()
    answers = {
        '/conflict': b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n'
                     b'Content-Length: 2\r\n\r\nhi',
        '/both': b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n'
                 b'Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n',
        '/after': b'HTTP/1.1 204 No Content\r\n\r\n',
    }
    refused = b'HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n'

    class Switch(dict):
        def __getitem__(self, path):
            method = server.requests[-1][0]
            if method == 'HEAD':
                return refused, False
            return answers[path], False
    server.answers = Switch()
    results = run(clock, server, ['/conflict', '/both', '/after'],
                  per_host_connections=1)
    assert results == [(states.OK, '200 OK'), (states.OK, '200 OK'),
                       (states.OK, '204 No Content')]
    # The HEADs share the first connection; each GET answered with two
    # framings ends its connection, so the next GET needs a new one.
    assert server.requests[-3:] == [('GET', '/conflict'), ('GET', '/both'),
                                    ('GET', '/after')]
    assert server.connections == 3, server.requests


def test_heads_as_browsers_read_them():
    from linksync.server.checker.schemes.http11 import parse_head
    status, phrase, headers, version = parse_head(
        b'http/1.1 301 Moved\nLocation: /a\n  /b\nnot a header\n'
        b'Set-Cookie: a=1\nSet-Cookie: b=2\nContent-Length: 3, 3')
    assert (status, phrase, version) == (301, b'Moved', (1, 1))
    assert headers == {b'location': b'/a /b',
                       b'set-cookie': (b'a=1', b'b=2'),
                       b'content-length': b'3'}
    assert parse_head(b'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n'
                      b'Content-Length: 2')[2][b'content-length'] == \
        b'conflict'
