"""The client callback proxy against real servers on 127.0.0.1 (and, at
the end, against a held Agent on a task.Clock: the timeout)."""

import gzip
import threading
import xmlrpc.client
from xmlrpc.server import SimpleXMLRPCServer

import pytest
from twisted.internet import defer, endpoints, error, task
from twisted.internet import reactor as global_reactor
from twisted.python import failure
from twisted.web import client as web_client
from twisted.web import resource, server

from linksync import testing
from linksync.xmlrpc.proxy import (CallbackConnectionError, CallbackError,
                                   CallbackFault, CallbackProxy)


@pytest.fixture
def rt():
    return testing.reactor_thread()


@pytest.fixture
def stdlib_client():
    """A client built with the standard library (HTTP/1.0, closes)."""
    srv = SimpleXMLRPCServer(('127.0.0.1', 0), logRequests=False)
    received = []
    srv.register_function(lambda i, p: ['http://a/', 'http://b/'],
                          'getAllLinks')
    srv.register_function(
        lambda i, p, rows: received.append((i, p, rows)) or True,
        'updateManyStates')
    srv.register_function(lambda i, p: {'not': 'a list'}, 'dictLinks')
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    testing.on_cleanup(srv.server_close)
    testing.on_cleanup(srv.shutdown)
    srv.url = 'http://127.0.0.1:%d/' % srv.server_address[1]
    srv.received = received
    return srv


