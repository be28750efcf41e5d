"""The data model: URLs, clients, providers, registration, conflicts."""

import pytest
import transaction
import zope.component
import zope.component.hooks
from ZODB.FileStorage import FileStorage
from ZODB.POSException import ConflictError

from linksync import states
from linksync.server.model import registration
from linksync.server.database import Database
from linksync.server.interfaces import (IClientProvider, INotifications,
                                        ISynchronization, IURLProvider)
from linksync.server.model.client import Client
from linksync.server.model.url import merge_states
from linksync.urlnorm import InvalidURL


@pytest.fixture
def database(tmp_path):
    db = Database(FileStorage(str(tmp_path / 'Data.fs')))
    yield db
    db.close()


@pytest.fixture
def session(database):
    s = database.session()
    yield s
    s.close()


def add_client(session, client_id='fred', password='pw'):
    def add(app):
        return app.clients.add(Client(client_id, 'http://cb/', 'Fred',
                                      'fred@example.com', password)).id
    return session.run(add)


def test_utilities_are_found_through_the_site(session):
    def check(app):
        assert zope.component.getUtility(IURLProvider) is app.urls
        assert zope.component.getUtility(IClientProvider) is app.clients
    session.run(check)
    # Outside a unit of work the site is unset again.
    assert zope.component.hooks.getSite() is None


def test_adapters_are_persisted_on_the_client(database, session):
    add_client(session)

    def force(app):
        sync = ISynchronization(app.clients.get('fred'))
        sync.force = True
        INotifications(app.clients.get('fred')).failed = 3
    session.run(force)
    other = database.session()
    try:
        assert other.read(lambda app: ISynchronization(
            app.clients.get('fred')).force) is True
        assert other.read(lambda app: INotifications(
            app.clients.get('fred')).failed) == 3
    finally:
        other.close()


def test_register_and_unregister_keep_both_indexes(session):
    add_client(session)
    add_client(session, 'wilma')

    def register(app):
        fred = app.clients.get('fred')
        wilma = app.clients.get('wilma')
        registration.register(fred, ['http://a.example/', 'http://b.example/'])
        registration.register(wilma, ['http://a.example/'])
    session.run(register)

    def check(app):
        a = app.urls.get('http://a.example/')
        assert a.clients == {'fred', 'wilma'}
        fred = app.clients.get('fred')
        assert sorted(u.url for u in fred.urls) == [
            'http://a.example/', 'http://b.example/']
        assert fred.url_count == 2
        assert len(app.urls) == 2
    session.read(check)

    def unregister(app, now):
        fred = app.clients.get('fred')
        removed = registration.unregister(
            fred, ['http://b.example/', 'http://unknown.example/', 'junk'],
            now)
        assert [u.url for u in removed] == ['http://b.example/']
    session.run(unregister, 1000.0)

    def check_orphan(app):
        b = app.urls.get('http://b.example/')
        assert b.clients == frozenset()
        assert b.orphaned_since == 1000.0
        assert app.clients.get('fred').url_count == 1
    session.read(check_orphan)


def test_spellings_are_kept_per_client(session):
    add_client(session)

    def register(app):
        fred = app.clients.get('fred')
        result = registration.register(
            fred, ['http://A.example/x#top', 'http://a.example/x',
                   'http://a.example/x'])
        return [(spelling, url.url) for spelling, url in result]
    assert session.run(register) == [
        ('http://A.example/x#top', 'http://a.example/x'),
        ('http://a.example/x', 'http://a.example/x')]

    def spellings(app):
        return app.clients.get('fred').spellings('http://a.example/x')
    assert session.read(spellings) == (
        'http://A.example/x#top', 'http://a.example/x')

    # Unregistering one spelling keeps the URL for the other.
    session.run(lambda app: registration.unregister(
        app.clients.get('fred'), ['http://A.example/x#top']))
    assert session.read(spellings) == ('http://a.example/x',)
    session.run(lambda app: registration.unregister(
        app.clients.get('fred'), ['http://a.example/x']))
    assert session.read(spellings) == ()
    # A spelling the client never used unregisters the whole URL.
    session.run(lambda app: registration.register(
        app.clients.get('fred'), ['http://a.example/x#one']))
    session.run(lambda app: registration.unregister(
        app.clients.get('fred'), ['HTTP://A.EXAMPLE/x']))
    assert session.read(spellings) == ()


