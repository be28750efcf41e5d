"""The XML-RPC API over a real socket: every method and every bad input."""

import base64
import gzip
import http.client
import xmlrpc.client

import pytest

from linksync import states
from linksync.server.mail import SMTPMailer
from linksync.testing import ServerFixture

SECRET = 'management-secret'


@pytest.fixture
def fred(server):
    server.register_client('fred', 'fred-password')
    return server.proxy()


def post(server, body, headers=None):
    """POST raw bytes to /RPC2; returns (status, headers, body)."""
    conn = http.client.HTTPConnection('127.0.0.1', server.port, timeout=30)
    try:
        conn.request('POST', '/RPC2', body=body, headers={
            'Content-Type': 'text/xml', **(headers or {})})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


# -- registration of clients -------------------------------------------------

def test_register_client_with_password(server):
    proxy = server.proxy()
    assert proxy.registerClient(SECRET, 'fred', 'http://127.0.0.1:9/',
                                'Fred', 'fred@example.com', 'pw') is True
    assert proxy.checkConnection('fred', 'pw') == 2


def test_register_client_twice_is_a_conflict(server):
    server.register_client('fred')
    with pytest.raises(xmlrpc.client.Fault) as info:
        server.register_client('fred')
    assert info.value.faultCode == 409
    assert "'fred' is registered already" in info.value.faultString


def test_register_client_needs_the_secret(server):
    with pytest.raises(xmlrpc.client.ProtocolError) as info:
        server.proxy().registerClient('wrong', 'fred', 'http://a/', 'F',
                                      'f@example.com', 'pw')
    assert info.value.errcode == 401


@pytest.mark.parametrize('args, message', [
    (('', 'http://a/', 'F', 'f@example.com', 'pw'), 'client id'),
    ((' fred', 'http://a/', 'F', 'f@example.com', 'pw'), 'client id'),
    (('fred', 'ftp://a/', 'F', 'f@example.com', 'pw'), 'http or https'),
    (('fred', 'not a url', 'F', 'f@example.com', 'pw'), 'bad callback URL'),
    (('fred', 'http://a/', 'F', 'no-at-sign', 'pw'), 'e-mail'),
    (('fred', 'http://a/', 'F', 'f@example.com', ''), 'empty password'),
])
def test_register_client_checks_its_fields(server, args, message):
    with pytest.raises(xmlrpc.client.Fault) as info:
        server.proxy().registerClient(SECRET, *args)
    assert info.value.faultCode == -32602
    assert message in info.value.faultString
    assert server.read(lambda app: len(app.clients)) == 0


def test_register_client_without_password_and_without_mail(server):
    with pytest.raises(xmlrpc.client.Fault) as info:
        server.proxy().registerClient(SECRET, 'fred', 'http://a/', 'Fred',
                                      'fred@example.com')
    assert info.value.faultCode == 503
    assert 'give the password' in info.value.faultString
    assert server.read(lambda app: len(app.clients)) == 0


def test_generated_password_is_mailed(tmp_path, smtp_server):
    mailer = SMTPMailer('127.0.0.1', smtp_server.port,
                        'linksync@test.example')
    server = ServerFixture(data=str(tmp_path / 'var'), mailer=mailer).start()
    proxy = server.proxy()
    assert proxy.registerClient(SECRET, 'fred', 'http://a/', 'Fred Flint',
                                'fred@example.com') is True
    [message] = smtp_server.messages
    assert message['To'] == 'fred@example.com'
    assert message['From'] == 'linksync@test.example'
    body = message.get_payload(decode=True).decode()
    password = body.split('Its password is:')[1].split()[0]
    assert len(password) >= 30
    assert 'Fred Flint' in body
    assert proxy.checkConnection('fred', password) == 2


