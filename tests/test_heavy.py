"""Heavy clients: a call carrying a long list of URLs, or a big body, does
not hold the reactor thread; the other clients are answered meanwhile."""

import threading
import xmlrpc.client

import pytest
from twisted.internet import defer

from linksync import states

from test_hostile import SECRET, api_of, server  # noqa: F401


def url_count(server, client_id):
    return server.read(lambda app: app.clients.get(client_id).url_count)


class Pauses:
    """Wraps the API's pause between the slices of a call: counts them and,
    once `hold(app)` is true at one, keeps the call there until release()
    (the reactor runs on meanwhile)."""

    def __init__(self, server, hold=lambda app: False):
        self.server = server
        self.api = api_of(server)
        self.real = self.api.pause
        self.hold = hold
        self.count = 0
        self.held = threading.Event()
        self.gate = None
        self.api.pause = self

    def __call__(self):
        self.count += 1
        if self.gate is None and self.api.session.read(self.hold):
            self.gate = defer.Deferred()
            self.held.set()
            return self.gate
        return self.real()

    def release(self):
        self.server.rt.call(self.gate.callback, None)


def in_thread(func, *args):
    """Run func(*args) in a thread; returns (thread, outcome list)."""
    outcome = []

    def run():
        try:
            outcome.append(func(*args))
        except Exception as e:      # pragma: no cover - shown by the test
            outcome.append(e)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def wait_held(pauses, thread):
    """Wait until the call in `thread` is held between two slices; fails
    when the call ends without ever pausing (done in one unit)."""
    while not pauses.held.wait(0.05):
        assert thread.is_alive(), 'the call ended without pausing'


def test_a_big_register_urls_lets_other_clients_in(server):
    server.register_client('big', 'big-password')
    server.register_client('other', 'other-password')
    api_of(server).slice_urls = 100
    urls = ['http://host%d.example/page/%d' % (i % 7, i) for i in range(1000)]
    # Hold the call once part of the URLs is registered (committed).
    pauses = Pauses(server, hold=lambda app: 0 < app.clients.get(
        'big').url_count)
    thread, outcome = in_thread(
        server.proxy().registerURLs, 'big', 'big-password', urls)
    try:
        wait_held(pauses, thread)
        # Another client is answered while the big call is in the middle.
        assert server.proxy().checkConnection('other', 'other-password') == 2
        assert server.proxy().registerURLs('other', 'other-password', [
            'http://other.example/']) == []
        done = url_count(server, 'big')
        assert 0 < done < 1000 and thread.is_alive() and outcome == []
    finally:
        pauses.release()
        thread.join(60)
    assert outcome == [[]]
    assert url_count(server, 'big') == 1000
    assert url_count(server, 'other') == 1


def test_a_big_unregister_urls_lets_other_clients_in(server):
    server.register_client('big', 'big-password')
    server.register_client('other', 'other-password')
    urls = ['http://host%d.example/page/%d' % (i % 7, i) for i in range(1000)]
    assert server.proxy().registerURLs('big', 'big-password', urls) == []
    api_of(server).slice_urls = 100
    pauses = Pauses(server, hold=lambda app: app.clients.get(
        'big').url_count < 1000)
    thread, outcome = in_thread(
        server.proxy().unregisterURLs, 'big', 'big-password', urls)
    try:
        wait_held(pauses, thread)
        assert server.proxy().checkConnection('other', 'other-password') == 2
        assert 0 < url_count(server, 'big') < 1000 and outcome == []
    finally:
        pauses.release()
        thread.join(60)
    assert outcome == [True]
    assert url_count(server, 'big') == 0


def test_a_big_get_url_states_lets_other_clients_in(server):
    server.register_client('big', 'big-password')
    server.register_client('other', 'other-password')
    urls = ['http://host%d.example/page/%d' % (i % 7, i) for i in range(1000)]
    server.proxy().registerURLs('big', 'big-password', urls)
    api_of(server).slice_urls = 100
    pauses = Pauses(server, hold=lambda app: True)
    thread, outcome = in_thread(
        server.proxy().getURLStates, 'big', 'big-password', urls)
    try:
        wait_held(pauses, thread)
        assert server.proxy().checkConnection('other', 'other-password') == 2
        assert outcome == []
    finally:
        pauses.release()
        thread.join(60)
    assert [row[:3] for row in outcome[0]] == [
        [url, 'unknown', ''] for url in urls]


def _set_state(server, url, state, reason):
    server.run(lambda app: app.urls.get(url).set_result(state, reason, 100.0))


