"""Hostile clients: wrong passwords and secret guesses cannot hold the
reactor, tell client ids apart by timing, or be tried without limit."""

import threading
import xmlrpc.client

import pytest

from linksync.server.model import passwords
from linksync.testing import ServerFixture

SECRET = 'management-secret'


@pytest.fixture
def server(tmp_path):
    return ServerFixture(data=str(tmp_path / 'var'), secret=SECRET).start()


def api_of(server):
    return server.service.api.api


class SlowHash:
    """verify_password that waits for `release` (in the hashing thread) and
    counts what it is asked."""

    def __init__(self):
        self.started = threading.Event()
        self.release = threading.Event()
        self.stored = []

    def __call__(self, password, stored):
        self.stored.append(stored)
        self.started.set()
        assert self.release.wait(60)
        return passwords.verify_password(password, stored)


def test_the_reactor_answers_while_a_password_is_hashed(server):
    server.register_client('fred', 'fred-password')
    server.register_client('barney', 'barney-password')
    slow = SlowHash()
    api_of(server).verify_password = slow
    outcome = []

    def wrong_password():
        try:
            server.proxy().checkConnection('barney', 'wrong')
        except xmlrpc.client.ProtocolError as e:
            outcome.append(e.errcode)
    attacker = threading.Thread(target=wrong_password)
    attacker.start()
    try:
        assert slow.started.wait(60)
        # The hash is running: another client is answered meanwhile.
        assert server.proxy().checkConnection('fred', 'fred-password') == 2
        assert not slow.release.is_set() and outcome == []
    finally:
        slow.release.set()
        attacker.join(60)
    assert outcome == [401]


def test_an_unknown_id_is_checked_against_a_dummy_hash(server):
    server.register_client('fred', 'fred-password')
    slow = SlowHash()
    slow.release.set()
    api_of(server).verify_password = slow
    for client_id in ('fred', 'nobody'):
        with pytest.raises(xmlrpc.client.ProtocolError) as info:
            server.proxy().checkConnection(client_id, 'wrong')
        assert info.value.errcode == 401
    # Both ids cost one scrypt hash of the same parameters.
    assert len(slow.stored) == 2
    assert slow.stored[1] == passwords.dummy_hash()
    assert slow.stored[0].split('$')[:4] == slow.stored[1].split('$')[:4]


def test_wrong_passwords_are_throttled_without_hashing(server):
    server.register_client('fred', 'fred-password')
    server.register_client('barney', 'barney-password')
    # A new hash: barney's password is not remembered as verified.
    server.run(lambda app: app.clients.get('barney').set_password(
        'barney-password'))
    assert server.proxy().checkConnection('fred', 'fred-password') == 2
    api = api_of(server)
    slow = SlowHash()
    slow.release.set()
    api.verify_password = slow
    free = api.throttle.free
    # One multicall of many wrong passwords: only the free ones (and the
    # one that starts the block) are hashed.
    calls = [{'methodName': 'checkConnection', 'params': ['barney', 'x%d' % i]}
             for i in range(free + 20)]
    answers = server.proxy().system.multicall(calls)
    assert {a['faultCode'] for a in answers} == {401}
    assert len(slow.stored) == free + 1
    assert api.throttle.refused >= 1
    # Even the right password is refused, unhashed, while throttled...
    with pytest.raises(xmlrpc.client.ProtocolError):
        server.proxy().checkConnection('barney', 'barney-password')
    assert len(slow.stored) == free + 1
    # ... but a client whose password was verified keeps working.
    assert server.proxy().checkConnection('fred', 'fred-password') == 2
    # The block ends with time; then the right password works again.
    server.advance(api.throttle.max_delay)
    assert server.proxy().checkConnection('barney', 'barney-password') == 2


def test_the_block_grows_with_each_failure(server):
    server.register_client('barney', 'barney-password')
    api = api_of(server)
    api.verify_password = lambda password, stored: False
    proxy = server.proxy()
    for _ in range(api.throttle.free + 1):
        with pytest.raises(xmlrpc.client.ProtocolError):
            proxy.checkConnection('barney', 'wrong')
    blocked_for = []
    for _ in range(3):
        waited = 0.0
        while api.throttle.blocked('barney'):
            server.advance(api.throttle.base / 4)
            waited += api.throttle.base / 4
        blocked_for.append(waited)
        with pytest.raises(xmlrpc.client.ProtocolError):
            proxy.checkConnection('barney', 'wrong')
    assert blocked_for[0] < blocked_for[1] < blocked_for[2]


