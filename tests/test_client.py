"""The client kit's clients of the server, both flavours, over real sockets."""

import threading
import xmlrpc.client

import pytest
from twisted.internet import task

from linksync import testing
from linksync.client import (BadCredentials, ClientExists, LMSClient,
                             ServerFault, ServerUnreachable,
                             TwistedLMSClient, UnexpectedAnswer, URLState)
from linksync.xmlrpc.faults import UNAVAILABLE

from test_callback import answers, response, rt  # noqa: F401 (fixtures)

E = 'http://example.com/'


class InReactor:
    """A TwistedLMSClient whose methods are called in the reactor thread,
    waiting for their Deferreds (so that tests read the same for both
    flavours)."""

    def __init__(self, client):
        self.client = client
        self.rt = testing.reactor_thread()

    def __getattr__(self, name):
        attr = getattr(self.client, name)
        if not callable(attr):
            return attr
        return lambda *args, **kw: self.rt.call(attr, *args, **kw)


@pytest.fixture(params=['blocking', 'twisted'])
def make_client(request):
    """make_client(url, client_id, password, **kw): a client of the
    flavour, retrying without waiting."""
    def make(url, client_id='fred', password='secret', **kw):
        kw.setdefault('retry_delay', 0)
        if request.param == 'blocking':
            return LMSClient(url, client_id, password, **kw)
        kw.pop('sleep', None)
        return InReactor(TwistedLMSClient(
            url, client_id, password, testing.reactor_thread().reactor,
            **kw))
    make.flavour = request.param
    return make


def test_every_method(server, make_client):
    client = make_client(server.url)
    assert client.register_client(server.secret, 'http://127.0.0.1:9/',
                                  'Fred', 'fred@example.com') is True
    assert client.check_connection() == 2
    assert client.register_urls([E + '1', E + '2', 'not a URL']) == []

    def check(app):
        app.urls.get(E + '1').set_result('ok', '200 OK', 1297082000)
    server.run(check)
    assert client.register_urls([E + '1']) == [
        URLState(E + '1', 'ok', '200 OK')]
    assert client.register_link(E + '3') is None
    assert client.register_link(E + '1') == (E + '1', 'ok', '200 OK')
    assert client.get_status(E + '1').state == 'ok'
    assert client.get_status(E + '9').reason == 'not registered by this ' \
                                                'client'
    states = client.get_url_states([E + '1', E + '2', E + '9'])
    assert [(s.url, s.state, s.last_check) for s in states] == [
        (E + '1', 'ok', 1297082000.0), (E + '2', 'unknown', None)]
    assert client.unregister_urls([E + '2', E + '9']) is True
    assert [s.url for s in client.get_url_states([E + '2'])] == []
    assert client.get_client_notifications() is True
    assert client.set_client_notifications(False) is True
    assert client.get_client_notifications() is False
    assert client.force_synchronization() is True
    # The alerts page, with a token letting the client's users in.
    assert client.get_info_frame_url().startswith(
        server.base_url + '/alerts/fred?token=')
    assert 'registerURLs' in client.list_methods()
    assert client.method_signature('checkConnection') == [
        ['int', 'string', 'string']]
    assert 'Register URLs' in client.method_help('registerURLs')
    results = client.multicall([('checkConnection', ['fred', 'secret']),
                                ('checkConnection', ['fred', 'wrong'])])
    assert results[0] == 2 and isinstance(results[1], BadCredentials)


def test_long_lists_go_in_batches(server, make_client):
    server.register_client()
    client = make_client(server.url, batch_size=2)
    sent = []
    target = client.client if make_client.flavour == 'twisted' else client
    once = target._once
    target._once = lambda call: sent.append(len(call.args[-1])) or once(call)
    urls = [E + str(i) for i in range(5)]
    assert client.register_urls(urls) == []
    assert len(client.get_url_states(urls)) == 5
    assert client.unregister_urls(urls) is True
    assert sent == [2, 2, 1] * 3


def test_clear_errors(server, make_client):
    server.register_client()
    with pytest.raises(BadCredentials, match="refused the credentials of "
                                             "client 'fred' .HTTP 401"):
        make_client(server.url, password='wrong').check_connection()
    client = make_client(server.url)
    with pytest.raises(ClientExists, match='fault 409: .*registered '
                                           'already') as caught:
        client.register_client(server.secret, 'http://127.0.0.1:9/',
                               'Fred', 'fred@example.com')
    assert caught.value.code == 409
    with pytest.raises(BadCredentials):
        make_client(server.url, 'wilma').register_client(
            'wrong secret', 'http://127.0.0.1:9/', 'W', 'w@example.com')
    with pytest.raises(ServerFault, match='fault 503: .*give the password'):
        make_client(server.url, 'wilma').register_client(
            server.secret, 'http://127.0.0.1:9/', 'W', 'w@example.com',
            generate_password=True)
    # Mistakes of the caller are caught before anything is sent.
    with pytest.raises(TypeError, match='takes a list of URLs, not str'):
        client.register_urls(E)
    with pytest.raises(TypeError, match='a URL must be a string, not 3'):
        client.get_url_states([E, 3])