@pytest.mark.parametrize('generated', [True, False])
def test_operators_are_told_of_registrations(tmp_path, smtp_server,
                                             generated):
    mailer = SMTPMailer('127.0.0.1', smtp_server.port,
                        'linksync@test.example')
    server = ServerFixture(data=str(tmp_path / 'var'), mailer=mailer,
                           registration_cc=['ops@test.example',
                                            'noc@test.example']).start()
    args = [SECRET, 'fred', 'http://a.example/cb', 'Fred Flint',
            'fred@example.com'] + ([] if generated else ['fred-password'])
    assert server.proxy().registerClient(*args) is True
    to_ops = [m for m in smtp_server.messages if m['To'] != 'fred@example.com']
    assert sorted(m['To'] for m in to_ops) == ['noc@test.example',
                                               'ops@test.example']
    body = to_ops[0].get_payload(decode=True).decode()
    assert to_ops[0]['Subject'] == "linksync: client 'fred' registered"
    assert 'Fred Flint <fred@example.com>' in body
    assert 'http://a.example/cb' in body
    if generated:
        [to_fred] = [m for m in smtp_server.messages
                     if m['To'] == 'fred@example.com']
        password = to_fred.get_payload(decode=True).decode().split(
            'Its password is:')[1].split()[0]
    else:
        password = 'fred-password'
    # The operators' copy never holds the password.
    assert password not in body and 'not copied here' in body


def test_operators_mail_failing_keeps_the_registration(tmp_path):
    from linksync.testing import free_port
    mailer = SMTPMailer('127.0.0.1', free_port())      # nobody listens
    server = ServerFixture(data=str(tmp_path / 'var'), mailer=mailer,
                           registration_cc=['ops@test.example']).start()
    assert server.proxy().registerClient(
        SECRET, 'fred', 'http://a/', 'Fred', 'fred@example.com', 'pw') is True
    assert server.proxy().checkConnection('fred', 'pw') == 2


def test_registration_cc_takes_addresses_only():
    from linksync.server import options as config
    from linksync.server.options import mail_address
    assert mail_address('ops@example.org') == 'ops@example.org'
    for bad in ('ops', 'a b@example.org', 'ops@example.org\nBcc: x@y',
                'Ops <ops@example.org>', ''):
        with pytest.raises(ValueError):
            mail_address(bad)
    assert config.defaults(registration_cc=['a@b.example']).registration_cc \
        == ['a@b.example']


def test_failed_mail_undoes_the_registration(tmp_path):
    from linksync.testing import free_port
    # Nothing listens there: the mail cannot be delivered.
    mailer = SMTPMailer('127.0.0.1', free_port())
    server = ServerFixture(data=str(tmp_path / 'var'), mailer=mailer).start()
    with pytest.raises(xmlrpc.client.Fault) as info:
        server.proxy().registerClient(SECRET, 'fred', 'http://a/', 'Fred',
                                      'fred@example.com')
    assert info.value.faultCode == 503
    assert 'nothing was registered' in info.value.faultString
    assert server.read(lambda app: 'fred' in app.clients) is False


# -- credentials ------------------------------------------------------------------

@pytest.mark.parametrize('client_id, password', [
    ('fred', 'wrong'), ('nobody', 'fred-password'), ('fred', '')])
def test_bad_credentials_are_401(server, fred, client_id, password):
    for method in ('checkConnection', 'getClientNotifications',
                   'forceSynchronization', 'getInfoFrameURL'):
        with pytest.raises(xmlrpc.client.ProtocolError) as info:
            getattr(fred, method)(client_id, password)
        assert info.value.errcode == 401
    with pytest.raises(xmlrpc.client.ProtocolError):
        fred.registerURLs(client_id, password, ['http://a.example/'])
    # The keep-alive connection is still usable after a 401.
    assert fred.checkConnection('fred', 'fred-password') == 2
    assert server.read(lambda app: len(app.urls)) == 0


def test_password_change_invalidates_remembered_credentials(server, fred):
    assert fred.checkConnection('fred', 'fred-password') == 2
    server.run(lambda app: app.clients.get('fred').set_password('new'))
    with pytest.raises(xmlrpc.client.ProtocolError):
        fred.checkConnection('fred', 'fred-password')
    assert fred.checkConnection('fred', 'new') == 2


def test_removing_a_client_forgets_its_remembered_password(server, fred):
    assert fred.checkConnection('fred', 'fred-password') == 2
    server.run(lambda app: app.clients.remove('fred'))
    with pytest.raises(xmlrpc.client.ProtocolError):
        fred.checkConnection('fred', 'fred-password')
    # The id registered again with another password: the old one is
    # refused, though it was remembered for that id.
    server.register_client('fred', 'second-password')
    with pytest.raises(xmlrpc.client.ProtocolError):
        fred.checkConnection('fred', 'fred-password')
    assert fred.checkConnection('fred', 'second-password') == 2


