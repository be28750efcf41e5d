"""The index of URLs in trouble follows the URL and client events."""

import pytest
import zope.component
from ZODB.MappingStorage import MappingStorage

from linksync.server import database
from linksync.server.model import registration
from linksync.server.interfaces import IClientProvider, IProblemIndex
from linksync.server.model.client import Client


@pytest.fixture
def session():
    db = database.Database(MappingStorage())
    session = db.session()
    yield session
    session.close()
    db.close()


def client(name):
    clients = zope.component.getUtility(IClientProvider)
    return clients.get(name) or clients.add(Client(name, password='pw'))


def register(app, name, urls):
    registration.register(client(name), urls, 0)


def unregister(app, name, urls):
    registration.unregister(client(name), urls, 0)


def set_state(app, url, state, reason=''):
    app.urls.get(url).set_result(state, reason, 0)


def look(app, name=None):
    index = zope.component.getUtility(IProblemIndex)
    if name is not None:
        return list(index.client_keys(name)), {
            s: n for s, n in index.client_counts(name).items() if n}
    return {state: [url for _, url in index.keys(state)]
            for state in ('unavailable', 'temporary unavailable',
                          'unsupported protocol')}


def test_urls_enter_and_leave_with_their_state(session):
    a, b = 'http://x.test/a', 'http://x.test/b'
    session.run(register, 'fred', [a, b])
    session.run(register, 'ann', [a])
    assert session.read(look, 'fred') == ([], {})
    session.run(set_state, a, 'temporary unavailable', 'timeout')
    session.run(set_state, b, 'unavailable', '404')
    assert session.read(look, 'fred') == (
        [('unavailable', b), ('temporary unavailable', a)],
        {'unavailable': 1, 'temporary unavailable': 1})
    assert session.read(look, 'ann') == (
        [('temporary unavailable', a)], {'temporary unavailable': 1})
    session.run(set_state, a, 'unavailable', '410')
    assert session.read(look, 'ann') == ([('unavailable', a)],
                                         {'unavailable': 1})
    session.run(set_state, a, 'ok', '200 OK')
    assert session.read(look, 'ann') == ([], {})
    assert session.read(look) == {'unavailable': [b],
                                  'temporary unavailable': [],
                                  'unsupported protocol': []}


def test_registrations_and_removals(session):
    a = 'http://x.test/a'
    session.run(register, 'fred', [a])
    session.run(set_state, a, 'unsupported protocol', 'blocked')
    # A URL in trouble already is in trouble for its new client too.
    session.run(register, 'ann', [a])
    assert session.read(look, 'ann')[0] == [('unsupported protocol', a)]
    # Unregistered by one client: gone for that client only.
    session.run(unregister, 'fred', [a])
    assert session.read(look, 'fred') == ([], {})
    assert session.read(look)['unsupported protocol'] == [a]
    # A client removed: nothing kept for it; its last URL orphaned and
    # removed: gone altogether.
    session.run(lambda app: app.clients.remove('ann', 0))
    assert session.read(look, 'ann') == ([], {})
    session.run(lambda app: app.urls.remove(a))
    assert session.read(look)['unsupported protocol'] == []


def test_pages_of_a_clients_problems(session):
    urls = ['http://x.test/%02d' % i for i in range(10)]
    session.run(register, 'fred', urls)
    for url in urls:
        session.run(set_state, url, 'unavailable', '404')

    def after(app, key):
        index = zope.component.getUtility(IProblemIndex)
        return [url for _, url in index.client_keys('fred', key)]
    assert session.read(after, ('unavailable', urls[6])) == urls[7:]
    assert session.read(after, None) == urls


def test_each_worker_writes_only_the_trees_of_its_own_hosts():
    from linksync.server.model.partition import Worker
    from linksync.server.model.problems import ProblemIndex
    index = ProblemIndex()
    urls = ['http://h%d.test/%d' % (n % 40, n) for n in range(200)]
    for url in urls:
        index.add(url, 'unavailable', ['fred', 'ann'])
    for worker in (Worker(1, 2), Worker(2, 2)):
        def trees(owned):
            found = set()
            for url in urls:
                if worker.owns_url(url) == owned:
                    overall, clients = index._shard(url)
                    found |= {id(overall), id(clients),
                              id(clients['fred']), id(clients['ann'])}
            return found
        assert trees(True) and not trees(True) & trees(False)
    # Queries merge the shards, in order.
    assert [url for _, url in index.keys('unavailable')] == sorted(urls)
    assert [url for _, url in index.client_keys('ann')] == sorted(urls)
    assert [url for _, url in index.client_keys(
        'ann', after=('unavailable', sorted(urls)[9]))] == sorted(urls)[10:]
    assert index.client_total('fred') == 200


def test_an_index_stored_before_the_shards_is_read_then_moved():
    from BTrees.Length import Length
    from BTrees.OOBTree import OOBTree, OOTreeSet

    from linksync.server.model.problems import ProblemIndex, _key
    index = ProblemIndex.__new__(ProblemIndex)  # as older versions stored
    index._all, index._by_client = OOTreeSet(), OOBTree()
    index._counts = OOBTree()
    old = ['http://a.test/%d' % n for n in range(5)]
    index._by_client['fred'] = OOTreeSet()
    for url in old:
        index._all.insert(_key('unavailable', url))
        index._by_client['fred'].insert(_key('unavailable', url))
    index._counts[('fred', 'unavailable')] = Length(5)
    assert [u for _, u in index.client_keys('fred')] == old
    # Changes made meanwhile count once, wherever the entry is.
    index.add('http://b.test/', 'unavailable', ['fred'])
    index.add(old[0], 'unavailable', ['fred'])
    index.remove(old[1], 'unavailable', ['fred'])
    assert index.client_total('fred') == 5
    moved = [index.move_to_shards(batch=3)]
    while moved[-1]:
        moved.append(index.move_to_shards(batch=3))
    assert index._all is None and index._by_client is None
    want = sorted(old[:1] + old[2:] + ['http://b.test/'])
    assert [u for _, u in index.client_keys('fred')] == want
    assert [u for _, u in index.keys('unavailable')] == want
    assert index.client_total('fred') == 5
