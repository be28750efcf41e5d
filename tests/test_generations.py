"""A database of the versions that kept dot segments in URL keys moves its
URLs to today's keys when it opens, and serves them as before.

The old database is written the way those versions wrote it: the URLs go
in under the keys their normalisation gave (``/a/../b`` kept, a server
URL without a host accepted), and the application records no generation.
"""

import os

import pytest
from ZODB.FileStorage import FileStorage

from linksync import states, testing
from linksync.server.database import Database
from linksync.server.model import generations, registration
from linksync.server.model.client import Client

DOTTED = 'http://h.example/a/../b'          # stored by earlier versions
TODAY = 'http://h.example/b'                # its key of today
MERGED_OLD = 'http://m.example/x/./y'       # fred's spelling, stored so
MERGED = 'http://m.example/x/y'             # and wilma's, stored so too
NO_HOST = 'http:///nohost'


def write_old_database(path):
    """The database an earlier version left: two clients, a URL under a
    dotted key (checked, failing, with history and a place in the
    schedule), one under both its dotted key and its key of today, and a
    host-less one."""
    database = Database(FileStorage(path))
    session = database.session()

    def build(app):
        del app.generation      # the versions before generations had none
        app.digests.enabled = True
        fred = app.clients.add(Client('fred', 'http://127.0.0.1:9/', 'Fred',
                                      'fred@example.com', 'fred-pw'))
        wilma = app.clients.add(Client('wilma', 'http://127.0.0.1:9/',
                                       'Wilma', 'wilma@example.com',
                                       'wilma-pw'))
        registration.register_normalized(fred, {
            DOTTED: [DOTTED, 'HTTP://h.example/a/../b'],
            MERGED_OLD: [MERGED_OLD],
            NO_HOST: [NO_HOST]}, now=1000)
        registration.register_normalized(wilma, {MERGED: [MERGED]},
                                         now=1000)
        dotted = app.urls.get_normalized(DOTTED)
        dotted.set_result(states.UNAVAILABLE, '404 Not Found', 2000)
        app.history.record(DOTTED, states.UNAVAILABLE, '404 Not Found', 2000)
        app.schedule.reschedule(dotted, 5000)
        app.urls.get_normalized(MERGED_OLD).set_result(
            states.TEMPORARY, 'connection refused', 2100)
        app.urls.get_normalized(MERGED).set_result(states.OK, '200 OK', 2200)
        app.history.record(MERGED, states.OK, '200 OK', 2200)
    session.run(build)
    assert session.read(lambda app: app.generation) == 0
    session.close()
    database.close()


@pytest.fixture
def old_path(tmp_path):
    os.mkdir(tmp_path / 'var', 0o700)
    path = str(tmp_path / 'var' / 'Data.fs')
    write_old_database(path)
    return path


def open_database(path):
    database = Database(FileStorage(path))
    return database, database.session()


def test_a_url_moves_to_its_key_of_today_with_all_it_had(old_path):
    database, session = open_database(old_path)
    try:
        def read(app):
            assert app.generation == generations.GENERATION
            assert DOTTED not in set(app.urls.keys())
            url = app.urls.get_normalized(TODAY)
            assert url.clients == frozenset({'fred'})
            assert (url.state, url.reason, url.last_check,
                    url.last_state_change) == (
                states.UNAVAILABLE, '404 Not Found', 2000, 2000)
            fred = app.clients.get('fred')
            assert fred.get_url(TODAY) is url
            assert not fred.has_url(DOTTED)
            assert sorted(fred.spellings(TODAY)) == [
                'HTTP://h.example/a/../b', DOTTED]
            assert [r[:3] for r in app.history.get(TODAY).results] == [
                (2000, states.UNAVAILABLE, '404 Not Found')]
            assert app.history.get(DOTTED).results == ()
            assert app.schedule.due_at(url) == 5000
            assert len(app.schedule) == 3
            assert (states.UNAVAILABLE, TODAY) in set(
                app.problems.client_keys('fred'))
            counts = app.state_counts.counts()
            assert counts[states.UNAVAILABLE] == 1
            assert counts[states.OK] == 1
            assert len(app.urls) == 3
            # The move is no news for the daily digest.
            assert [c[1] for c in app.digests.pending('fred').changes] == [
            DOTTED, MERGED_OLD]
        session.read(read)
    finally:
        session.close()
        database.close()