def test_remembered_passwords_are_keyed_digests(server, fred):
    import hashlib
    assert fred.checkConnection('fred', 'fred-password') == 2
    api = server.service.api.api
    stored_hash, digest = api._verified['fred']
    password = b'fred-password'
    # Neither the password nor an unkeyed hash of it (which a dictionary
    # reverses) is kept; the key is this process's own.
    assert password not in digest and digest not in (
        hashlib.sha256(password).digest(), hashlib.blake2b(
            password, digest_size=32).digest())
    assert stored_hash == server.read(
        lambda app: app.clients.get('fred').password_hash)
    assert api._verified_key != type(api)(
        api.session, api.secret, api.clock)._verified_key


def test_a_registered_password_is_remembered_from_the_start(server):
    # The server hashed the password itself: the client's first call needs
    # no (slow) verification, and a wrong password is still refused.
    proxy = server.proxy()
    proxy.registerClient(SECRET, 'fred', 'http://a/', 'Fred',
                         'fred@example.com', 'fred-password')
    assert 'fred' in server.service.api.api._verified
    with pytest.raises(xmlrpc.client.ProtocolError):
        proxy.checkConnection('fred', 'other-password')
    assert proxy.checkConnection('fred', 'fred-password') == 2
    # Registering the same id again fails and remembers nothing new.
    with pytest.raises(xmlrpc.client.Fault):
        proxy.registerClient(SECRET, 'fred', 'http://a/', 'Fred',
                             'fred@example.com', 'second-password')
    with pytest.raises(xmlrpc.client.ProtocolError):
        proxy.checkConnection('fred', 'second-password')
    assert proxy.checkConnection('fred', 'fred-password') == 2


# -- URLs ------------------------------------------------------------------------------

def set_state(server, url, state, reason, now=100.0):
    server.run(lambda app: app.urls.get(url).set_result(state, reason, now))


def test_register_urls_returns_known_states(server, fred):
    assert fred.registerURLs('fred', 'fred-password', [
        'http://a.example/', 'http://b.example/']) == []
    set_state(server, 'http://a.example/', states.OK, '200 OK')
    server.register_client('wilma', 'wilma-pw')
    result = fred.registerURLs('wilma', 'wilma-pw', [
        'http://a.example/', 'HTTP://A.example/#x', 'http://b.example/',
        'http://c.example/', 'not a url', 'http://\u00e4.example/', 12])
    assert result == [
        ['http://a.example/', 'ok', '200 OK'],
        ['HTTP://A.example/#x', 'ok', '200 OK']]
    assert server.read(lambda app: len(app.urls)) == 3


def _deep_call(method, *params):
    """A methodCall whose last parameter is an array holding a valid URL,
    an array nested 10,000 deep, a struct, an int and a second URL."""
    deep = '<value><array><data>' * 10000 + '</data></array></value>' * 10000
    head = ''.join('<param><value><string>%s</string></value></param>' % p
                   for p in params)
    return ('<?xml version="1.0"?><methodCall><methodName>%s</methodName>'
            '<params>%s<param><value><array><data>'
            '<value><string>http://good.example/</string></value>%s'
            '<value><struct><member><name>u</name><value><string>'
            'http://s.example/</string></value></member></struct></value>'
            '<value><int>5</int></value><value><boolean>1</boolean></value>'
            '<value><string>http://also.example/</string></value>'
            '</data></array></value></param></params></methodCall>' % (
                method, head, deep)).encode()


