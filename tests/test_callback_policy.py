"""The network policy (--allow-network) holds for the server's own calls:
client callbacks (notifier, syncer) and export agents, vetted on the
address the host resolved to, at connect time. A refusal is logged with
its reason, and nothing waiting to be sent is lost."""

import pytest
import zope.component
from twisted.logger import formatEvent, globalLogPublisher

from linksync import testing
from linksync.server import options as config
from linksync.server.exporters import XMLRPCPushAgent
from linksync.server.interfaces import (IClientProvider, INotifications,
                                        ISynchronization, IURLProvider)
from linksync.xmlrpc.proxy import CallbackProxy, make_agent

START = 1297082000.0
LOOPBACK = config.network('127.0.0.0/8')


@pytest.fixture
def warnings():
    lines = []

    def observe(event):
        if event.get('log_level') is not None and \
                event['log_level'].name in ('warn', 'error'):
            lines.append(formatEvent(event))
    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


def make_server(tmp_path, roles, **kw):
    kw.setdefault('notify_attempts', 1)
    server = testing.ServerFixture(data=str(tmp_path / 'var'), roles=roles,
                                   **kw)
    server.clock.advance(START)
    return server.start()


def reopen(server, allowed):
    """Restart the server on its data with other --allow-network ranges."""
    server.stop()
    server.settings.allow_network = allowed
    server.rt.call(server._start)


def set_state(server, url, state, reason):
    def change(app):
        zope.component.getUtility(IURLProvider).get(url).set_result(
            state, reason, server.clock.seconds())
    server.run(change)


def tick(server, seconds):
    """Let `seconds` pass; wait for the round of the agents it started."""
    server.advance(seconds)
    server.rt.call(server.service.getServiceNamed('agents').idle)


def test_the_proxy_vets_the_resolved_address():
    from linksync.server.checker.netpolicy import NetworkPolicy
    from linksync.xmlrpc.proxy import CallbackRefused
    rt = testing.reactor_thread()
    callback = testing.CallbackServer().start()
    url = 'http://localhost:%d/RPC2' % callback.port

    def call(policy):
        proxy = CallbackProxy(url, rt.reactor, agent=make_agent(
            rt.reactor, persistent=False, policy=policy), timeout=30)
        return proxy.update_many_states('fred', 'pw', [])
    # A host name is judged by the address it resolves to.
    with pytest.raises(CallbackRefused) as info:
        rt.call(call, NetworkPolicy([], advise=True))
    message = str(info.value)
    assert message.startswith(url + ' (updateManyStates): blocked by policy: ')
    assert 'is a loopback address (--allow-network ' in message
    assert '(the address of localhost)' in message
    assert callback.calls == []
    # Opened (IPv4 only: the callback listens on 127.0.0.1), the call goes
    # to an address the policy allows.
    assert rt.call(call, NetworkPolicy([LOOPBACK])) is None
    assert callback.calls == [[]]


def test_notifications_to_a_refused_callback_wait_until_it_is_opened(
        tmp_path, warnings):
    server = make_server(tmp_path, ('api', 'agents'), allow_network=[])
    callback = testing.CallbackServer('fred', 'pw').start()
    server.register_client('fred', 'pw', callback_url=callback.url)
    server.proxy().registerURLs('fred', 'pw', ['http://a.example/'])
    set_state(server, 'http://a.example/', 'unavailable', '404 Not Found')
    tick(server, 20)
    assert server.read(lambda app: app.sync.get_agent(
        'client:fred').last_error) == (
        '%s (updateManyStates): blocked by policy: 127.0.0.1 is a loopback '
        'address (--allow-network 127.0.0.1/32 opens it)' % callback.url)
    assert callback.calls == [] and callback.credentials == []
    assert any('refused to connect to 127.0.0.1:%d: blocked by policy'
               % callback.port in line for line in warnings)
    assert server.read(lambda app: INotifications(
        app.clients.get('fred')).failed) == 1
    # Opened: what was waiting is delivered.
    reopen(server, [LOOPBACK])
    tick(server, 20)
    assert callback.states == {
        'http://a.example/': ['unavailable', '404 Not Found']}