def test_two_keys_of_one_url_merge_and_the_checked_one_keeps_its_results(
        old_path):
    database, session = open_database(old_path)
    try:
        def read(app):
            assert MERGED_OLD not in set(app.urls.keys())
            url = app.urls.get_normalized(MERGED)
            assert url.clients == frozenset({'fred', 'wilma'})
            assert (url.state, url.reason) == (states.OK, '200 OK')
            assert app.clients.get('fred').spellings(MERGED) == (MERGED_OLD,)
            assert app.clients.get('wilma').spellings(MERGED) == (MERGED,)
            assert [r[0] for r in app.history.get(MERGED).results] == [2200]
            assert app.state_counts.counts()[states.TEMPORARY] == 0
            assert not set(app.problems.client_keys('fred')) & {
                (states.TEMPORARY, MERGED_OLD), (states.TEMPORARY, MERGED)}
        session.read(read)
    finally:
        session.close()
        database.close()


def test_opening_again_moves_nothing_and_a_new_database_needs_no_steps(
        old_path, tmp_path):
    database, session = open_database(old_path)
    assert generations.evolve(session) == {}
    session.close()
    database.close()
    database, session = open_database(str(tmp_path / 'new.fs'))
    try:
        assert session.read(lambda app: app.generation) == \
            generations.GENERATION
        assert generations.evolve(session) == {}
    finally:
        session.close()
        database.close()


def test_a_move_interrupted_halfway_is_finished_by_the_next_start(
        old_path):
    # A server stopping between the moves and the new generation: the
    # first URL moved, the generation not yet recorded.
    database = Database(FileStorage(old_path), create=False)
    session = database.session()
    pairs = session.read(generations.outdated_keys)
    assert sorted(pairs) == [(DOTTED, TODAY), (MERGED_OLD, MERGED)]
    session.run(lambda app: generations.rename(app, DOTTED, TODAY, 3000))
    assert session.read(generations.outdated_keys) == [(MERGED_OLD, MERGED)]
    assert session.read(lambda app: app.generation) == 0
    assert generations.evolve(session, now=3000) == {
        'rekey': 1, 'schedule fields': 0, 'state counters': 0,
        'history shards': 0, 'problem shards': 0}
    assert generations.evolve(session) == {}
    session.close()
    database.close()


def test_clients_are_served_under_their_spellings_after_the_move(
        old_path, tmp_path):
    server = testing.ServerFixture(data=str(tmp_path / 'var')).start()
    try:
        fred = server.proxy()
        rows = fred.getURLStates('fred', 'fred-pw', [
            DOTTED, 'HTTP://h.example/a/../b', MERGED_OLD, NO_HOST])
        got = {row[0]: row[1:3] for row in rows}
        assert got == {
            DOTTED: [states.UNAVAILABLE, '404 Not Found'],
            'HTTP://h.example/a/../b': [states.UNAVAILABLE, '404 Not Found'],
            MERGED_OLD: [states.OK, '200 OK'],
            NO_HOST: [states.UNKNOWN, ''],
        }
        assert fred.getStatus('fred', 'fred-pw', DOTTED) == [
            DOTTED, states.UNAVAILABLE, '404 Not Found']
        assert fred.getStatus('fred', 'fred-pw', NO_HOST)[1:] == [
            states.UNKNOWN, 'not checked yet']
        # A host-less URL stored by an earlier version can be let go...
        assert fred.unregisterURLs('fred', 'fred-pw', [NO_HOST]) is True
        assert fred.getStatus('fred', 'fred-pw', NO_HOST)[1:] == [
            states.UNKNOWN, "invalid URL: no host in 'http:///nohost'"]
        # ... but not registered anew.
        assert fred.registerURLs('fred', 'fred-pw', [NO_HOST]) == []
        # One of two spellings forgotten keeps the URL, both let it go.
        assert fred.unregisterURLs('fred', 'fred-pw', [DOTTED]) is True
        assert [row[0] for row in fred.getURLStates(
            'fred', 'fred-pw', [DOTTED, TODAY])] == [DOTTED, TODAY]
        assert fred.unregisterURLs('fred', 'fred-pw', [
            'HTTP://h.example/a/../b']) is True
        assert fred.getURLStates('fred', 'fred-pw', [DOTTED, TODAY]) == []
        assert server.read(lambda app: list(
            app.clients.get('fred').url_keys())) == [MERGED]
    finally:
        server.stop()


