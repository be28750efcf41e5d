"""Bounded connections: per peer address and in all, and a deadline for
a whole request (real sockets; the deadline on an injected clock)."""

import socket
import time
import xmlrpc.client

import pytest
from twisted.internet import endpoints, task
from twisted.web import resource

from linksync import testing
from linksync.xmlrpc.site import LinkSyncSite, ListeningService


def connect(port, source='127.0.0.1'):
    sock = socket.socket()
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect(('127.0.0.1', port))
    return sock


def closed_by_server(sock):
    """True when the server closed `sock` without a word."""
    try:
        return sock.recv(1) == b''
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def open_count(server, host='127.0.0.1'):
    api = server.service.getServiceNamed('api')
    return server.rt.call(api.connections.open_from, host)


def wait_until(predicate):
    for _ in range(2000):
        if predicate():
            return
        time.sleep(0.005)
    raise AssertionError('never came true')


@pytest.fixture
def fred(tmp_path):
    server = testing.ServerFixture(data=str(tmp_path / 'var'),
                                   max_connections_per_peer=5,
                                   max_connections=8).start()
    server.register_client('fred', 'pw')
    return server


def test_one_address_gets_a_bounded_share_of_connections(fred):
    idle = [connect(fred.port) for _ in range(5)]
    wait_until(lambda: open_count(fred) == 5)
    extra = connect(fred.port)
    assert closed_by_server(extra)
    # Another address still gets in, and its calls are answered.
    other = xmlrpc.client.ServerProxy(fred.url)
    sock = connect(fred.port, source='127.0.0.2')
    sock.sendall(xmlrpc.client.dumps(('fred', 'pw'), 'checkConnection')
                 .encode().join([b'POST /RPC2 HTTP/1.1\r\nHost: x\r\n'
                                 b'Content-Type: text/xml\r\n'
                                 b'Content-Length: %d\r\n\r\n'
                                 % len(xmlrpc.client.dumps(
                                     ('fred', 'pw'), 'checkConnection')),
                                 b'']))
    assert sock.recv(65536).startswith(b'HTTP/1.1 200 OK')
    # Once one of its connections closes, the first address may open one.
    idle.pop().close()
    wait_until(lambda: open_count(fred) == 4)
    assert other.checkConnection('fred', 'pw') == 2
    api = fred.service.getServiceNamed('api')
    assert fred.rt.call(lambda: api.connections.refused) == 1


def test_connections_in_all_are_bounded(fred):
    socks = [connect(fred.port, source='127.0.0.%d' % (2 + n % 4))
             for n in range(8)]
    api = fred.service.getServiceNamed('api')
    wait_until(lambda: fred.rt.call(lambda: len(api.connections.protocols))
               == 8)
    assert closed_by_server(connect(fred.port, source='127.0.0.9'))
    socks.pop().close()
    wait_until(lambda: fred.rt.call(lambda: len(api.connections.protocols))
               == 7)
    assert xmlrpc.client.ServerProxy(fred.url).checkConnection(
        'fred', 'pw') == 2


class Hello(resource.Resource):
    isLeaf = True

    def render_POST(self, request):
        return b'hello ' + request.content.read()


@pytest.fixture
def slow_site():
    """A LinkSyncSite on the real reactor, with its clock injected."""
    rt = testing.reactor_thread()
    clock = task.Clock()
    site = LinkSyncSite(Hello(), 1024, request_deadline=10.0,
                        reactor=clock, timeout=None)
    service = ListeningService()
    rt.call(service.listen, rt.reactor, 'tcp:0:interface=127.0.0.1', site)
    port = rt.call(lambda: service.listening)
    testing.on_cleanup(rt.call, service.stopService)
    return rt, clock, port.getHost().port