def test_set_result_reports_changes(session):
    events = []
    from linksync.server.interfaces import IURLStateChangedEvent
    gsm = zope.component.getGlobalSiteManager()

    def subscriber(event):
        events.append((event.object.url, event.old_state, event.now))
    gsm.registerHandler(subscriber, (IURLStateChangedEvent,))
    try:
        def check(app):
            url = app.urls.add('http://a.example/')
            assert url.set_result(states.OK, '200 OK', 10.0) is True
            assert url.set_result(states.OK, '200 OK', 20.0) is False
            assert url.set_result(states.UNAVAILABLE, '404 Not Found',
                                  30.0) is True
            return (url.state, url.reason, url.last_check,
                    url.last_state_change)
        assert session.run(check) == (states.UNAVAILABLE, '404 Not Found',
                                      30.0, 30.0)
    finally:
        gsm.unregisterHandler(subscriber, (IURLStateChangedEvent,))
    assert events == [('http://a.example/', None, 10.0),
                      ('http://a.example/', states.OK, 30.0)]


def test_invalid_urls_are_refused_by_the_provider(session):
    with pytest.raises(InvalidURL):
        session.run(lambda app: app.urls.add('no scheme'))
    assert session.read(lambda app: len(app.urls)) == 0


def test_a_url_with_clients_cannot_be_removed(session):
    add_client(session)
    session.run(lambda app: registration.register(
        app.clients.get('fred'), ['http://a.example/']))
    with pytest.raises(ValueError, match='still registered by fred'):
        session.run(lambda app: app.urls.remove('http://a.example/'))


def test_removing_a_client_unregisters_its_urls(session):
    add_client(session)
    session.run(lambda app: registration.register(
        app.clients.get('fred'), ['http://a.example/']))
    session.run(lambda app: app.clients.remove('fred', 5.0))

    def check(app):
        assert 'fred' not in app.clients
        assert app.urls.get('http://a.example/').clients == frozenset()
    session.read(check)
    with pytest.raises(KeyError):
        session.run(lambda app: app.clients.add(
            Client('wilma')) and app.clients.add(Client('wilma')))


# -- concurrent writers -------------------------------------------------------

def test_checker_and_registration_on_the_same_url_do_not_conflict(database):
    """Two connections change different fields of one URL at once."""
    first, second = database.session(), database.session()
    try:
        add_client(first)
        first.run(lambda app: app.urls.add('http://a.example/'))
        # Both transactions start from the same state ...
        first.tm.begin()
        second.tm.begin()
        first_url = first.connection.root()['linksync'].urls.get(
            'http://a.example/')
        second_app = second.connection.root()['linksync']
        second_url = second_app.urls.get('http://a.example/')
        # ... one stores a check result, the other registers the URL.
        first_url.set_result(states.OK, '200 OK', 5.0)
        zope.component.hooks.setSite(second_app)
        try:
            second_app.clients.get('fred').register_urls([second_url])
        finally:
            zope.component.hooks.setSite(None)
        first.tm.commit()
        second.tm.commit()  # resolved, no ConflictError

        def check(app):
            url = app.urls.get('http://a.example/')
            return url.state, url.clients
        assert first.read(check) == (states.OK, frozenset({'fred'}))
    finally:
        first.close()
        second.close()


def test_a_url_is_stored_as_a_short_tuple(database, session):
    from linksync.server.model.url import URL
    url = URL('http://a.example/')
    assert url.__getstate__() == ('http://a.example/', ())
    url.clients = frozenset({'b', 'a'})
    url.set_result(states.OK, '200 OK', 5.0)
    assert url.__getstate__() == ('http://a.example/', ('a', 'b'), None,
                                  states.OK, '200 OK', 5.0, 5.0)
    url._v_scratch = 1                  # volatile: never stored
    url.orphaned_since = 7.0
    assert url.__getstate__()[-1] == 7.0
    copy = URL.__new__(URL)
    copy.__setstate__(url.__getstate__())
    assert {k: v for k, v in copy.__dict__.items()} == {
        'url': 'http://a.example/', 'clients': frozenset({'a', 'b'}),
        'state': states.OK, 'reason': '200 OK', 'last_check': 5.0,
        'last_state_change': 5.0, 'orphaned_since': 7.0}