def test_malformed_entries_are_skipped_one_by_one(server, fred):
    status, _, body = post(server, _deep_call(
        'registerURLs', 'fred', 'fred-password'))
    assert status == 200
    assert xmlrpc.client.loads(body) == (([],), None)
    assert server.read(lambda app: sorted(
        u.url for u in app.clients.get('fred').urls)) == [
        'http://also.example/', 'http://good.example/']
    status, _, body = post(server, _deep_call(
        'getURLStates', 'fred', 'fred-password'))
    assert [row[0] for row in xmlrpc.client.loads(body)[0][0]] == [
        'http://good.example/', 'http://also.example/']
    status, _, body = post(server, _deep_call(
        'unregisterURLs', 'fred', 'fred-password'))
    assert xmlrpc.client.loads(body) == ((True,), None)
    assert server.read(
        lambda app: app.clients.get('fred').url_count) == 0


def test_duplicates_in_one_call_are_handled_once(server, fred):
    fred.registerURLs('fred', 'fred-password', ['http://a.example/'] * 5)
    assert server.read(
        lambda app: app.clients.get('fred').url_count) == 1


def test_unregister_urls(server, fred):
    fred.registerURLs('fred', 'fred-password', [
        'http://a.example/', 'http://b.example/'])
    assert fred.unregisterURLs('fred', 'fred-password', [
        'http://a.example/', 'http://unknown.example/', 'junk']) is True
    assert server.read(lambda app: [
        u.url for u in app.clients.get('fred').urls]) == ['http://b.example/']


def test_register_link_and_get_status(server, fred):
    assert fred.registerLink('fred', 'fred-password',
                             'http://a.example/') == []
    assert fred.getStatus('fred', 'fred-password', 'http://a.example/') == [
        'http://a.example/', 'unknown', 'not checked yet']
    set_state(server, 'http://a.example/', states.UNAVAILABLE,
              '404 Not Found')
    assert fred.registerLink('fred', 'fred-password', 'http://a.example/#x') \
        == ['http://a.example/#x', 'unavailable', '404 Not Found']
    assert fred.getStatus('fred', 'fred-password', 'http://a.example/') == [
        'http://a.example/', 'unavailable', '404 Not Found']
    assert fred.getStatus('fred', 'fred-password', 'http://other/') == [
        'http://other/', 'unknown', 'not registered by this client']
    assert fred.getStatus('fred', 'fred-password', 'bad')[1] == 'unknown'
    assert fred.registerLink('fred', 'fred-password', 'bad') == []


def test_get_url_states(server, fred):
    fred.registerURLs('fred', 'fred-password', [
        'http://a.example/', 'http://b.example/'])
    set_state(server, 'http://a.example/', states.TEMPORARY,
              '503 Service Unavailable', now=1700000000.0)
    result = fred.getURLStates('fred', 'fred-password', [
        'http://a.example/', 'http://b.example/', 'http://c.example/'])
    assert result == [
        ['http://a.example/', 'temporary unavailable',
         '503 Service Unavailable', '2023-11-14T22:13:20Z'],
        ['http://b.example/', 'unknown', '', '']]


def test_notifications_switch(server, fred):
    assert fred.getClientNotifications('fred', 'fred-password') is True
    assert fred.setClientNotifications('fred', 'fred-password', False)
    assert fred.getClientNotifications('fred', 'fred-password') is False
    server.run(lambda app: setattr(
        app.clients.get('fred').notifications, 'failed', 7))
    # Some clients send booleans as 0/1.
    assert fred.setClientNotifications('fred', 'fred-password', 1)
    assert fred.getClientNotifications('fred', 'fred-password') is True
    assert server.read(
        lambda app: app.clients.get('fred').notifications.failed) == 0


def test_force_synchronization(server, fred):
    assert fred.forceSynchronization('fred', 'fred-password') is True
    assert server.read(
        lambda app: app.clients.get('fred').synchronization.force) is True


def test_info_frame_url(server, fred):
    # The link carries a token opening the page (linksync.server.web.access).
    link = fred.getInfoFrameURL('fred', 'fred-password')
    assert link.startswith(server.base_url + '/alerts/fred?token=')
    # A Host header of the caller's choosing does not make the link.
    status, _, body = post(server, xmlrpc.client.dumps(
        ('fred', 'fred-password'), 'getInfoFrameURL').encode(),
        {'Host': 'evil.example'})
    assert xmlrpc.client.loads(body)[0][0].startswith(
        server.base_url + '/alerts/fred?token=')
    server.service.api.api.public_url = 'https://links.example.org/'
    assert fred.getInfoFrameURL('fred', 'fred-password').startswith(
        'https://links.example.org/alerts/fred?token=')