def test_an_export_agent_refused_keeps_its_changes(tmp_path):
    server = make_server(tmp_path, ('api', 'agents'), allow_network=[])
    sink = testing.CallbackServer().start()
    server.run(lambda app: app.sync.register_agent(XMLRPCPushAgent(
        'mirror', url=sink.url, method='pushChanges'), now=START))
    server.register_client('fred', 'pw')
    server.proxy().registerURLs('fred', 'pw', ['http://a.example/'])
    tick(server, 20)
    assert server.read(lambda app: app.sync.get_agent(
        'mirror').last_error) == (
        '%s (pushChanges): blocked by policy: 127.0.0.1 is a loopback '
        'address (--allow-network 127.0.0.1/32 opens it)' % sink.url)
    assert sink.pushed == []
    assert server.read(lambda app: app.sync.get_agent('mirror').failures) \
        == 1
    reopen(server, [LOOPBACK])
    tick(server, 20)
    assert [(i['object'], i['action']) for i in sink.pushed] == [
        ('registration', 'created')]


def test_a_sync_with_a_refused_callback_fails_and_changes_nothing(tmp_path):
    dummy = testing.install_xmlrpcdummy()
    server = make_server(tmp_path, ('api', 'syncer'), allow_network=[],
                         sync_tick=10 ** 9)
    proxy = server.proxy()
    proxy.registerClient(server.secret, 'fred', dummy.url, 'Fred',
                         'fred@example.com', 'pw')
    proxy.registerURLs('fred', 'pw', ['http://example.com/1',
                                      'http://example.com/2'])
    [result] = testing.sync_now(server, 'fred')
    assert result.status == 'failed'
    assert result.error.endswith('blocked by policy: 127.0.0.1 is a loopback '
                                 'address (--allow-network 127.0.0.1/32 '
                                 'opens it)')
    assert dummy.credentials == []

    def state(app):
        client = zope.component.getUtility(IClientProvider).get('fred')
        return sorted(client.url_keys()), ISynchronization(client).last_error
    urls, error = server.read(state)
    assert urls == ['http://example.com/1', 'http://example.com/2']
    assert error == result.error
    reopen(server, [LOOPBACK])
    [result] = testing.sync_now(server, 'fred')
    assert result.status == 'ok'
    assert server.read(state)[0] == ['http://example.com/1',
                                     'http://example.com/3']


def test_the_option_says_what_it_opens(capsys):
    from linksync import cli
    for command in (['serve'], ['sync'], ['agent', 'run']):
        with pytest.raises(SystemExit):
            cli.main(command + ['--help'])
        out = ' '.join(capsys.readouterr().out.split())
        assert '--allow-network CIDR' in out, command
        assert 'the calls to client callbacks and the export agents' in out


def test_an_https_callback_is_vetted_and_its_name_verified():
    import xmlrpc.client
    from twisted.internet import endpoints, ssl
    from twisted.web import client as web_client, resource, server
    from linksync.server.checker.netpolicy import NetworkPolicy
    from linksync.testing import servers as testservers
    from linksync.xmlrpc.proxy import CallbackError

    class Answer(resource.Resource):
        isLeaf = True

        def render_POST(self, request):
            return xmlrpc.client.dumps((True,), methodresponse=True).encode()
    rt = testing.reactor_thread()
    ca = testservers.make_certificate([], ca=True)
    trust = web_client.BrowserLikePolicyForHTTPS(
        trustRoot=ssl.Certificate.loadPEM(ca[1]))

    def listen(names):
        key, cert = testservers.make_certificate(names, issuer=ca)
        options = ssl.PrivateCertificate.loadPEM(key + cert).options()
        site = server.Site(Answer())
        site.noisy = False
        port = rt.call(endpoints.SSL4ServerEndpoint(
            rt.reactor, 0, options, interface='127.0.0.1').listen, site)
        testing.on_cleanup(rt.call, port.stopListening)
        return 'https://localhost:%d/RPC2' % port.getHost().port

    def call(url, policy):
        proxy = CallbackProxy(url, rt.reactor, agent=make_agent(
            rt.reactor, persistent=False, policy=policy, tls_policy=trust),
            timeout=30)
        return proxy.call('ping')
    good = listen(['localhost'])
    assert rt.call(call, good, NetworkPolicy([LOOPBACK])) is True
    with pytest.raises(CallbackError, match='blocked by policy'):
        rt.call(call, good, NetworkPolicy([], advise=True))
    # The certificate is checked against the host name of the URL.
    wrong = listen(['other.example'])
    with pytest.raises(CallbackError) as info:
        rt.call(call, wrong, NetworkPolicy([LOOPBACK]))
    assert 'blocked by policy' not in str(info.value)