def test_a_big_move_is_done_in_transactions_of_a_bounded_size(
        tmp_path, monkeypatch):
    path = str(tmp_path / 'big.fs')
    database = Database(FileStorage(path))
    session = database.session()

    def build(app):
        del app.generation
        fred = app.clients.add(Client('fred', 'http://127.0.0.1:9/', 'Fred',
                                      'fred@example.com', 'fred-pw'))
        registration.register_normalized(fred, {
            'http://h%d.example/a/./%d' % (i % 7, i): [] for i in range(50)},
            now=1000)
    session.run(build)
    session.close()
    database.close()
    monkeypatch.setattr(generations, 'RENAME_BATCH', 8)
    monkeypatch.setattr(generations, 'SCAN_GC_EVERY', 10)
    storage = FileStorage(path)
    before = storage.lastTransaction()
    database = Database(storage)
    session = database.session()
    try:
        commits = list(storage.iterator(before))[1:]
        # ceil(50 / 8) moves, then the generation.
        assert len(commits) == 7 + 1
        assert session.read(lambda app: sorted(app.urls.keys())) == sorted(
            'http://h%d.example/a/%d' % (i % 7, i) for i in range(50))
        assert session.read(
            lambda app: len(list(app.clients.get('fred').url_keys()))) == 50
    finally:
        session.close()
        database.close()


def test_a_read_only_database_is_served_as_it_is(old_path):
    database = Database(FileStorage(old_path, read_only=True))
    session = database.session()
    try:
        assert session.read(lambda app: (
            app.generation, app.urls.get_normalized(DOTTED).state)) == (
                0, states.UNAVAILABLE)
    finally:
        session.close()
        database.close()


def test_a_dotted_spelling_registered_after_the_move_lands_on_todays_key(
        old_path):
    database, session = open_database(old_path)
    try:
        def register(app):
            client = app.clients.get('wilma')
            registration.register(client, [DOTTED], now=4000)
            return sorted(client.url_keys())
        assert session.run(register) == [TODAY, MERGED]
    finally:
        session.close()
        database.close()


def test_failures_and_awaited_confirmations_move_onto_their_urls(
        tmp_path, monkeypatch):
    """Earlier versions kept a URL's temporary failures in a row and the
    failing state awaiting its confirmation in trees of the schedule; they
    move onto the URLs, in bounded transactions, and the trees go."""
    from BTrees.OOBTree import OOBTree
    path = str(tmp_path / 'fields.fs')
    database = Database(FileStorage(path))
    session = database.session()
    flaky, failing, dotted = ('http://a.example/flaky', 'http://b.example/ok',
                              'http://c.example/x/../t')
    others = ['http://d.example/%d' % i for i in range(5)]

    def build(app):
        del app.generation
        fred = app.clients.add(Client('fred', 'http://127.0.0.1:9/', 'Fred',
                                      'fred@example.com', 'fred-pw'))
        registration.register_normalized(
            fred, {u: [u] for u in [flaky, failing, dotted] + others},
            now=1000)
        for url in [flaky, dotted] + others:
            app.urls.get_normalized(url).set_result(
                states.TEMPORARY, 'connection refused', 2000)
        app.urls.get_normalized(failing).set_result(states.OK, '200', 2000)
        # As those versions kept them (one entry of a URL removed since).
        app.schedule._failures = OOBTree(
            {flaky: 3, dotted: 2, 'http://gone.example/': 4,
             **{u: 1 for u in others}})
        app.schedule._pending = OOBTree({failing: states.UNAVAILABLE})
    session.run(build)
    session.close()
    database.close()

    monkeypatch.setattr(generations, 'MOVE_BATCH', 3)
    storage = FileStorage(path)
    before = storage.lastTransaction()
    database = Database(storage)
    session = database.session()
    try:
        # The rekey; 8 failures and 1 confirmation, 3 a transaction: 3
        # moves; the generation.
        assert len(list(storage.iterator(before))[1:]) == 1 + 3 + 1

        def look(app):
            get = app.urls.get_normalized
            return (app.generation,
                    [(get(u).failures, get(u).pending) for u in (
                        flaky, failing, 'http://c.example/t', others[0])],
                    '_failures' in app.schedule.__dict__,
                    '_pending' in app.schedule.__dict__)
        assert session.read(look) == (
            generations.GENERATION,
            [(3, None), (0, states.UNAVAILABLE), (2, None), (1, None)],
            False, False)

        # The back-off goes on from there; the confirmation publishes.
        from linksync.server.model.due import Timing
        timing = Timing(temporary=100, recheck=10**6)

        def check(app):
            get = app.urls.get_normalized
            app.schedule.record(get(flaky), states.TEMPORARY, 'refused',
                                3000, timing)
            app.schedule.record(get(failing), states.UNAVAILABLE, '404',
                                3000, timing)
            return (get(flaky).failures, get(flaky).next_check,
                    get(failing).state, get(failing).pending)
        assert session.run(check) == (4, 3000 + 100 * 2 ** 3,
                                      states.UNAVAILABLE, None)
        assert generations.evolve(session) == {}
    finally:
        session.close()
        database.close()
