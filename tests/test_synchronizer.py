"""The Synchronizer over every pair of the shipped stores."""

import itertools
import random

import pytest

from linksync import testing
from linksync.client import LMSClient
from linksync.client.errors import ServerUnreachable
from linksync.stores import (Link, RemoteStore, StoreUnavailable,
                             Synchronizer, Unsupported)
from storekinds import Note, clock, make_store

LOCAL = ['memory', 'tracked-yaml', 'zodb', 'sqlite']
# Every pair of the local stores; the tracked store's other file formats
# (one code path, another backend each) with the SQLite store.
PAIRS = list(itertools.combinations_with_replacement(LOCAL, 2)) + [
    ('sqlite', kind) for kind in ('tracked-json', 'tracked-pickle',
                                  'tracked-shelve', 'tracked-zodb')]


def ids(pair):
    return '-'.join(pair)


@pytest.fixture(params=PAIRS, ids=ids)
def pair(request, tmp_path):
    a = make_store(request.param[0], tmp_path, name='a')
    b = make_store(request.param[1], tmp_path, name='b')
    yield a, b
    a.disconnect()
    b.disconnect()


def contents(store, data_type=Note):
    return sorted((d.record() for d in store.find(data_type)),
                  key=lambda r: r['id'])


def names(store, data_type=Note):
    return sorted(d.name for d in store.find(data_type))


def counted(*stores):
    """{store name: number of write events} as they happen."""
    counts = {s.name: 0 for s in stores}
    for s in stores:
        s.observe(lambda events, s=s: counts.__setitem__(
            s.name, counts[s.name] + len(events)))
    return counts


# -- propagation --------------------------------------------------------------

def test_every_write_reaches_the_other_store(pair):
    a, b = pair
    sync = Synchronizer([a, b])
    note = a.add(Note(name='n', text='one'))
    assert contents(b) == contents(a)
    copy = b.get(Note, note.id)
    copy.text = 'two'
    copy.save()                                  # the other way round
    assert a.get(Note, note.id).text == 'two'
    a.remove(a.get(Note, note.id))
    assert b.find(Note) == []
    assert sync.pending == []
    # Data written while no Synchronizer linked the stores:
    sync.close()
    b.add(Note(id='b-x', name='x', text='b'))
    a.add(Note(id='a-y', name='y', text='a'))
    sync = Synchronizer([a, b])
    # an add of a datum the other store has by name updates it there,
    a.add(Note(id='a-x', name='x', text='a'))
    assert [(n.id, n.text) for n in b.find(Note)] == [('b-x', 'a')]
    # an update of a datum the other store lacks adds it there,
    y = a.get(Note, 'a-y')
    y.text = 'a, changed'
    y.save()
    assert b.get(Note, 'a-y').text == 'a, changed'
    # a datum renamed is found by its old name,
    x = a.get(Note, 'a-x')
    x.name = 'x2'
    x.save()
    assert [n.id for n in b.find(Note, name='x2')] == ['b-x']
    # and a removal removes the match, found by name.
    b.remove(b.get(Note, 'b-x'))
    assert names(a) == names(b) == ['y'] and sync.pending == []


def test_no_echo(pair):
    a, b = pair
    Synchronizer([a, b])
    counts = counted(a, b)
    note = a.add(Note(name='n'))
    note.text = 'changed'
    note.save()
    a.remove(note)
    assert counts == {a.name: 3, b.name: 3}


def test_three_synchronizers_in_a_circle_come_to_rest(tmp_path):
    stores = [make_store(kind, tmp_path, name=kind) for kind in
              ('memory', 'sqlite', 'zodb')]
    for x, y in ((0, 1), (1, 2), (2, 0)):
        Synchronizer([stores[x], stores[y]])
    counts = counted(*stores)
    note = stores[0].add(Note(name='n', text='one'))
    note.text = 'two'
    note.save()
    stores[2].remove(stores[2].get(Note, note.id))
    # Each store heard each write once (the writes that went round
    # changed nothing and were not made).
    assert counts == {s.name: 3 for s in stores}
    assert all(s.find(Note) == [] for s in stores)


# -- sync() -------------------------------------------------------------------

def test_sync_makes_the_stores_agree(pair):
    a, b = pair
    a.add(Note(id='only-a', name='only a'))
    b.add(Note(id='only-b', name='only b'))
    a.add(Note(id='both', name='both', text='older'))
    b.clock.advance(10)
    b.add(Note(id='both', name='both', text='newer'))
    a.add(Note(id='a-id', name='same name', text='a is newer'))
    b.add(Note(id='b-id', name='same name', text='b'))
    a.clock.advance(20)
    note = a.get(Note, 'a-id')
    note.text = 'a is newer'
    note.description = 'touched'
    note.save()
    report = Synchronizer([a, b]).sync()
    assert report.ok
    assert report.counts() == {(a.name, 'added'): 1, (a.name, 'updated'): 1,
                               (b.name, 'added'): 1, (b.name, 'updated'): 1}
    assert names(a) == names(b) == ['both', 'only a', 'only b', 'same name']
    assert a.get(Note, 'both').text == b.get(Note, 'both').text == 'newer'
    # Matched by name: each store keeps its id.
    assert b.get(Note, 'b-id').text == a.get(Note, 'a-id').text == \
        'a is newer'
    assert repr(Synchronizer([a, b]).sync()) == '<SyncReport nothing to do>'