class Answers(resource.Resource):
    """A Twisted callback server answering whatever a test sets."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.body = b''
        self.code = 200
        self.headers = {}
        self.hold = False
        self.requests = []

    def render_POST(self, request):
        self.requests.append(xmlrpc.client.loads(request.content.read()))
        if self.hold:
            return server.NOT_DONE_YET  # never answers
        request.setResponseCode(self.code)
        for name, value in self.headers.items():
            request.setHeader(name, value)
        return self.body


@pytest.fixture
def answers(rt):
    res = Answers()

    def listen():
        endpoint = endpoints.TCP4ServerEndpoint(global_reactor, 0,
                                                interface='127.0.0.1')
        site = server.Site(res)
        site.noisy = False
        return endpoint.listen(site)
    port = rt.call(listen)
    testing.on_cleanup(rt.call, port.stopListening)
    res.url = 'http://127.0.0.1:%d/RPC2' % port.getHost().port
    return res


def response(*values, fault=None):
    if fault is not None:
        return xmlrpc.client.dumps(fault, methodresponse=True).encode()
    return xmlrpc.client.dumps(values, methodresponse=True).encode()


def test_get_all_links_falls_back_to_getAllLinks(rt, stdlib_client):
    proxy = CallbackProxy(stdlib_client.url, global_reactor)
    assert rt.call(proxy.get_all_links, 'fred', 'pw') == [
        'http://a/', 'http://b/']
    # Several calls over a server that closes after each answer.
    for _ in range(3):
        rt.call(proxy.update_many_states, 'fred', 'pw',
                [['http://a/', 'ok', '200 OK']])
    assert stdlib_client.received[-1] == (
        'fred', 'pw', [['http://a/', 'ok', '200 OK']])


def test_the_id_and_password_are_sent(rt, answers):
    answers.body = response(['http://x/'])
    proxy = CallbackProxy(answers.url, global_reactor)
    rt.call(proxy.get_all_links, 'fred', 'pw')
    assert answers.requests == [(('fred', 'pw'), 'xmlrpc_getAllLinks')]


@pytest.mark.parametrize('body, message', [
    (response({'a': 1}), 'with dict, not an array of URLs'),
    (response(['http://a/', 3]), "holding 3, not only strings"),
    (b'<html>Internal error</html>', 'not a well-formed XML-RPC answer'),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><methodResponse>'
     b'<params><param><value>&a;</value></param></params></methodResponse>',
     'not a well-formed XML-RPC answer'),
])
def test_garbage_is_a_clear_error(rt, answers, body, message):
    answers.body = body
    proxy = CallbackProxy(answers.url, global_reactor)
    with pytest.raises(CallbackError, match=message):
        rt.call(proxy.get_all_links, 'fred', 'pw')


def test_faults_are_passed_on(rt, answers):
    answers.body = response(fault=xmlrpc.client.Fault(3, 'database locked'))
    proxy = CallbackProxy(answers.url, global_reactor)
    with pytest.raises(CallbackFault) as info:
        rt.call(proxy.get_all_links, 'fred', 'pw')
    assert info.value.fault.faultCode == 3
    assert 'database locked' in str(info.value)
    # Not "method not found": no fallback was tried.
    assert len(answers.requests) == 1


def test_http_errors(rt, answers):
    answers.code = 500
    answers.body = b'oops'
    proxy = CallbackProxy(answers.url, global_reactor)
    with pytest.raises(CallbackError, match='HTTP status 500'):
        rt.call(proxy.update_many_states, 'fred', 'pw', [])


def test_size_limit(rt, answers):
    answers.body = response(['http://example.com/%d' % i
                             for i in range(1000)])
    proxy = CallbackProxy(answers.url, global_reactor,
                          max_response_bytes=10_000)
    with pytest.raises(CallbackError, match='larger than 10000 bytes'):
        rt.call(proxy.get_all_links, 'fred', 'pw')


def test_gzip_answers_are_inflated_within_the_limit(rt, answers):
    links = ['http://example.com/%d' % i for i in range(1000)]
    answers.body = gzip.compress(response(links))
    answers.headers = {b'content-encoding': b'gzip'}
    proxy = CallbackProxy(answers.url, global_reactor)
    assert rt.call(proxy.get_all_links, 'fred', 'pw') == links
    # A gzip bomb stops at the limit.
    answers.body = gzip.compress(b'<?xml version="1.0"?>' + b' ' * 10**7)
    small = CallbackProxy(answers.url, global_reactor,
                          max_response_bytes=100_000)
    with pytest.raises(CallbackError, match='larger than 100000 bytes'):
        rt.call(small.get_all_links, 'fred', 'pw')


def test_gzip_answers_of_several_members(rt, answers):
    links = ['http://example.com/%d' % i for i in range(1000)]
    body = response(links)
    half = len(body) // 2
    answers.body = gzip.compress(body[:half]) + gzip.compress(body[half:])
    answers.headers = {b'content-encoding': b'gzip'}
    proxy = CallbackProxy(answers.url, global_reactor)
    assert rt.call(proxy.get_all_links, 'fred', 'pw') == links
    # The limit holds for all the members together.
    answers.body = gzip.compress(b'<?xml version="1.0"?>') + \
        gzip.compress(b' ' * 60_000) * 20
    small = CallbackProxy(answers.url, global_reactor,
                          max_response_bytes=100_000)
    with pytest.raises(CallbackError, match='larger than 100000 bytes'):
        rt.call(small.get_all_links, 'fred', 'pw')


def test_timeout(rt, answers):
    answers.hold = True
    clock_proxy = CallbackProxy(answers.url, global_reactor, timeout=0.2)
    with pytest.raises(CallbackError, match='no answer within 0.2 seconds'):
        rt.call(clock_proxy.get_all_links, 'fred', 'pw')
    # One request only: a timed-out call is not sent again.
    assert len(answers.requests) == 1


def test_unreachable(rt):
    proxy = CallbackProxy('http://127.0.0.1:%d/' % testing.free_port(),
                          global_reactor)
    with pytest.raises(CallbackError, match='connection refused'):
        rt.call(proxy.get_all_links, 'fred', 'pw')


def test_unmarshallable_arguments(rt, answers):
    proxy = CallbackProxy(answers.url, global_reactor)
    with pytest.raises(CallbackError, match='cannot call'):
        rt.call(proxy.call, 'updateManyStates', None)
    assert answers.requests == []


def test_cancelling_a_call_is_not_a_failure_of_the_client(rt, answers):
    answers.hold = True
    proxy = CallbackProxy(answers.url, global_reactor, timeout=60)
    outcome = []

    def call_and_cancel():
        d = proxy.get_all_links('fred', 'pw')
        d.addBoth(outcome.append)
        d.cancel()
    rt.call(call_and_cancel)
    [failure] = outcome
    assert failure.check(defer.CancelledError)
    # Not sent a second time either.
    assert len(answers.requests) <= 1


class _HeldAgent:
    """An Agent whose requests are never answered; cancelled, a request
    fails as a stale connection would (which alone would be sent again)."""

    def __init__(self):
        self.requests = []

    def request(self, method, url, headers, body):
        def cancel(d):
            d.errback(web_client.ResponseNeverReceived(
                [failure.Failure(error.ConnectionLost())]))
        d = defer.Deferred(cancel)
        self.requests.append(d)
        return d


def _held_call(timeout=5):
    clock = task.Clock()
    agent = _HeldAgent()
    proxy = CallbackProxy('http://client.example/', clock, agent=agent,
                          timeout=timeout)
    outcome = []
    d = proxy.call('getAllLinks', 'fred', 'pw')
    d.addBoth(outcome.append)
    return clock, agent, d, outcome


def test_the_timeout_is_on_the_injected_clock():
    clock, agent, d, outcome = _held_call(timeout=5)
    clock.advance(4.9)
    assert outcome == []
    clock.advance(0.1)
    [result] = outcome
    assert result.check(CallbackConnectionError)
    assert result.getErrorMessage() == (
        'http://client.example/ (getAllLinks): no answer within 5 seconds')
    assert not result.value.refused
    # Not sent again, though the cancelled request failed as stale; and the
    # request is over: an answer coming late has nowhere to go.
    assert len(agent.requests) == 1
    with pytest.raises(defer.AlreadyCalledError):
        agent.requests[0].callback(object())
    assert len(outcome) == 1
    assert clock.getDelayedCalls() == []


def test_a_call_cancelled_by_its_caller_is_no_timeout():
    clock, agent, d, outcome = _held_call(timeout=5)
    clock.advance(1)
    d.cancel()
    [result] = outcome
    assert result.check(defer.CancelledError)
    assert not result.check(CallbackError)
    assert len(agent.requests) == 1
    assert clock.getDelayedCalls() == []
    clock.advance(10)
    assert len(outcome) == 1