def test_a_request_must_arrive_whole_within_the_deadline(slow_site):
    rt, clock, port = slow_site
    sock = connect(port)
    sock.sendall(b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n')
    # The deadline starts with the request line, once the server read it.
    wait_until(lambda: rt.call(clock.getDelayedCalls))
    # A byte now and then does not extend the deadline.
    for _ in range(9):
        rt.call(clock.advance, 1)
        sock.sendall(b'X')
    sock.settimeout(0.2)
    with pytest.raises(socket.timeout):
        sock.recv(1)
    sock.settimeout(10)
    rt.call(clock.advance, 1.5)
    answer = b''
    while True:
        data = sock.recv(65536)
        if not data:
            break
        answer += data
    assert answer.startswith(b'HTTP/1.1 408 Request Timeout\r\n')
    assert answer.endswith(b'the request did not arrive within 10 seconds\n')


def test_a_request_in_time_is_served_and_its_deadline_forgotten(slow_site):
    rt, clock, port = slow_site
    sock = connect(port)
    for _ in range(2):
        sock.sendall(b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n'
                     b'\r\nworld')
        assert sock.recv(65536).endswith(b'hello world')
        rt.call(clock.advance, 100)     # past the deadline: nothing happens
    sock.settimeout(0.2)
    with pytest.raises(socket.timeout):
        sock.recv(1)                    # still open, nothing sent


def _kernel_buffers():
    """The most a TCP sender's and a receiver's kernel buffers hold on
    loopback before the receiving program reads (0 when unknown)."""
    try:
        with open('/proc/sys/net/ipv4/tcp_wmem') as w, \
                open('/proc/sys/net/ipv4/tcp_rmem') as r:
            return int(w.read().split()[2]) + int(r.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0


class Big(resource.Resource):
    """Answers every POST with `size` bytes, counting the answers made."""

    isLeaf = True
    # More than the kernel's buffers take while the client reads nothing.
    size = max(8 * 1024 * 1024, 2 * _kernel_buffers())

    def __init__(self):
        super().__init__()
        self.answered = 0

    def render_POST(self, request):
        self.answered += 1
        return b'%08d' % self.answered + b'x' * (self.size - 8)


@pytest.fixture
def big_site():
    rt = testing.reactor_thread()
    clock = task.Clock()
    big = Big()
    site = LinkSyncSite(big, 1024, request_deadline=10.0, reactor=clock,
                        timeout=None)
    service = ListeningService()
    rt.call(service.listen, rt.reactor, 'tcp:0:interface=127.0.0.1', site)
    port = rt.call(lambda: service.listening)
    testing.on_cleanup(rt.call, service.stopService)
    return rt, clock, big, service, port.getHost().port


def channels(rt, service):
    return rt.call(lambda: [p.wrappedProtocol
                            for p in service.connections.protocols])


def reader(port):
    sock = socket.socket()
    sock.settimeout(30)
    sock.connect(('127.0.0.1', port))
    return sock


PIPELINED = b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n' * 5


def test_a_client_reading_nothing_gets_one_answer_made(big_site):
    rt, clock, big, service, port = big_site
    sock = reader(port)
    sock.sendall(PIPELINED)
    # The first answer fills what the transport takes; the others wait
    # until the client reads (Twisted alone made all five: 40 MB held).
    wait_until(lambda: rt.call(lambda: big.answered) == 5 or any(
        getattr(c, '_held', None) is not None
        for c in channels(rt, service)))
    assert rt.call(lambda: big.answered) == 1
    # Reading, the client gets every answer, in order.
    received = b''
    while received.count(b'HTTP/1.1 200 OK') < 5 or \
            len(received) - received.rfind(b'\r\n\r\n') - 4 < Big.size:
        data = sock.recv(1 << 20)
        assert data
        received += data
    assert [received.find(b'\r\n\r\n%08d' % n) > 0 for n in range(1, 6)] \
        == [True] * 5
    assert rt.call(lambda: big.answered) == 5


def test_a_client_reading_nothing_is_disconnected_at_the_deadline(big_site):
    rt, clock, big, service, port = big_site
    sock = reader(port)
    sock.sendall(PIPELINED)
    wait_until(lambda: any(getattr(c, '_held', None) is not None
                           for c in channels(rt, service)))
    rt.call(clock.advance, 9)
    assert len(channels(rt, service)) == 1
    rt.call(clock.advance, 1)
    wait_until(lambda: channels(rt, service) == [])
    assert rt.call(lambda: big.answered) == 1