def test_secret_guessing_is_throttled(server):
    api = api_of(server)
    proxy = server.proxy()
    free = api.throttle.free
    calls = [{'methodName': 'registerClient',
              'params': ['guess%d' % i, 'fred', 'http://127.0.0.1:9/', 'F',
                         'f@example.com', 'pw']} for i in range(free + 50)]
    answers = proxy.system.multicall(calls)
    assert {a['faultCode'] for a in answers} == {401}
    assert api.throttle.refused == 49
    # The right secret too waits for the block to end.
    with pytest.raises(xmlrpc.client.ProtocolError):
        proxy.registerClient(SECRET, 'fred', 'http://127.0.0.1:9/', 'F',
                             'f@example.com', 'pw')
    server.advance(api.throttle.max_delay)
    assert proxy.registerClient(SECRET, 'fred', 'http://127.0.0.1:9/', 'F',
                                'f@example.com', 'pw') is True


@pytest.mark.parametrize('client_id', [
    'fred\u200b', 'fr\u200ded', 'fred\u202e', '\ufefffred', 'fred\u00a0x',
    '\uff46\uff52\uff45\uff44', 'ﬁfred'])
def test_look_alike_client_ids_are_refused(server, client_id):
    with pytest.raises(xmlrpc.client.Fault) as info:
        server.proxy().registerClient(SECRET, client_id, 'http://127.0.0.1:9/',
                                      'F', 'f@example.com', 'pw')
    assert info.value.faultCode == -32602
    assert 'client id must not contain' in info.value.faultString
    assert server.read(lambda app: len(app.clients)) == 0


def test_plain_unicode_client_ids_are_accepted(server):
    for client_id in ('fred smith', 'frédéric', 'フレッド'):
        server.register_client(client_id, 'pw', contact_email='f@example.com')
    assert server.proxy().checkConnection('frédéric', 'pw') == 2


@pytest.mark.parametrize('days', [float('nan'), 1e308, float('inf'), -1.0])
def test_pack_refuses_impossible_days(server, days):
    with pytest.raises(xmlrpc.client.Fault) as info:
        server.proxy().admin.pack(SECRET, days)
    assert info.value.faultCode == 400
    assert 'days must be a number from 0 to' in info.value.faultString


def test_the_database_is_private(tmp_path):
    import os
    import stat
    data = tmp_path / 'var'
    ServerFixture(data=str(data), secret=SECRET).start()
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(data / 'Data.fs').st_mode) == 0o600


def test_log_lines_cannot_be_forged_or_huge(server):
    import http.client
    from twisted.logger import formatEvent, globalLogPublisher
    lines = []

    def observe(event):
        if event.get('log_namespace') == 'linksync.xmlrpc':
            lines.append(formatEvent(event))
    names = [b'nosuch&#10;127.0.0.1 admin admin.pack ok', b'm' * 1_000_000]
    globalLogPublisher.addObserver(observe)
    try:
        for name in names:
            conn = http.client.HTTPConnection('127.0.0.1', server.port,
                                              timeout=30)
            conn.request('POST', '/RPC2', body=b'<?xml version="1.0"?>'
                         b'<methodCall><methodName>' + name +
                         b'</methodName><params/></methodCall>',
                         headers={'Content-Type': 'text/xml'})
            answer = conn.getresponse().read()
            conn.close()
            assert b'no method' in answer and len(answer) < 1000
    finally:
        globalLogPublisher.removeObserver(observe)
    assert len(lines) == 2
    assert all('\n' not in line and len(line) < 300 for line in lines)
    assert "'nosuch\\n127.0.0.1 admin admin.pack ok'" in lines[0]
    assert '(1000000 characters)' in lines[1]


def test_login_and_basic_secret_guessing_share_the_throttle(server):
    from linksync import testing
    api = api_of(server)
    login = server.base_url + '/login'
    for i in range(api.throttle.free + 1):
        answer = testing.fetch(login, form={'secret': 'guess%d' % i,
                                            'next': '/'})
        assert answer.status == 401
    # Blocked: the right secret is refused on every path, uncompared.
    refused = api.throttle.refused
    assert testing.fetch(login, form={'secret': SECRET, 'next': '/'}
                         ).status == 401
    assert testing.fetch(server.base_url + '/clients',
                         password=SECRET).status == 401
    with pytest.raises(xmlrpc.client.ProtocolError):
        server.proxy().admin.pack(SECRET, 1.0)
    assert api.throttle.refused == refused + 3
    server.advance(api.throttle.max_delay)
    assert testing.fetch(login, form={'secret': SECRET, 'next': '/'}
                         ).status == 303


def test_alerts_basic_auth_is_throttled(server):
    from linksync import testing
    server.register_client('barney', 'barney-password')
    server.run(lambda app: app.clients.get('barney').set_password(
        'barney-password'))
    api = api_of(server)
    hashed = []
    api.verify_password = lambda password, stored: hashed.append(stored) \
        or passwords.verify_password(password, stored)
    alerts = server.base_url + '/alerts/barney'
    for i in range(api.throttle.free + 5):
        assert testing.fetch(alerts, user='barney', password='x%d' % i,
                             accept=None).status == 401
    assert len(hashed) == api.throttle.free + 1
    assert testing.fetch(alerts, user='barney', password='barney-password',
                         accept=None).status == 401
    server.advance(api.throttle.max_delay)
    assert testing.fetch(alerts, user='barney', password='barney-password',
                         accept=None).status == 200