def test_a_url_with_other_attributes_or_an_old_dict_state_loads(database,
                                                                  session):
    from linksync.server.model.url import URL
    url = URL('http://a.example/')
    url.note = 'kept'
    assert url.__getstate__() == {'url': 'http://a.example/',
                                  'clients': frozenset(), 'note': 'kept'}
    old = URL.__new__(URL)
    old.__setstate__({'url': 'http://b.example/', 'clients': frozenset({'c'}),
                      'state': states.OK})
    assert (old.url, old.clients, old.state, old.reason, old.next_check) == (
        'http://b.example/', frozenset({'c'}), states.OK, '', None)
    # Conflict resolution merges either form.
    merged = URL._p_resolveConflict(
        None, ('http://b.example/', ('c',)),
        ('http://b.example/', ('c', 'd')),
        {'url': 'http://b.example/', 'clients': frozenset({'c'}),
         'state': states.OK})
    assert merged['clients'] == frozenset({'c', 'd'})
    assert merged['state'] == states.OK
    # And the stored form survives a real round trip.
    session.run(lambda app: app.urls.add('http://c.example/'))
    session.run(lambda app: app.urls.get('http://c.example/').set_result(
        states.OK, 'fine', 9.0))
    database.db.cacheMinimize()
    assert session.read(lambda app: (
        app.urls.get('http://c.example/').reason,
        app.urls.get('http://c.example/').last_check)) == ('fine', 9.0)


def test_urls_in_memory_share_their_client_sets(database, session):
    from linksync.server.model.url import URL
    add_client(session, 'fred')
    session.run(lambda app: registration.register(
        app.clients.get('fred'), ['http://s.example/%d' % i for i in range(3)]))
    database.db.cacheMinimize()
    sets = session.read(lambda app: [
        app.urls.get('http://s.example/%d' % i).clients for i in range(3)])
    assert sets == [frozenset({'fred'})] * 3
    assert sets[0] is sets[1] is sets[2]
    url = URL('http://t.example/')
    url._add_client('fred')
    assert url.clients is sets[0]
    url._add_client('barney')
    url._remove_client('barney', 1.0)
    assert url.clients is sets[0]


def test_real_conflicts_are_retried_by_run(database):
    """Session.run retries a unit of work that lost a conflict."""
    first, second = database.session(), database.session()
    try:
        first.run(lambda app: app.urls.add('http://a.example/'))
        attempts = []

        def store(app, state):
            attempts.append(state)
            url = app.urls.get('http://a.example/')
            if len(attempts) == 1:
                # Another writer changes the same field meanwhile.
                second.run(lambda app2: app2.urls.get(
                    'http://a.example/').set_result(states.OK, 'OK', 1.0))
            url.set_result(state, 'reason ' + state, 2.0)
        first.run(store, states.UNAVAILABLE)
        assert len(attempts) == 2
        assert second.read(lambda app: app.urls.get(
            'http://a.example/').state) == states.UNAVAILABLE
    finally:
        first.close()
        second.close()


def test_merge_states():
    old = {'a': 1, 'clients': frozenset({'x', 'y'}), 'failed': 2}
    committed = {'a': 2, 'clients': frozenset({'x', 'y', 'z'}), 'failed': 3}
    new = {'a': 1, 'clients': frozenset({'x'}), 'failed': 4}
    merged = merge_states(old, committed, new, sets=('clients',),
                          counters=('failed',))
    assert merged == {'a': 2, 'clients': frozenset({'x', 'z'}), 'failed': 5}
    assert merge_states(old, committed, dict(new, failed=0),
                        counters=('failed',), sets=('clients',))['failed'] == 0
    with pytest.raises(ConflictError):
        merge_states(old, committed, dict(new, a=3), sets=('clients',),
                     counters=('failed',))


def test_no_password_in_clear_in_the_filestorage(tmp_path):
    path = tmp_path / 'Data.fs'
    database = Database(FileStorage(str(path)))
    session = database.session()
    add_client(session, 'fred', 'correct horse battery staple')
    assert session.read(lambda app: app.clients.get('fred').check_password(
        'correct horse battery staple'))
    session.close()
    database.close()
    data = path.read_bytes()
    assert b'fred' in data
    assert b'correct horse battery staple' not in data
    assert 'correct horse battery staple'.encode('utf-16-le') not in data