# -- failures -----------------------------------------------------------------

def random_writes(store, data_type, timer, steps, seed, every, name,
                  change):
    """Random adds, changes (``change(datum, step)``), removals and
    batches in `store`, named by ``name(step, i)``; `timer` moves an hour
    every `every` steps (retries come due). The ids left, in order."""
    rng = random.Random(seed)
    live = []
    for step in range(steps):
        action = rng.choice(['add', 'add', 'change', 'remove', 'batch'])
        if action == 'add' or not live:
            live.append(store.add(data_type(name=name(step))).id)
        elif action == 'change':
            datum = store.get(data_type, rng.choice(live))
            change(datum, step)
            datum.save()
        elif action == 'remove':
            victim = live.pop(rng.randrange(len(live)))
            store.remove(store.get(data_type, victim))
        else:
            names = [name(step, i) for i in range(3)]
            store.put_many([data_type(name=n) for n in names])
            live.extend(d.id for d in store.find(data_type)
                        if d.name in names)
        if step % every == 0:
            timer.advance(3600)
    return live

@pytest.mark.parametrize('after_write', [False, True],
                         ids=['fails-before', 'answer-lost'])
def test_a_store_failing_every_third_call_loses_nothing(pair, after_write):
    a, b = pair
    counter = testing.flaky(b, every=3, after_write=after_write)
    errors = []
    timer = clock()
    sync = Synchronizer([a, b], clock=timer, batch_size=4,
                        on_error=lambda op, e: errors.append(op))
    random_writes(a, Note, timer, 60, seed=7, every=7,
                  name=lambda step, i='': 'n%d-%s' % (step, i),
                  change=lambda note, step: setattr(
                      note, 'text', 'changed at %d' % step))
    assert counter['failures'] > 5 and errors
    assert sync.failing or sync.pending, 'something is still pending'
    for op in sync.failing:
        assert op.error.endswith('on purpose') and op.attempts >= 1
    # The store recovers: everything arrives, in order.
    counter['on'] = False
    timer.advance(3600)
    assert sync.pending == []
    assert contents(b) == contents(a)


def test_failures_wait_for_the_clock_or_retry(tmp_path):
    a = make_store('memory', tmp_path, name='a')
    b = make_store('memory', tmp_path, name='b')
    counter = testing.flaky(b, every=1)          # every call fails
    timer = clock()
    sync = Synchronizer([a, b], clock=timer, retry_delay=10)
    a.add(Note(id='1', name='one'))
    a.add(Note(id='2', name='two'))
    assert [op.data.name for op in sync.pending] == ['one', 'two']
    assert [op.attempts for op in sync.pending] == [1, 0]
    assert 'fails on purpose' in repr(sync.pending[0])
    timer.advance(9)
    assert sync.pending[0].attempts == 1        # not before its time
    timer.advance(1)
    assert sync.pending[0].attempts == 2        # then 20 s
    timer.advance(19)
    assert sync.pending[0].attempts == 2
    counter['on'] = False
    timer.advance(1)
    assert sync.pending == [] and names(b) == ['one', 'two']
    # Without a clock, retry() (or the next write) tries again.
    counter['on'] = True
    lazy = Synchronizer([a, make_store('memory', tmp_path, name='c')])
    c = lazy.stores[1]
    testing.flaky(c, every=1)['on'] = True
    a.add(Note(id='3', name='three'))
    assert len(lazy.pending) == 1
    for accessor in c.accessors.values():
        accessor.counter['on'] = False
    lazy.retry()
    assert lazy.pending == [] and names(c) == ['three']


def test_sync_reading_a_failing_store_writes_nothing(tmp_path):
    a = make_store('memory', tmp_path, name='a')
    b = make_store('memory', tmp_path, name='b')
    a.add(Note(id='1', name='one'))
    testing.flaky(b, every=1)
    with pytest.raises(StoreUnavailable, match='fails on purpose'):
        Synchronizer([a, b]).sync()


# -- with the linksync server -------------------------------------------------

@pytest.fixture
def lms(server):
    """A client 'fred' on the server, and its blocking client."""
    server.register_client('fred', 'secret')
    return server, LMSClient(server.url, 'fred', 'secret', retries=0)


def server_states(server, *urls):
    return {row[0]: row[1] for row in server.proxy().getURLStates(
        'fred', 'secret', list(urls))}


def set_result(server, url, state, reason):
    def store(app):
        app.urls.get(url).set_result(state, reason, server.clock.seconds())
    server.run(store)


