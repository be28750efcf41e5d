"""Sync between devices over real sockets: convergence, the conflict rule,
bad messages, disconnections, and a second process."""

import json
import os
import pathlib
import select
import subprocess
import sys
import xmlrpc.client

import pytest
import yaml
from twisted.internet import task

from linksync import testing
from linksync.tracked import plain_copy, track, wire
from linksync.tracked.devicesync import SyncDevice, SyncHub
from linksync.tracked.merging import SyncError

SECRET = 'pw'


@pytest.fixture
def rt():
    return testing.reactor_thread()


class Network:
    """A hub serving `name`, and devices syncing with it."""

    def __init__(self, rt, data, hub_id='hub', name='shared'):
        self.rt = rt
        self.name = name
        self.hub_data = track(data, name, persist=False)
        self.hub = SyncHub(hub_id, secret=SECRET)
        self.hub.add(self.hub_data)
        self.port = None
        self.listen()

    def listen(self, port=0):
        self.port = self.rt.call(
            self.hub.listen, 'tcp:%d:interface=127.0.0.1' % port)
        testing.on_cleanup(self.rt.call, self.hub.stop)
        self.url = 'http://127.0.0.1:%d/' % self.port.getHost().port

    def stop(self):
        self.rt.call(self.hub.stop)

    def restart_hub(self):
        """The hub process restarts: same data, no memory of the
        devices."""
        port = self.port.getHost().port
        self.stop()
        self.hub = SyncHub(self.hub.device_id, secret=SECRET)
        self.hub.add(self.hub_data)
        self.listen(port)

    def device(self, device_id, default=None, **kw):
        data = track({} if default is None else default, self.name,
                     persist=False)
        device = SyncDevice(data, self.url, device_id, secret=SECRET,
                            reactor=self.rt.reactor, **kw)
        self.sync(device)
        return device

    def sync(self, device):
        self.rt.call(device.sync)

    def proxy(self):
        return xmlrpc.client.ServerProxy(self.url)


INITIAL = {'x': 0, 'tags': {'t0'}, 'items': [1], 'cfg': {'a': 1},
           'gone': 'soon'}


def concurrent_edits(net, ann, zoe):
    ann.tracked.x = 'ann'
    zoe.tracked.x = 'zoe'
    net.hub_data.x = 'hub'
    ann.tracked.tags.add('t1')
    zoe.tracked.tags.add('t2')
    net.hub_data.tags.discard('t0')
    ann.tracked['items'].append(2)
    net.hub_data['items'].append(3)
    ann.tracked.cfg.b = 2
    zoe.tracked.cfg.pop('a')
    net.hub_data.cfg.a = 10
    del ann.tracked['gone']
    zoe.tracked['new'] = {'deep': [1]}


#: The outcome the conflict rule gives ('zoe' > 'hub' > 'ann').
MERGED = {'x': 'zoe', 'tags': {'t1', 't2'}, 'items': [1, 3],
          'cfg': {'b': 2}, 'new': {'deep': [1]}}


@pytest.mark.parametrize('order', [('ann', 'zoe'), ('zoe', 'ann')])
def test_concurrent_edits_converge_by_the_rule_whatever_the_order(rt, order):
    net = Network(rt, INITIAL)
    devices = {'ann': net.device('ann'), 'zoe': net.device('zoe')}
    assert devices['ann'].tracked == devices['zoe'].tracked == INITIAL
    concurrent_edits(net, devices['ann'], devices['zoe'])
    for device_id in order + order:
        net.sync(devices[device_id])
    assert net.hub_data == MERGED
    assert devices['ann'].tracked == devices['zoe'].tracked == MERGED


def test_a_device_never_loses_to_a_change_it_had_seen(rt):
    net = Network(rt, {'x': 0})
    ann = net.device('ann')
    net.hub_data.x = 'hub'
    net.sync(ann)
    assert ann.tracked.x == 'hub'
    ann.tracked.x = 'ann'      # after seeing the hub's: ann's wins
    net.sync(ann)
    assert net.hub_data.x == 'ann'


def _edit_during_round_trip(device, edit):
    """Make `edit` happen after the hub answered, before the merge."""
    call = device.proxy.call

    def calling(*args):
        d = call(*args)

        def edited(answer):
            edit()
            device.proxy.call = call
            return answer
        d.addCallback(edited)
        return d
    device.proxy.call = calling


@pytest.mark.parametrize('device_id,winner', [('ann', 'hub'),
                                              ('zoe', 'zoe')])