def test_calls_in_slices_answer_as_one_unit(server):
    """Duplicates and spellings of one URL spread over several slices,
    invalid entries and known states: the answers, and what is stored,
    are those of the whole list done at once."""
    api = api_of(server)
    for client_id in ('setup', 'whole', 'sliced'):
        server.register_client(client_id, 'pw')
    proxy = server.proxy()
    proxy.registerURLs('setup', 'pw', ['http://a.example/', 'http://b.example/',
                                       'http://c.example/'])
    _set_state(server, 'http://a.example/', states.OK, '200 OK')
    _set_state(server, 'http://c.example/', states.UNAVAILABLE, '404 Not Found')
    urls = ['http://a.example/', 'http://new1.example/', 'not a url',
            'http://c.example/', 12, 'HTTP://A.example/#x',
            'http://new2.example/', 'http://\u00e4.example/',
            'http://a.example/', 'http://new1.example/#y', 'http://b.example/',
            'HTTP://C.EXAMPLE/', 'http://new3.example/', 'http://a.example/#z']
    whole = proxy.registerURLs('whole', 'pw', urls)
    api.slice_urls = 3
    pauses = Pauses(server)
    assert proxy.registerURLs('sliced', 'pw', urls) == whole
    assert pauses.count >= 4
    assert whole[:3] == [['http://a.example/', 'ok', '200 OK'],
                         ['HTTP://A.example/#x', 'ok', '200 OK'],
                         ['http://a.example/#z', 'ok', '200 OK']]
    api.slice_urls = 1000
    stored = proxy.getURLStates('whole', 'pw', urls)
    api.slice_urls = 3
    assert proxy.getURLStates('sliced', 'pw', urls) == stored
    assert len(stored) == 10
    # Unregistering: a spelling the client used forgets that spelling only,
    # even when another spelling of the URL comes in a later slice.
    doomed = ['http://a.example/', 'http://x.example/', 'junk',
              'http://new2.example/', 'http://A.EXAMPLE/#other',
              'http://c.example/']
    api.slice_urls = 1000
    proxy.unregisterURLs('whole', 'pw', doomed)
    api.slice_urls = 2
    count = pauses.count
    proxy.unregisterURLs('sliced', 'pw', doomed)
    assert pauses.count > count
    api.slice_urls = 1000
    left = proxy.getURLStates('whole', 'pw', urls)
    assert proxy.getURLStates('sliced', 'pw', urls) == left
    assert 'HTTP://A.example/#x' in [row[0] for row in left]
    assert 'http://new2.example/' not in [row[0] for row in left]


def test_a_sliced_call_stops_at_a_password_change(server):
    """Each slice checks the credentials again: once the password changed,
    the call is answered 401 and the slices after are not done."""
    server.register_client('big', 'big-password')
    api = api_of(server)
    api.slice_urls = 10
    urls = ['http://h.example/%d' % i for i in range(100)]
    pauses = Pauses(server, hold=lambda app: 0 < app.clients.get(
        'big').url_count)
    thread, outcome = in_thread(
        server.proxy().registerURLs, 'big', 'big-password', urls)
    try:
        wait_held(pauses, thread)
        server.run(lambda app: app.clients.get('big').set_password('new-pw'))
    finally:
        pauses.release()
        thread.join(60)
    assert isinstance(outcome[0], xmlrpc.client.ProtocolError)
    assert outcome[0].errcode == 401
    assert 0 < url_count(server, 'big') < 100


# -- big bodies are parsed in a thread --------------------------------------------

class WatchedParse:
    """Wraps the XML-RPC resource's parser: keeps the name of the thread
    of each parse with the body's length, and holds the parse of a body
    longer than `hold_over` bytes (in its thread) until release()."""

    def __init__(self, server, hold_over=None):
        self.resource = server.service.api.root.rpc
        self.real = self.resource.parse
        self.hold_over = hold_over
        self.threads = []
        self.held = threading.Event()
        self.released = threading.Event()
        self.resource.parse = self

    def __call__(self, body):
        self.threads.append((len(body), threading.current_thread().name))
        if self.hold_over is not None and len(body) > self.hold_over:
            self.held.set()
            assert self.released.wait(60)
        return self.real(body)