# -- arguments -----------------------------------------------------------------------

@pytest.mark.parametrize('call, message', [
    (lambda p: p.checkConnection('fred'),
     'checkConnection takes 2 arguments (client_id, password), got 1'),
    (lambda p: p.registerURLs('fred', 'fred-password'),
     'registerURLs takes 3 arguments'),
    (lambda p: p.registerURLs('fred', 'fred-password', 'http://a/'),
     'registerURLs: argument 3 (urls) must be array, not string'),
    (lambda p: p.registerURLs('fred', 'fred-password', {'a': 1}),
     'must be array, not struct'),
    (lambda p: p.checkConnection(1, 'x'),
     'argument 1 (client_id) must be string, not int'),
    (lambda p: p.setClientNotifications('fred', 'fred-password', 'yes'),
     'argument 3 (enabled) must be boolean, not string'),
    (lambda p: p.registerClient(SECRET, 'a', 'http://a/', 'A', 'a@b', 'pw',
                                'extra'),
     'registerClient takes 5 to 6 arguments'),
])
def test_wrong_arguments_are_faults(server, fred, call, message):
    with pytest.raises(xmlrpc.client.Fault) as info:
        call(fred)
    assert info.value.faultCode == -32602
    assert message in info.value.faultString


def test_unknown_method(server):
    with pytest.raises(xmlrpc.client.Fault) as info:
        server.proxy().noSuchMethod()
    assert info.value.faultCode == -32601


def test_nothing_returns_none(server, fred):
    methods = fred.system.listMethods()
    for name in methods:
        for signature in fred.system.methodSignature(name):
            assert signature[0] != 'nil'


# -- introspection and multicall --------------------------------------------------

def test_introspection(server):
    proxy = server.proxy()
    names = proxy.system.listMethods()
    for name in ('checkConnection', 'registerClient', 'registerURLs',
                 'unregisterURLs', 'getClientNotifications',
                 'setClientNotifications', 'forceSynchronization',
                 'getInfoFrameURL', 'registerLink', 'getStatus',
                 'getURLStates', 'system.listMethods', 'system.methodHelp',
                 'system.methodSignature', 'system.multicall'):
        assert name in names
    assert proxy.system.methodSignature('registerURLs') == [
        ['array', 'string', 'string', 'array']]
    assert 'protocol version' in proxy.system.methodHelp('checkConnection')
    assert 'in order' in proxy.system.methodHelp('system.multicall')
    with pytest.raises(xmlrpc.client.Fault):
        proxy.system.methodHelp('nothing')


def test_multicall(server, fred):
    multi = xmlrpc.client.MultiCall(fred)
    multi.registerURLs('fred', 'fred-password', ['http://a.example/'])
    multi.getStatus('fred', 'fred-password', 'http://a.example/')
    multi.checkConnection('fred', 'wrong')
    multi.noSuchMethod()
    multi.registerURLs('fred', 'fred-password')
    results = multi()
    assert results[0] == []
    assert results[1] == ['http://a.example/', 'unknown', 'not checked yet']
    raw = results.results
    assert raw[2] == {'faultCode': 401, 'faultString':
                      'unknown client, wrong password or wrong secret'}
    assert raw[3]['faultCode'] == -32601
    assert raw[4]['faultCode'] == -32602


def test_multicall_bad_shapes(server):
    proxy = server.proxy()
    assert proxy.system.multicall([
        'not a struct', {'methodName': 'system.multicall', 'params': []},
        {'methodName': 'checkConnection'}, {'params': []},
    ]) == [
        {'faultCode': -32602, 'faultString': 'a call must be a struct with '
         'methodName (string) and params (array)'},
        {'faultCode': -32602, 'faultString':
         'system.multicall cannot be nested'},
        {'faultCode': -32602, 'faultString':
         'checkConnection takes 2 arguments (client_id, password), got 0'},
        {'faultCode': -32602, 'faultString': 'a call must be a struct with '
         'methodName (string) and params (array)'},
    ]
    with pytest.raises(xmlrpc.client.Fault):
        proxy.system.multicall('x')