def test_an_edit_during_the_round_trip_follows_the_rule(rt, device_id,
                                                        winner):
    net = Network(rt, {'x': 0, 'y': 0})
    device = net.device(device_id)
    net.hub_data.x = 'hub'
    device.tracked.y = 1   # something to send

    def edit():
        device.tracked.x = device_id
    _edit_during_round_trip(device, edit)
    net.sync(device)
    assert device.tracked.x == winner
    net.sync(device)
    assert net.hub_data == device.tracked == {'x': winner, 'y': 1}


def test_three_devices_and_lists_of_dicts(rt):
    net = Network(rt, {'rows': [{'n': 1}], 'meta': {}})
    devices = [net.device(name) for name in ('a', 'b', 'c')]
    devices[0].tracked.rows[0].n = 2
    devices[1].tracked.meta['b'] = {'seen': {1, 2}}
    devices[2].tracked.meta['c'] = (1, 'tuple')
    for _ in range(2):
        for device in devices:
            net.sync(device)
    expected = {'rows': [{'n': 2}], 'meta': {'b': {'seen': {1, 2}},
                                             'c': (1, 'tuple')}}
    assert net.hub_data == expected
    assert all(d.tracked == expected for d in devices)


def test_a_list_root(rt):
    net = Network(rt, [1, 2])
    ann = net.device('ann', default=[])
    ann.tracked.append(3)
    net.sync(ann)
    assert net.hub_data == [1, 2, 3]
    with pytest.raises(SyncError, match="holds a list as 'shared', this "
                       "device a dict"):
        net.device('bob')


def test_periodic_cycles_on_an_injected_clock(rt):
    net = Network(rt, {'n': 0})
    clock = task.Clock()
    data = track({}, 'shared', persist=False)
    device = SyncDevice(data, net.url, 'ann', secret=SECRET,
                        reactor=rt.reactor, clock=clock)
    rt.call(device.start, 10)
    testing.on_cleanup(rt.call, device.stop)
    rt.call(device.idle)
    assert data == {'n': 0}
    net.hub_data.n = 1
    rt.call(clock.advance, 9)
    rt.call(device.idle)
    assert data == {'n': 0}
    rt.call(clock.advance, 1)
    rt.call(device.idle)
    assert data == {'n': 1}


# -- catching up ----------------------------------------------------------------------

def test_catching_up_after_the_hub_was_unreachable(rt):
    net = Network(rt, {'a': 1})
    ann = net.device('ann')
    port = net.port.getHost().port
    net.stop()
    ann.tracked.b = 2
    net.hub_data.c = 3
    with pytest.raises(SyncError, match='connection refused'):
        net.sync(ann)
    assert isinstance(ann.last_error, SyncError)
    ann.tracked.d = 4
    with pytest.raises(SyncError):
        net.sync(ann)
    assert ann.tracked == {'a': 1, 'b': 2, 'd': 4}  # nothing lost
    net.listen(port)
    net.sync(ann)
    assert ann.last_error is None
    assert net.hub_data == ann.tracked == {'a': 1, 'b': 2, 'c': 3, 'd': 4}


def test_a_lost_answer_is_recovered(rt):
    net = Network(rt, {'a': 1})
    ann = net.device('ann')
    ann.tracked.b = 2
    net.hub_data.c = 3
    call = ann.proxy.call

    def lose_the_answer(*args):
        ann.proxy.call = call
        d = call(*args)
        d.addCallback(lambda answer: 1 / 0)
        return d
    ann.proxy.call = lose_the_answer
    with pytest.raises(ZeroDivisionError):
        net.sync(ann)
    assert net.hub_data == {'a': 1, 'b': 2, 'c': 3}  # the hub got it
    ann.tracked.e = 5
    net.sync(ann)
    assert net.hub_data == ann.tracked == {'a': 1, 'b': 2, 'c': 3, 'e': 5}


def test_a_hub_that_forgot_the_device_gets_its_shadow(rt):
    net = Network(rt, {'a': 1})
    ann = net.device('ann')
    net.restart_hub()
    ann.tracked.a = 'ann'
    net.hub_data.b = 'hub'
    net.sync(ann)
    assert net.hub_data == ann.tracked == {'a': 'ann', 'b': 'hub'}


def test_a_device_whose_shadow_went_wrong_resyncs(rt):
    net = Network(rt, {'a': 1, 'b': 1})
    ann = net.device('ann')
    ann.shadow['a'] = 'wrong'
    ann.tracked.b = 2
    net.sync(ann)
    assert net.hub_data == ann.tracked == {'a': 1, 'b': 2}


# -- a device that restarts ------------------------------------------------------------

def restart(net, device, **kw):
    """A new SyncDevice for the same structure, as a restarted process
    makes (its backend reloaded the structure from its file)."""
    device.tracker.remove_observer(device.recorder)
    return SyncDevice(device.tracked, net.url, device.device_id,
                      secret=SECRET, reactor=net.rt.reactor, **kw)