def test_a_big_body_is_parsed_off_the_reactor(server):
    server.register_client('big', 'big-password')
    server.register_client('other', 'other-password')
    urls = ['http://host%d.example/page/%06d' % (i % 7, i)
            for i in range(8000)]
    body = xmlrpc.client.dumps(('big', 'big-password', urls), 'registerURLs')
    assert len(body) > 256 * 1024
    parse = WatchedParse(server, hold_over=256 * 1024)
    thread, outcome = in_thread(
        server.proxy().registerURLs, 'big', 'big-password', urls)
    try:
        while not parse.held.wait(0.05):
            assert thread.is_alive(), 'the big body was not parsed apart'
        # The reactor answers another client while the body is parsed.
        assert server.proxy().checkConnection('other', 'other-password') == 2
        assert thread.is_alive() and outcome == []
    finally:
        parse.released.set()
        thread.join(60)
    assert outcome == [[]]
    assert url_count(server, 'big') == 8000
    [(big, big_thread)] = [t for t in parse.threads if t[0] > 256 * 1024]
    assert big_thread != 'reactor'
    # Small bodies are parsed at once, in the reactor thread.
    small = {name for length, name in parse.threads if length <= 256 * 1024}
    assert small == {'reactor'}


def test_a_big_malformed_body_is_a_parse_fault(server):
    import http.client
    parse = WatchedParse(server)
    body = b'<?xml version="1.0"?><methodCall><methodName>registerURLs' \
        b'</methodName><params>' + b'<param><value>x</value></param>' * \
        20000 + b'<param>'
    assert len(body) > 256 * 1024
    conn = http.client.HTTPConnection('127.0.0.1', server.port, timeout=30)
    try:
        conn.request('POST', '/RPC2', body=body,
                     headers={'Content-Type': 'text/xml'})
        response = conn.getresponse()
        answer = response.read()
    finally:
        conn.close()
    assert response.status == 200
    with pytest.raises(xmlrpc.client.Fault) as info:
        xmlrpc.client.loads(answer)
    assert info.value.faultCode == -32700
    assert 'not a well-formed XML-RPC request' in info.value.faultString
    assert [name for _, name in parse.threads] != ['reactor']
    assert len(parse.threads) == 1
    # The server goes on answering.
    server.register_client('fred', 'fred-pw')
    assert server.proxy().checkConnection('fred', 'fred-pw') == 2


def test_a_multicall_of_long_lists_lets_other_clients_in(server):
    """Each call of the multicall is short enough to be done in one unit;
    together they carry many URLs: the reactor serves others between."""
    server.register_client('big', 'big-password')
    server.register_client('other', 'other-password')
    rpc = server.service.api.root.rpc
    rpc.multicall_pause_items = 100
    real = rpc.pause
    held = threading.Event()
    gate = []

    def pause():
        if not gate:
            gate.append(defer.Deferred())
            held.set()
            return gate[0]
        return real()
    rpc.pause = pause
    multi = xmlrpc.client.MultiCall(server.proxy())
    for n in range(4):
        multi.registerURLs('big', 'big-password', [
            'http://h%d.example/%d' % (n, i) for i in range(150)])
    thread, outcome = in_thread(lambda: list(multi()))
    try:
        while not held.wait(0.05):
            assert thread.is_alive(), 'the multicall ended without pausing'
        assert server.proxy().checkConnection('other', 'other-password') == 2
        assert url_count(server, 'big') == 150 and outcome == []
    finally:
        server.rt.call(gate[0].callback, None)
        thread.join(60)
    assert outcome == [[[], [], [], []]]
    assert url_count(server, 'big') == 600


def test_big_bodies_waiting_for_their_parse_are_bounded_in_all(server):
    server.register_client('big', 'big-password')
    urls = ['http://host%d.example/page/%06d' % (i % 7, i)
            for i in range(8000)]
    size = len(xmlrpc.client.dumps(('big', 'big-password', urls),
                                   'registerURLs'))
    server.service.api.root.rpc.parse_budget_bytes = int(size * 1.5)
    parse = WatchedParse(server, hold_over=256 * 1024)
    thread, outcome = in_thread(
        server.proxy().registerURLs, 'big', 'big-password', urls)
    try:
        while not parse.held.wait(0.05):
            assert thread.is_alive()
        # A second big call while the first is held: over the budget of
        # bodies being parsed, refused at once (not kept in memory).
        with pytest.raises(xmlrpc.client.Fault) as info:
            server.proxy().registerURLs('big', 'big-password', urls)
        assert info.value.faultCode == 503
        assert 'send this one again shortly' in info.value.faultString
    finally:
        parse.released.set()
        thread.join(60)
    assert outcome == [[]]
    # Once the first is parsed, the budget is free again.
    parse.hold_over = None
    assert server.proxy().registerURLs('big', 'big-password', urls) == []
    assert server.service.api.root.rpc.parsing_bytes == 0