def test_a_unit_of_work_cannot_begin_inside_another_of_its_session(
        session):
    # Beginning a transaction aborts the one under way: a part calling
    # another's unit of work from inside its own (they share the server's
    # session) is refused instead, and the outer unit loses nothing.
    def inner(app):
        app.urls.add('http://inner.example/')

    def outer(app, how):
        app.urls.add('http://outer.example/')
        with pytest.raises(RuntimeError, match='under way'):
            getattr(session, how)(inner)
    for how in ('run', 'read'):
        session.run(outer, how)
    assert session.read(lambda app: sorted(app.urls.keys())) == [
        'http://outer.example/']
    # Once the outer unit ended, the session takes the next.
    session.run(inner)
    assert len(session.read(lambda app: list(app.urls.keys()))) == 2


def test_transaction_aborts_on_error(session):
    def fail(app):
        app.urls.add('http://a.example/')
        raise RuntimeError('boom')
    with pytest.raises(RuntimeError):
        session.run(fail)
    assert session.read(lambda app: len(app.urls)) == 0
    assert transaction.get() is not None


def test_state_counts_follow_every_change(session):
    add_client(session)

    def work(app):
        registration.register(app.clients.get('fred'), [
            'http://a.example/', 'http://b.example/', 'http://c.example/'])
        app.urls.get('http://a.example/').set_result(states.OK, 'OK', 1.0)
        app.urls.get('http://b.example/').set_result(states.OK, 'OK', 1.0)
        app.urls.get('http://b.example/').set_result(
            states.UNAVAILABLE, '404', 2.0)
        registration.unregister(app.clients.get('fred'),
                                ['http://c.example/'])
        app.urls.remove('http://c.example/')
    session.run(work)
    counts = session.read(lambda app: app.state_counts.counts())
    assert counts == {'ok': 1, 'unavailable': 1, 'temporary unavailable': 0,
                      'unsupported protocol': 0, 'unknown': 0}


def test_batches_of_results_are_counted_indexed_and_noted_as_one_by_one(
        session):
    # The checker notifies the state changes of a batch together (each URL
    # once: a URL is handed out again only once its result is written);
    # the counts, the index of URLs in trouble and the digests end as if
    # each change had been notified alone.
    from linksync.server.interfaces import IDigests, IProblemIndex
    from linksync.server.model import events
    add_client(session)
    urls = ['http://%s.example/' % name for name in 'abcd']

    def register(app):
        zope.component.getUtility(IDigests).enabled = True
        registration.register(app.clients.get('fred'), urls)
    session.run(register)

    def write(app, results, now):
        changes = []
        for url, state in results:
            app.urls.get(url).set_result(state, state, now, changes)
        assert len(changes) == len(results)
        events.notify_all(changes)
    session.run(write, [(urls[0], states.OK), (urls[1], states.UNAVAILABLE),
                        (urls[2], states.TEMPORARY), (urls[3], states.OK)],
                1.0)
    session.run(write, [(urls[3], states.UNAVAILABLE), (urls[2], states.OK)],
                2.0)

    def read(app):
        index = zope.component.getUtility(IProblemIndex)
        digest = zope.component.getUtility(IDigests).pending('fred')
        return (app.state_counts.counts(), index.client_counts('fred'),
                sorted(index.keys(states.UNAVAILABLE)),
                [(url, old, new) for _, url, old, new, _ in digest.changes])
    counts, problems, unavailable, noted = session.read(read)
    assert counts == {'ok': 2, 'unavailable': 2, 'temporary unavailable': 0,
                      'unsupported protocol': 0, 'unknown': 0}
    assert problems[states.UNAVAILABLE] == 2
    assert problems[states.TEMPORARY] == 0
    assert unavailable == [(states.UNAVAILABLE, urls[1]),
                           (states.UNAVAILABLE, urls[3])]
    # First checks finding a link fine are no news; the others are noted.
    assert noted == [
        (urls[1], None, states.UNAVAILABLE),
        (urls[2], None, states.TEMPORARY),
        (urls[3], states.OK, states.UNAVAILABLE),
        (urls[2], states.TEMPORARY, states.OK)]