def test_a_restarted_device_sends_what_changed_while_it_was_down(
        rt, tmp_path):
    net = Network(rt, {'a': 1, 'tags': {'x'}})
    shadow = tmp_path / 'shared.shadow'
    ann = net.device('ann', shadow_path=str(shadow))
    assert shadow.exists()
    ann.tracked.b = 2                       # saved locally, never synced
    ann.tracked.tags.add('y')
    net.hub_data.c = 3
    ann = restart(net, ann, shadow_path=str(shadow))
    net.sync(ann)
    assert net.hub_data == ann.tracked == {'a': 1, 'tags': {'x', 'y'},
                                           'b': 2, 'c': 3}
    # Without the shadow file the device joins afresh: the hub's data
    # replaces its own.
    ann.tracked.d = 4
    ann = restart(net, ann)
    net.sync(ann)
    assert 'd' not in ann.tracked and 'd' not in net.hub_data


def test_a_restart_after_a_crash_before_the_shadow_was_saved(rt, tmp_path):
    net = Network(rt, {'a': 1})
    shadow = tmp_path / 'shared.shadow'
    ann = net.device('ann', shadow_path=str(shadow))
    older = shadow.read_bytes()
    ann.tracked.b = 2
    net.hub_data.c = 3
    net.sync(ann)
    shadow.write_bytes(older)               # the crash: the last save lost
    ann.tracked.d = 4
    ann = restart(net, ann, shadow_path=str(shadow))
    net.sync(ann)
    net.sync(ann)
    assert net.hub_data == ann.tracked == {'a': 1, 'b': 2, 'c': 3, 'd': 4}


def test_a_restarted_device_and_a_restarted_hub(rt, tmp_path):
    net = Network(rt, {'a': 1})
    shadow = tmp_path / 'shared.shadow'
    ann = net.device('ann', shadow_path=str(shadow))
    net.restart_hub()
    ann.tracked.a = 'ann'
    net.hub_data.b = 'hub'
    ann = restart(net, ann, shadow_path=str(shadow))
    net.sync(ann)
    assert net.hub_data == ann.tracked == {'a': 'ann', 'b': 'hub'}


@pytest.mark.parametrize('content, message', [
    (b'{"base": 1', 'is damaged'),
    (b'\xff\xfe', 'cannot read'),
    (b'[1, 2]', 'no base and shadow'),
    (None, 'wrong checksum'),
    ('other-device', "not of 'shared' on device 'ann'"),
])
def test_a_bad_shadow_file_is_refused_and_left_alone(rt, tmp_path, content,
                                                      message):
    net = Network(rt, {'a': 1})
    shadow = tmp_path / 'shared.shadow'
    ann = net.device('ann', shadow_path=str(shadow))
    if content is None:
        saved = wire.loads(shadow.read_text())
        saved['shadow']['a'] = 2
        content = wire.dumps(saved).encode()
    elif content == 'other-device':
        saved = wire.loads(shadow.read_text())
        saved['device'] = 'zoe'
        content = wire.dumps(saved).encode()
    shadow.write_bytes(content)
    with pytest.raises(SyncError, match=message) as raised:
        restart(net, ann, shadow_path=str(shadow))
    assert str(shadow) in str(raised.value)
    assert shadow.read_bytes() == content


# -- bad input -------------------------------------------------------------------------

def test_bad_calls_get_clear_errors_and_change_nothing(rt):
    net = Network(rt, {'a': 1})
    ann = net.device('ann')
    proxy = net.proxy()
    with pytest.raises(xmlrpc.client.ProtocolError) as e:
        proxy.tracked.sync('wrong', 'shared', 'x', '{}')
    assert e.value.errcode == 401
    bad = [
        ('nothing', 'ann', '{}', 'unknown device or version'),
        ('other', 'ann', '{"join": true}', "no structure named 'other'"),
        ('shared', 'ann', 'not json', 'not JSON'),
        ('shared', 'ann', '[1]', 'a sync message is an object'),
        ('shared', 'ann', '{"base": 1, "edits": [1]}',
         'an edit must be'),
        ('shared', 'ann', '{"base": "1", "edits": []}',
         'base must be an integer'),
        ('shared', 'ann', '{"$evil": 1}', 'unknown tagged object'),
        ('shared', 'ann', '{"base": 1, "edits": [], "shadow": 5}',
         'the shadow of ann is a int'),
        ('shared', 'hub', '{"join": true}', "is the hub's own"),
        ('shared', '', '{"join": true}', 'a device id is'),
    ]
    for name, device, message, problem in bad:
        if name == 'nothing':
            name, device = 'shared', 'stranger'
            message = '{"base": 1, "edits": []}'
            answer = wire.loads(proxy.tracked.sync(SECRET, name, device,
                                                   message))
            assert answer['status'] == 'resync'
            assert problem in answer['reason']
            continue
        with pytest.raises(xmlrpc.client.Fault) as e:
            proxy.tracked.sync(SECRET, name, device, message)
        assert problem in e.value.faultString, (message, e.value)
    # Edits that do not fit the hub's shadow: resync, nothing merged.
    edits = wire.dumps({'base': ann.base, 'checksum': 'x', 'edits': [
        ('change', ['a'], (99, 100))]})
    answer = wire.loads(proxy.tracked.sync(SECRET, 'shared', 'ann', edits))
    assert answer['status'] == 'resync'
    assert net.hub_data == {'a': 1}
    # The device syncs on as if nothing happened.
    ann.tracked.a = 2
    net.sync(ann)
    assert net.hub_data == {'a': 2}