# -- hostile requests ---------------------------------------------------------

def test_oversized_body_is_refused_before_parsing(tmp_path):
    server = ServerFixture(data=str(tmp_path / 'var'),
                           max_request_bytes=100_000).start()
    server.register_client('fred', 'pw')
    urls = ['http://example.com/%d' % i for i in range(5_000)]
    size = len(xmlrpc.client.dumps(('fred', 'pw', urls), 'registerURLs'))
    # Over the limit, but not so far that the server cuts the line.
    assert 100_000 < size < 400_000
    with pytest.raises(xmlrpc.client.ProtocolError) as info:
        server.proxy().registerURLs('fred', 'pw', urls)
    assert info.value.errcode == 413
    assert server.read(lambda app: len(app.urls)) == 0
    # The service is still fine.
    assert server.proxy().checkConnection('fred', 'pw') == 2


def test_oversized_chunked_body_is_refused(tmp_path):
    server = ServerFixture(data=str(tmp_path / 'var'),
                           max_request_bytes=10_000).start()
    conn = http.client.HTTPConnection('127.0.0.1', server.port, timeout=30)
    chunks = (b'<?xml version="1.0"?>' + b' ' * 1000 for _ in range(20))
    conn.request('POST', '/RPC2', body=chunks,
                 headers={'Content-Type': 'text/xml'},
                 encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 413
    conn.close()


def test_huge_declared_length_is_cut_off(tmp_path):
    server = ServerFixture(data=str(tmp_path / 'var'),
                           max_request_bytes=10_000).start()
    import socket
    with socket.create_connection(('127.0.0.1', server.port)) as sock:
        sock.sendall(b'POST /RPC2 HTTP/1.1\r\nHost: x\r\n'
                     b'Content-Length: 10000000000\r\n\r\n')
        answer = sock.recv(4096)
    assert answer.startswith(b'HTTP/1.1 413')


def test_gzip_request_is_accepted(server, fred):
    body = xmlrpc.client.dumps(('fred', 'fred-password'),
                               'checkConnection').encode()
    status, headers, data = post(server, gzip.compress(body),
                                 {'Content-Encoding': 'gzip'})
    assert status == 200
    assert xmlrpc.client.loads(data)[0] == (2,)


def test_gzip_bomb_is_refused(tmp_path):
    server = ServerFixture(data=str(tmp_path / 'var'),
                           max_request_bytes=1_000_000).start()
    bomb = gzip.compress(b'<?xml version="1.0"?><methodCall>' +
                         b' ' * 50_000_000)
    assert len(bomb) < 1_000_000
    status, _, data = post(server, bomb, {'Content-Encoding': 'gzip'})
    assert status == 413
    assert b'inflated' in data


def test_a_gzip_body_of_several_members_is_accepted(server, fred):
    body = xmlrpc.client.dumps((['http://a.example/', 'http://b.example/'],),
                               'registerURLs').encode()
    body = body.replace(b'<params>', b'<params><param><value><string>fred'
                        b'</string></value></param><param><value><string>'
                        b'fred-password</string></value></param>')
    # Three members, cut in the middle of the document, as `cat a.gz b.gz`
    # would join them; NUL bytes pad the end.
    third = len(body) // 3
    members = b''.join(gzip.compress(body[i:i + third])
                       for i in range(0, len(body), third)) + b'\0' * 8
    status, headers, data = post(server, members,
                                 {'Content-Encoding': 'gzip'})
    assert status == 200
    assert xmlrpc.client.loads(data)[0] == ([],)
    assert server.read(lambda app: sorted(app.urls.keys())) == [
        'http://a.example/', 'http://b.example/']
    # Garbage after a member is no member.
    status, headers, data = post(server, gzip.compress(body) + b'garbage',
                                 {'Content-Encoding': 'gzip'})
    assert status == 200 and b'not a well-formed XML-RPC request' in data


def test_a_gzip_bomb_of_several_members_is_refused(tmp_path):
    server = ServerFixture(data=str(tmp_path / 'var'),
                           max_request_bytes=1_000_000).start()
    # Each member inflates to under the limit, all of them to far more.
    member = gzip.compress(b' ' * 900_000)
    bomb = gzip.compress(b'<?xml version="1.0"?><methodCall>') + member * 50
    assert len(bomb) < 1_000_000
    status, _, data = post(server, bomb, {'Content-Encoding': 'gzip'})
    assert status == 413
    assert b'inflated' in data


def test_unknown_content_encoding(server):
    status, _, _ = post(server, b'xx', {'Content-Encoding': 'br'})
    assert status == 415


def test_entity_expansion_is_refused(server, fred):
    bomb = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
            b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
            b'<methodCall><methodName>checkConnection</methodName><params>'
            b'<param><value><string>&lol2;</string></value></param>'
            b'</params></methodCall>')
    status, _, data = post(server, bomb)
    assert status == 200
    with pytest.raises(xmlrpc.client.Fault) as info:
        xmlrpc.client.loads(data)
    assert info.value.faultCode == -32700
    assert 'DTD' in info.value.faultString