def test_unreachable_after_retries(make_client):
    waited = []
    client = make_client('http://127.0.0.1:%d/RPC2' % testing.free_port(),
                         retries=2, retry_delay=0, sleep=waited.append)
    with pytest.raises(ServerUnreachable, match=r'connection refused '
                                                r'\(tried 3 times\)') as e:
        client.check_connection()
    assert e.value.refused and e.value.transient
    if make_client.flavour == 'blocking':
        assert waited == [0, 0]


def test_retries_wait_longer_each_time_until_the_server_is_back(tmp_path):
    server = testing.ServerFixture(data=str(tmp_path / 'var')).start()
    server.register_client()
    server.stop()
    waited = []

    def sleep(seconds):
        waited.append(seconds)
        if len(waited) == 2:
            server.restart()
    client = LMSClient(server.url, 'fred', 'secret', retries=3,
                       retry_delay=0.5, sleep=sleep)
    assert client.check_connection() == 2
    assert waited == [0.5, 1.0]


def test_twisted_retries_run_on_the_clock(tmp_path):
    server = testing.ServerFixture(data=str(tmp_path / 'var')).start()
    server.register_client()
    server.stop()
    rt = testing.reactor_thread()
    waiting = threading.Event()

    class Clock(task.Clock):
        def callLater(self, *args, **kw):
            waiting.set()
            return super().callLater(*args, **kw)
    clock = Clock()
    client = TwistedLMSClient(server.url, 'fred', 'secret', rt.reactor,
                              clock, retries=2, retry_delay=10)
    calls = []
    rt.call(lambda: calls.append(client.check_connection()))
    [d] = calls
    assert waiting.wait(60), 'the first attempt did not fail'
    assert not d.called                  # waiting for its second attempt
    server.restart()
    rt.call(clock.advance, 10)
    assert rt.call(lambda: d) == 2


def test_transient_http_status_is_retried(rt, answers, make_client):
    answers.code = 503
    client = make_client(answers.url, retries=1)
    with pytest.raises(ServerUnreachable, match=r'not available \(HTTP '
                                                r'503.*tried 2 times'):
        client.check_connection()
    assert len(answers.requests) == 2
    answers.code = 500
    with pytest.raises(Exception, match='HTTP status 500') as caught:
        client.check_connection()
    assert not caught.value.transient and len(answers.requests) == 3


def test_registering_a_client_is_not_sent_twice(rt, answers, make_client):
    answers.code = 503
    with pytest.raises(ServerUnreachable):
        make_client(answers.url, retries=3).register_client(
            's', 'http://127.0.0.1:9/', 'F', 'f@example.com')
    assert len(answers.requests) == 1


@pytest.mark.parametrize('body, message', [
    (response('two'), "checkConnection answered 'two', not int"),
    (b'<html>oops</html>', 'not .*XML-RPC'),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>'
     b'<methodResponse/>', 'not .*XML-RPC'),
])
def test_strange_answers(rt, answers, make_client, body, message):
    answers.body = body
    with pytest.raises(UnexpectedAnswer, match=message):
        make_client(answers.url).check_connection()


def test_time_limit(rt, answers, make_client):
    answers.hold = True
    with pytest.raises(ServerUnreachable, match='within 0.2 seconds'):
        make_client(answers.url, timeout=0.2, retries=0).check_connection()


def test_faults_are_server_faults(rt, answers, make_client):
    answers.body = response(fault=xmlrpc.client.Fault(UNAVAILABLE, 'busy'))
    with pytest.raises(ServerFault, match='fault 503: busy') as caught:
        make_client(answers.url).force_synchronization()
    assert (caught.value.code, caught.value.text) == (503, 'busy')


def test_bad_server_urls():
    with pytest.raises(ValueError, match='must be an http:// or https://'):
        LMSClient('127.0.0.1:8080', 'fred', 'secret')
    with pytest.raises(ValueError, match='must be an http:// or https://'):
        TwistedLMSClient('ftp://x/', 'fred', 'secret')