def test_a_hub_answer_that_is_not_a_sync_message(rt):
    server = testing.ServerFixture().start()  # any XML-RPC server
    data = track({}, 'shared', persist=False)
    device = SyncDevice(data, server.url, 'ann', reactor=rt.reactor)
    with pytest.raises(SyncError, match="no method 'tracked.sync'"):
        rt.call(device.sync)
    assert data == {}


def test_values_that_cannot_travel(rt):
    net = Network(rt, {'a': 1})
    ann = net.device('ann')
    ann.tracked.obj = object()
    with pytest.raises(wire.WireError, match='cannot send a value of type '
                       'object'):
        net.sync(ann)
    del ann.tracked.obj
    ann.tracked.ok = True
    net.sync(ann)
    assert net.hub_data == {'a': 1, 'ok': True}


# -- two processes ---------------------------------------------------------------------

class DeviceProcess:
    """tests/tracked_device.py in a process of its own."""

    def __init__(self, cwd, url, name, device_id):
        cwd.mkdir()
        self.cwd = cwd
        script = pathlib.Path(__file__).with_name('tracked_device.py')
        self.proc = subprocess.Popen(
            [sys.executable, str(script), url, name, device_id, SECRET],
            cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        testing.on_cleanup(self.close)

    def __call__(self, op, **kw):
        self.proc.stdin.write(json.dumps(dict(op=op, **kw)) + '\n')
        self.proc.stdin.flush()
        # A safety net against a hung child, not a timed assertion.
        ready, _, _ = select.select([self.proc.stdout], [], [], 120)
        assert ready, 'the device process does not answer'
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read()
        return json.loads(line)

    def ok(self, op, **kw):
        reply = self(op, **kw)
        assert reply['ok'], reply
        return reply['result']

    def data(self):
        return wire.decode(self.ok('dump'))

    def close(self):
        if not self.proc.stdin.closed:
            self.proc.stdin.close()  # the device ends at the end of input
        self.proc.wait(60)
        self.proc.stdout.close()
        self.proc.stderr.close()


def test_two_processes_with_concurrent_edits(rt, tmp_path):
    net = Network(rt, {'todo': ['plan'], 'done': set(), 'owner': 'hub'})
    child = DeviceProcess(tmp_path / 'zoe', net.url, 'shared', 'zoe')
    child.ok('sync')
    assert child.data() == net.hub_data

    # Both change the structure before syncing, one key on both sides.
    net.hub_data.owner = 'hub again'
    net.hub_data.done.add('plan')
    net.hub_data.todo.append('review')
    child.ok('do', code="data['owner'] = 'zoe'\n"
                        "data['done'].add('coffee')\n"
                        "data['notes'] = {'k': [1, 2]}")
    child.ok('sync')
    expected = {'todo': ['plan', 'review'], 'done': {'plan', 'coffee'},
                'owner': 'zoe', 'notes': {'k': [1, 2]}}
    assert net.hub_data == expected
    assert child.data() == expected

    # The hub goes away; both go on changing; the device catches up.
    port = net.port.getHost().port
    net.stop()
    net.hub_data.todo.remove('plan')
    child.ok('do', code="data['notes']['k'].append(3)")
    reply = child('sync')
    assert not reply['ok'] and 'connection refused' in reply['error']
    net.listen(port)
    child.ok('sync')
    expected['todo'] = ['review']
    expected['notes']['k'].append(3)
    assert net.hub_data == expected
    assert child.data() == expected

    # The device saved what it synced to its own file.
    assert child.ok('quit') == 'bye'
    saved = yaml.safe_load((tmp_path / 'zoe' / 'shared.yaml').read_text())
    assert saved == plain_copy(expected)
    assert os.path.getsize(tmp_path / 'zoe' / 'shared.yaml') > 0