def test_state_counts_are_built_for_an_existing_database(database, session):
    add_client(session)
    session.run(lambda app: registration.register(
        app.clients.get('fred'), ['http://a.example/', 'http://b.example/']))
    session.run(lambda app: app.urls.get('http://a.example/').set_result(
        states.OK, 'OK', 1.0))
    # A database from before the counts existed:
    session.run(lambda app: delattr(app, 'state_counts'))
    counts = session.run(lambda app: app.state_counts.counts())
    assert counts['ok'] == 1 and counts['unknown'] == 1


def test_a_batch_of_registrations_fires_every_event(session):
    # Registration notifies its events in batches (events.notify_all): every
    # URL added fires URLAdded, every registration URLRegistered, each
    # URLAdded before the URLRegistered of its URL, and plain zope.event
    # subscribers see them all too.
    import zope.event
    from linksync.server.model import events
    add_client(session)
    seen = []
    zope.event.subscribers.append(seen.append)
    try:
        session.run(lambda app: registration.register(
            app.clients.get('fred'),
            ['http://a.example/', 'http://B.example/', 'http://b.example/',
             'bad url'], now=5))
    finally:
        zope.event.subscribers.remove(seen.append)
    added = [e.object.url for e in seen if isinstance(e, events.URLAdded)]
    registered = [(e.object.url, e.client.id, e.now) for e in seen
                  if isinstance(e, events.URLRegistered)]
    assert added == ['http://a.example/', 'http://b.example/']
    assert registered == [('http://a.example/', 'fred', 5),
                          ('http://b.example/', 'fred', 5)]
    kinds = [type(e).__name__ for e in seen
             if isinstance(e, (events.URLAdded, events.URLRegistered))]
    assert kinds == ['URLAdded', 'URLAdded', 'URLRegistered',
                     'URLRegistered']

    def check(app):
        # The component handlers ran for each event.
        assert len(app.schedule) == 2
        assert app.state_counts.counts()['unknown'] == 2
        assert app.sync.track.count() == 2
        client = app.clients.get('fred')
        assert client.spellings('http://b.example/') == (
            'http://B.example/', 'http://b.example/')
    session.read(check)


def test_notify_all_is_notify_for_each_event():
    import zope.event
    from linksync.server.model import events
    calls = []
    zope.event.subscribers.append(calls.append)
    try:
        events.notify_all([])
        events.notify_all(['one', 'two'])
    finally:
        zope.event.subscribers.remove(calls.append)
    assert calls == ['one', 'two']


def test_sessions_kept_current_catch_up_with_the_others_commits(database):
    # A part that waits holds the view of its last transaction, and ZODB
    # remembers for it the id of every object committed since; catching
    # up begins a transaction on it when there is something to see.
    idle = database.session(kept_current=True)
    other = database.session()
    busy = database.session(kept_current=True)
    try:
        add_client(other, 'fred')
        assert idle.read(lambda app: sorted(app.clients.keys())) == ['fred']
        long = busy.long_transaction()
        seen = long.unit(lambda app: sorted(app.clients.keys()))
        assert seen == ['fred']
        add_client(other, 'wilma')
        app = idle.connection.root()['linksync']
        # Without a new transaction the session sees the old data...
        assert sorted(app.clients.keys()) == ['fred']
        database.catch_up()
        # ... after catching up, the new commit.
        assert sorted(app.clients.keys()) == ['fred', 'wilma']
        before = idle.tm.get()
        database.catch_up()
        assert idle.tm.get() is before      # nothing new: nothing begun
        # A long transaction keeps its view.
        assert long.unit(lambda app: sorted(app.clients.keys())) == ['fred']
        long.abort()
    finally:
        idle.close()
        other.close()
        busy.close()


def test_the_server_catches_its_parts_up_every_second(tmp_path):
    from twisted.internet import task

    from linksync import testing
    clock = task.Clock()
    server = testing.ServerFixture(data=str(tmp_path / 'var'),
                                   clock=clock).start()
    try:
        # The parts share the server's session; a commit of another session
        # (a synchronisation's, a command's) reaches it within a second.
        session = server.service.session
        assert server.service.getServiceNamed('syncer').session is session
        app = server.rt.call(session.read, lambda app: app)
        other = server.service.database.session()
        try:
            add_client(other, 'fred')
        finally:
            other.close()
        assert 'fred' not in app.clients
        clock.advance(1)
        assert 'fred' in app.clients
    finally:
        server.stop()