@pytest.mark.parametrize('kind', LOCAL)
def test_links_with_the_server(kind, tmp_path, lms):
    server, client = lms
    local = make_store(kind, tmp_path, types=(Link,), name='local')
    remote = RemoteStore(client).connect()
    sync = Synchronizer([local, remote])
    local.put_many([Link(name='http://a.example/'),
                    Link(name='http://b.example/')])
    assert server_states(server, 'http://a.example/', 'http://b.example/') \
        == {'http://a.example/': 'unknown', 'http://b.example/': 'unknown'}
    # The server checks; states it pushes arrive, as updates.
    set_result(server, 'http://a.example/', 'ok', '200 OK')
    remote.received([('http://a.example/', 'ok', '200 OK')])
    assert local.get(Link, 'http://a.example/').state == 'ok'
    # A removal unregisters; a late push does not bring the link back.
    local.remove(local.get(Link, 'http://b.example/'))
    assert server_states(server, 'http://b.example/') == {}
    remote.received([('http://b.example/', 'ok', '200 OK')])
    assert names(local, Link) == ['http://a.example/']
    # sync(): what the server lacks is registered, its states come back.
    sync.close()
    local.add(Link(name='http://c.example/'))
    set_result(server, 'http://a.example/', 'unavailable', '404 Not Found')
    report = Synchronizer([local, remote]).sync()
    assert report.counts() == {(local.name, 'updated'): 1,
                               (remote.name, 'added'): 1}
    assert server_states(server, 'http://c.example/') == {
        'http://c.example/': 'unknown'}
    assert local.get(Link, 'http://a.example/').state == 'unavailable'
    with pytest.raises(Unsupported, match='cannot list the links'):
        remote.find(Link)


def registered(server, client_id='fred'):
    """The URLs the server has for the client."""
    return server.read(lambda app: sorted(
        app.clients.get(client_id).url_keys()))


@pytest.mark.parametrize('after_write', [False, True],
                         ids=['fails-before', 'answer-lost'])
@pytest.mark.parametrize('kind', LOCAL)
def test_the_server_failing_every_third_call_loses_nothing(
        kind, after_write, tmp_path, lms):
    server, client = lms
    local = make_store(kind, tmp_path, types=(Link,), name='local')
    remote = RemoteStore(client).connect()
    counter = testing.flaky(remote, every=3, after_write=after_write)
    errors = []
    timer = clock()
    sync = Synchronizer([local, remote], clock=timer, batch_size=4,
                        on_error=lambda op, e: errors.append(e))
    # The changes of descriptions are changes the server does not keep:
    # nothing to send.
    live = random_writes(
        local, Link, timer, 40, seed=11, every=5,
        name=lambda step, i='': 'http://s%d-%s.example/' % (step, i),
        change=lambda link, step: setattr(
            link, 'description', 'seen at %d' % step))
    assert counter['failures'] > 3 and errors
    assert all(isinstance(e, ServerUnreachable) and 'on purpose' in str(e)
               for e in errors)
    assert sync.pending, 'something is still pending'
    # The server recovers: it gets every change, in order.
    counter['on'] = False
    timer.advance(3600)
    assert sync.pending == []
    assert registered(server) == sorted(live) == names(local, Link)


@pytest.mark.parametrize('kind', LOCAL)
def test_states_pushed_to_a_store_failing_every_third_call_arrive(
        kind, tmp_path, lms):
    server, client = lms
    local = make_store(kind, tmp_path, types=(Link,), name='local')
    remote = RemoteStore(client).connect()
    timer = clock()
    sync = Synchronizer([local, remote], clock=timer)
    urls = ['http://s%d.example/' % i for i in range(8)]
    local.put_many([Link(name=url) for url in urls])
    counter = testing.flaky(local, every=3)
    seen = {}          # url -> the states written in the local store
    local.observe(lambda events: [seen.setdefault(e.data.name, []).append(
        e.data.state) for e in events])
    rng = random.Random(5)
    pushed = {}
    for push in range(30):
        url = rng.choice(urls)
        state, reason = rng.choice([('ok', '200 OK'),
                                    ('unavailable', '404 Not Found'),
                                    ('temporary unavailable', '503')])
        set_result(server, url, state, reason)
        # What the client's CallbackResource does with updateManyStates:
        remote.received([(url, state, reason)])
        if pushed.get(url, ['unknown'])[-1] != state:   # else no change
            pushed.setdefault(url, []).append(state)
        if push % 4 == 0:
            timer.advance(3600)
    assert counter['failures'] > 3 and sync.failing
    counter['on'] = False
    timer.advance(3600)
    assert sync.pending == []
    # Every state pushed was written, in order: none lost, none skipped.
    assert seen == pushed


def test_writes_wait_while_the_server_is_down(tmp_path, lms):
    server, client = lms
    local = make_store('tracked-yaml', tmp_path, types=(Link,))
    remote = RemoteStore(client).connect()
    timer = clock()
    sync = Synchronizer([local, remote], clock=timer, retry_delay=60)
    server.stop()
    local.add(Link(name='http://a.example/'))
    local.remove(local.add(Link(name='http://gone.example/')))
    [first, *rest] = sync.pending
    assert first.error.startswith('cannot reach http://127.0.0.1:')
    assert [op.action for op in sync.pending] == ['put', 'put', 'delete']
    server.restart()
    timer.advance(60)
    assert sync.pending == []
    assert server_states(server, 'http://a.example/',
                         'http://gone.example/') == {
        'http://a.example/': 'unknown'}