def test_an_alerts_password_is_hashed_off_the_reactor(server):
    from linksync import testing
    server.register_client('fred', 'fred-password')
    server.register_client('barney', 'barney-password')
    server.run(lambda app: app.clients.get('barney').set_password(
        'barney-password'))
    slow = SlowHash()
    threads = []
    api = api_of(server)
    api.verify_password = lambda password, stored: threads.append(
        threading.current_thread()) or slow(password, stored)
    alerts = server.base_url + '/alerts/barney'
    outcome = []

    def wrong_password():
        outcome.append(testing.fetch(alerts, user='barney', password='wrong',
                                     accept=None).status)
    attacker = threading.Thread(target=wrong_password)
    attacker.start()
    try:
        assert slow.started.wait(60)
        assert threads[0] is not server.rt.thread
        # The hash is running: the reactor answers others meanwhile.
        assert server.proxy().checkConnection('fred', 'fred-password') == 2
        assert outcome == []
    finally:
        slow.release.set()
        attacker.join(60)
    assert outcome == [401]
    # The right password is hashed in a thread too, then remembered.
    for _ in range(2):
        answer = testing.fetch(alerts, user='barney',
                               password='barney-password', accept=None)
        assert answer.status == 200 and 'Link problems of barney' in \
            answer.text
    assert len(threads) == 2
    assert server.rt.thread not in threads


def test_a_multicall_has_a_bounded_number_of_calls(server):
    from linksync.xmlrpc.resource import MAX_MULTICALL_CALLS
    proxy = server.proxy()
    call = {'methodName': 'system.listMethods', 'params': []}
    assert len(proxy.system.multicall([call] * MAX_MULTICALL_CALLS)) == \
        MAX_MULTICALL_CALLS
    with pytest.raises(xmlrpc.client.Fault) as info:
        proxy.system.multicall([call] * 30_000)
    assert info.value.faultCode == -32602
    assert 'at most %d calls (30000 given)' % MAX_MULTICALL_CALLS in \
        info.value.faultString


def test_a_multicall_answer_is_bounded(tmp_path):
    import http.client
    server = ServerFixture(data=str(tmp_path / 'var'), secret=SECRET,
                           max_answer_bytes=100_000).start()
    call = {'methodName': 'system.listMethods', 'params': []}
    body = xmlrpc.client.dumps(([call] * 200,), 'system.multicall').encode()
    conn = http.client.HTTPConnection('127.0.0.1', server.port, timeout=30)
    conn.request('POST', '/RPC2', body=body,
                 headers={'Content-Type': 'text/xml'})
    data = conn.getresponse().read()
    conn.close()
    assert len(data) <= 100_000
    [answers], _ = xmlrpc.client.loads(data)
    assert len(answers) == 200
    ran = [a for a in answers if isinstance(a, list)]
    assert 10 < len(ran) < 100
    assert all(a == ran[0] and 'system.multicall' in a[0] for a in ran)
    assert answers[:len(ran)] == ran
    passed, *rest = answers[len(ran):]
    assert passed['faultCode'] == 413
    assert passed['faultString'] == (
        'the answer of this system.multicall would pass 100000 bytes: this '
        'call ran, its answer is left out; split the calls')
    assert rest and all(a['faultString'].startswith('not run: ')
                        for a in rest)
    # A single answer too large is a fault.
    proxy = ServerFixture(data=str(tmp_path / 'small'), secret=SECRET,
                          max_answer_bytes=500).start().proxy()
    with pytest.raises(xmlrpc.client.Fault) as info:
        proxy.system.listMethods()
    assert info.value.faultCode == 413
    assert info.value.faultString == (
        'the answer is larger than 500 bytes: ask for less at once')


def test_a_huge_multicall_is_refused_before_it_is_parsed(server):
    from linksync.xmlrpc.resource import MAX_MULTICALL_CALLS
    resource = server.service.api.root.rpc
    parsed = []
    real = resource.parse

    def parse(body):
        parsed.append(len(body))
        return real(body)
    resource.parse = parse
    call = {'methodName': 'system.listMethods', 'params': []}
    with pytest.raises(xmlrpc.client.Fault) as info:
        server.proxy().system.multicall([call] * 30_000)
    assert info.value.faultCode == -32602
    assert 'at most %d calls (30000 given)' % MAX_MULTICALL_CALLS in \
        info.value.faultString
    assert parsed == []                # refused unread
    # At the cap, it is parsed and run.
    assert len(server.proxy().system.multicall(
        [call] * MAX_MULTICALL_CALLS)) == MAX_MULTICALL_CALLS
    assert len(parsed) == 1
