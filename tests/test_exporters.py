"""The export agents: JSON lines on disk, XML-RPC to any endpoint."""

import json
import os
import xmlrpc.client

import pytest
import zope.component
from twisted.internet import task

from linksync import testing
from linksync.agents.errors import AgentError
from linksync.agents.runner import RunContext
from linksync.server.exporters import (JSONLinesAgent, JSONLinesWriter,
                                XMLRPCPushAgent)
from linksync.server.interfaces import IURLProvider

START = 1297082000.0


def writer(path, **kw):
    return JSONLinesWriter(str(path), clock=task.Clock(), retries=0, **kw)


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_appends_one_json_object_a_line(tmp_path):
    path = tmp_path / 'out.jsonl'
    w = writer(path, batch_size=2)
    assert w.iterate_over([{'n': 1}, {'n': 2}, {'n': 3}]).result == 3
    assert w.iterate_over([{'n': 4, 'text': 'é'}]).result == 1
    assert lines(path) == [{'n': 1}, {'n': 2}, {'n': 3},
                           {'n': 4, 'text': 'é'}]


def test_rotates_past_max_bytes_and_keeps_some(tmp_path):
    path = tmp_path / 'out.jsonl'
    w = writer(path, max_bytes=10, keep=2, batch_size=1)
    w.iterate_over([{'n': i} for i in range(7)])       # 9 bytes a line
    names = sorted(os.listdir(tmp_path))
    assert names == ['out.jsonl', 'out.jsonl.1', 'out.jsonl.2']
    assert lines(path) == [{'n': 6}]
    assert lines(tmp_path / 'out.jsonl.1') == [{'n': 4}, {'n': 5}]
    assert lines(tmp_path / 'out.jsonl.2') == [{'n': 2}, {'n': 3}]


def test_keep_zero_drops_the_full_file(tmp_path):
    path = tmp_path / 'out.jsonl'
    w = writer(path, max_bytes=5, keep=0, batch_size=1)
    w.iterate_over([{'n': 1}, {'n': 2}])
    assert os.listdir(tmp_path) == ['out.jsonl']
    assert lines(path) == [{'n': 2}]


def test_a_failed_write_is_an_upload_failure_and_leaves_no_partial_line(
        tmp_path):
    path = tmp_path / 'missing-directory' / 'out.jsonl'
    d = writer(path).iterate_over([{'n': 1}])
    failures = []
    d.addErrback(failures.append)
    assert 'No such file or directory' in str(failures[0].value)

    # A batch that cannot be encoded fails before anything is written.
    good = tmp_path / 'out.jsonl'
    writer(good).iterate_over([{'n': 1}])
    d = writer(good).iterate_over([{'n': object()}])
    d.addErrback(failures.append)
    assert len(failures) == 2
    assert lines(good) == [{'n': 1}]


def test_agent_options_are_checked():
    with pytest.raises(AgentError):
        JSONLinesAgent('a', file='')
    with pytest.raises(AgentError):
        JSONLinesAgent('a', file='f', max_bytes=0)
    with pytest.raises(AgentError):
        XMLRPCPushAgent('x', url='not a url')
    with pytest.raises(AgentError):
        XMLRPCPushAgent('x', url='http://h/', method='')
    agent = XMLRPCPushAgent('x', url='http://h/RPC2')
    assert agent.describe() == 'linksync.push on http://h/RPC2'


def test_the_server_runs_export_agents_on_their_interval(tmp_path):
    server = testing.ServerFixture(data=str(tmp_path / 'var'),
                                   notify_attempts=1)
    server.clock.advance(START)
    server.start()
    sink = testing.CallbackServer().start()
    path = tmp_path / 'changes.jsonl'

    def add(app):
        app.sync.register_agent(JSONLinesAgent('archive', file=str(path),
                                               update_time=60), now=START)
        app.sync.register_agent(XMLRPCPushAgent(
            'mirror', url=sink.url, method='pushChanges'), now=START)
    server.run(add)
    server.register_client('fred', 'pw')
    server.proxy().registerURLs('fred', 'pw', ['http://a.example/'])

    def check(app):
        zope.component.getUtility(IURLProvider).get(
            'http://a.example/').set_result('unavailable', '404 Not Found',
                                            START + 2)
    server.run(check)
    agents = server.service.getServiceNamed('agents')
    server.advance(15)
    server.rt.call(agents.idle)
    assert sorted((i['object'], i['action']) for i in sink.pushed) == [
        ('registration', 'created'), ('url', 'modified')]
    items = lines(path)
    assert sorted((i['object'], i['action']) for i in items) == [
        ('registration', 'created'), ('url', 'modified')]
    [url] = [i for i in items if i['object'] == 'url']
    assert url == {
        'object': 'url', 'url': 'http://a.example/', 'action': 'modified',
        'flags': ['state_changed'], 'state': 'unavailable',
        'reason': '404 Not Found', 'last_check': '2011-02-07T12:33:22Z',
        'timestamp': START + 2}

    # The mirror follows the server's 15 s, the archive its own 60 s.
    server.run(lambda app: app.urls.get('http://a.example/').set_result(
        'ok', '200 OK', START + 16))
    server.advance(15)
    server.rt.call(agents.idle)
    assert sink.pushed[-1]['state'] == 'ok' and len(lines(path)) == 2
    for _ in range(3):
        server.advance(15)
        server.rt.call(agents.idle)
    assert len(lines(path)) == 3 and lines(path)[-1]['state'] == 'ok'

    # The mirror endpoint goes down: the failure is kept and retried later.
    sink.down()
    server.run(lambda app: app.urls.get('http://a.example/').set_result(
        'unavailable', '503', START + 76))
    server.advance(15)
    server.rt.call(agents.idle)
    failures = server.read(
        lambda app: app.sync.get_agent('mirror').failures)
    assert failures == 1
    sink.up()
    server.advance(15)
    server.rt.call(agents.idle)
    assert sink.pushed[-1]['state'] == 'unavailable'
    assert server.read(lambda app: app.sync.get_agent('mirror').failures) \
        == 0


def test_run_context_shares_one_connection_pool():
    rt = testing.reactor_thread()
    context = RunContext(rt.reactor)
    assert context.http is context.http and context.clock is rt.reactor


def test_export_files_stay_inside_the_data_directory(tmp_path):
    from test_serve import Serve
    data = tmp_path / 'var'
    outside = tmp_path / 'precious.txt'
    outside.write_text('keep me\n')
    server = Serve('--data', str(data), '--secret', 'sesame').start()
    try:
        admin = server.proxy().admin
        (data / 'exits').symlink_to(tmp_path)
        (data / 'link.jsonl').symlink_to(outside)
        for name in (str(outside), '../precious.txt', 'exits/precious.txt',
                     'link.jsonl', '.', str(data) + '/../precious.txt'):
            with pytest.raises(xmlrpc.client.Fault) as caught:
                admin.agent_add('sesame', 'jsonl', 'a', {
                    'file': name, 'max_bytes': 1, 'keep': 0})
            assert 'outside the data directory' in caught.value.faultString
        # A relative name lands in the data directory; so does a path in it.
        said = admin.agent_add('sesame', 'jsonl', 'inside',
                               {'file': 'out/changes.jsonl'})
        assert os.path.join(os.path.realpath(str(data)), 'out',
                            'changes.jsonl') in said
        said = admin.agent_add('sesame', 'jsonl', 'full',
                               {'file': str(data / 'full.jsonl')})
        assert 'full.jsonl' in said
        assert outside.read_text() == 'keep me\n'
    finally:
        server.stop()