@pytest.mark.parametrize('body', [
    b'', b'not xml at all', b'<?xml version="1.0"?><methodCall>',
    b'<methodCall><params></params></methodCall>',
    b'<methodCall><methodName>checkConnection</methodName><params><param>'
    b'<value><int>notanint</int></value></param></params></methodCall>',
    b'\xff\xfe\x00garbage',
])
def test_malformed_requests_are_faults(server, fred, body):
    status, _, data = post(server, body)
    assert status == 200
    with pytest.raises(xmlrpc.client.Fault) as info:
        xmlrpc.client.loads(data)
    assert info.value.faultCode == -32700
    assert fred.checkConnection('fred', 'fred-password') == 2


def test_get_on_the_rpc_endpoint(server):
    conn = http.client.HTTPConnection('127.0.0.1', server.port, timeout=30)
    conn.request('GET', '/RPC2')
    response = conn.getresponse()
    assert response.status == 405
    assert response.getheader('Allow') == 'POST'


def test_post_to_root_is_xmlrpc_and_get_is_the_status_page(server, fred):
    root = xmlrpc.client.ServerProxy(server.base_url + '/')
    assert root.checkConnection('fred', 'fred-password') == 2
    conn = http.client.HTTPConnection('127.0.0.1', server.port, timeout=30)
    # The status page needs the management secret (linksync.server.web.access).
    secret = base64.b64encode(b':management-secret').decode()
    conn.request('GET', '/', headers={'Authorization': 'Basic ' + secret})
    response = conn.getresponse()
    assert response.status == 200
    assert b'linksync' in response.read()


def test_large_answers_are_gzipped(server, fred):
    urls = ['http://example.com/%d' % i for i in range(2000)]
    fred.registerURLs('fred', 'fred-password', urls)
    body = xmlrpc.client.dumps(('fred', 'fred-password', urls),
                               'getURLStates').encode()
    status, headers, data = post(server, body, {'Accept-Encoding': 'gzip'})
    assert status == 200
    assert headers['Content-Encoding'] == 'gzip'
    [rows], _ = xmlrpc.client.loads(gzip.decompress(data))
    assert len(rows) == 2000
    # The standard library client handles it transparently.
    assert len(fred.getURLStates('fred', 'fred-password', urls)) == 2000


def test_metrics(server, fred):
    fred.registerURLs('fred', 'fred-password', ['http://a.example/'])
    with pytest.raises(xmlrpc.client.ProtocolError):
        fred.checkConnection('fred', 'wrong')
    with pytest.raises(xmlrpc.client.Fault):
        fred.madeUpMethod()
    conn = http.client.HTTPConnection('127.0.0.1', server.port, timeout=30)
    conn.request('GET', '/metrics')
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader('Content-Type').startswith('text/plain')
    text = response.read().decode()
    assert 'linksync_xmlrpc_calls_total{method="registerURLs",outcome="ok"}' \
        ' 1.0' in text
    assert 'linksync_xmlrpc_calls_total{method="checkConnection",' \
        'outcome="401"} 1.0' in text
    assert 'method="<other>",outcome="fault"' in text
    assert 'madeUpMethod' not in text
    assert 'linksync_urls{state="unknown"} 1.0' in text
    assert 'linksync_clients 1.0' in text
