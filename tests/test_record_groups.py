"""RecordGroups, the track's container of record families, and the batch
forms of the event handlers that feed it."""

import persistent
import pytest
import transaction
import ZODB
from hypothesis import given, settings
from hypothesis import strategies as st
from ZODB.FileStorage import FileStorage

from linksync.track import records as track
from linksync.server.model import events
from linksync.track.mpt import SetMultiPointerTrack
from linksync.track.records import (ActionWrapper, RecordGroups, RecordRun,
                                    RecordSet, _parts)


class Thing(persistent.Persistent):
    def __init__(self, url):
        self.url = url


def reg(client, url, ts=5, flag='registered'):
    return ActionWrapper(url, flag, ts, key=('Registration', client, url),
                         context=None)


def triples(container):
    return [(r.timestamp, r.key, r.actions) for r in container]


@pytest.fixture
def small_runs(monkeypatch):
    # Runs of up to 4 records, of which those of 1 or 2 inline.
    monkeypatch.setattr(track, 'GROUP_SIZE', 4)
    monkeypatch.setattr(track, 'INLINE_SIZE', 2)


# -- families ------------------------------------------------------------------

def test_a_family_is_stored_as_runs_of_at_most_group_size(small_runs):
    groups = RecordGroups()
    items = [('u%02d' % i, 'U%d' % i) for i in range(10)]
    assert groups.add_family(7, ('Registration', 'c'), 'registered', None,
                             items) == 10
    runs = list(groups._groups.values())
    assert [type(run) for run in runs] == [RecordRun, RecordRun, tuple]
    assert [len(_parts(run)[1]) for run in runs] == [4, 4, 2]
    assert len(groups) == 10
    assert [r.key[2] for r in groups] == ['u%02d' % i for i in range(10)]
    assert [r.obj for r in groups] == ['U%d' % i for i in range(10)]


def test_small_families_stay_in_the_bucket():
    # A checker result's state change is a family of one: no persistent
    # object of its own (that would cost twice a RecordSet entry).
    groups = RecordGroups()
    for n in range(3):
        groups.add(ActionWrapper('U%d' % n, 'state_changed', 10 + n,
                                 key=('URL', 'http://%d/' % n)))
    groups.add_family(20, ('R', 'c'), 'registered', None,
                      [('u%03d' % i, i) for i in range(track.INLINE_SIZE)])
    assert all(type(v) is tuple for v in groups._groups.values())
    groups.add_family(20, ('R', 'c'), 'registered', None, [('v', 0)])
    assert [type(v) for v in groups._groups.values()][-1] is RecordRun
    assert len(groups) == 3 + track.INLINE_SIZE + 1


def test_duplicates_are_found_in_any_run(small_runs):
    groups = RecordGroups()
    groups.add_family(7, ('R', 'c'), 'registered', None,
                      [('u%02d' % i, i) for i in range(0, 20, 2)])
    # Half known, half new, spread over all runs; the known keep their
    # object (the first of duplicates wins, as in a RecordSet).
    assert groups.add_family(7, ('R', 'c'), 'registered', None,
                             [('u%02d' % i, -i) for i in range(20)]) == 10
    assert len(groups) == 20
    assert [r.obj for r in groups] == [
        i if i % 2 == 0 else -i for i in range(20)]
    assert not groups.add(ActionWrapper(0, 'registered', 7,
                                        key=('R', 'c', 'u00')))


def test_a_record_before_the_first_run_starts_it(small_runs):
    groups = RecordGroups()
    groups.add_family(1, ('R', 'c'), 'registered', None,
                      [('m', 1), ('n', 2)])
    assert groups.add(ActionWrapper(0, 'registered', 1, key=('R', 'c', 'a')))
    assert [key[-1] for key in groups._groups.keys()] == ['a']
    assert [r.key[2] for r in groups] == ['a', 'm', 'n']


def test_a_first_run_that_grows_in_front_and_splits_loses_nothing(
        monkeypatch):
    monkeypatch.setattr(track, 'GROUP_SIZE', 3)
    monkeypatch.setattr(track, 'INLINE_SIZE', 1)
    # Found by the property below: the run keyed 'c' takes a, b and d,
    # splits into [a, b] and [c, d], and the second half reuses the key.
    groups = RecordGroups()
    groups.add_family(1, ('R', 'c'), 'registered', None, [('c', 3)])
    assert groups.add_family(1, ('R', 'c'), 'registered', None,
                             [('a', 1), ('b', 2), ('d', 4)]) == 3
    assert [(r.key[2], r.obj) for r in groups] == [
        ('a', 1), ('b', 2), ('c', 3), ('d', 4)]
    assert [key[-1] for key in groups._groups.keys()] == ['a', 'c']


def test_families_differ_by_time_prefix_flags_and_context():
    groups = RecordGroups()
    client1, client2 = Thing('c1'), Thing('c2')
    client1.id, client2.id = 'c1', 'c2'
    groups.add_family(1, ('R', 'x'), 'registered', client1, [('a', 1)])
    groups.add_family(1, ('R', 'x'), 'registered', client2, [('a', 1)])
    groups.add_family(2, ('R', 'x'), 'registered', client1, [('a', 1)])
    groups.add_family(1, ('R', 'x'), 'unregistered', client1, [('a', 1)])
    groups.add_family(1, ('R', 'y'), 'registered', client1, [('a', 1)])
    assert len(groups) == 5
    contexts = [r.context for r in groups]
    assert contexts.count(client2) == 1


def test_add_family_checks_like_a_record():
    groups = RecordGroups()
    with pytest.raises(TypeError):
        groups.add_family(float('nan'), ('R',), 'registered', None,
                          [('a', 1)])
    with pytest.raises(ValueError):
        groups.add_family(1, ('R',), (), None, [('a', 1)])
    assert groups.add_family(1, ('R',), 'registered', None, []) == 0
    assert groups.is_empty()


def test_records_of_some_kinds_skip_the_other_runs():
    groups = RecordGroups()
    groups.add_family(1, ('Registration', 'c'), 'registered', None,
                      [('http://a/', 1), ('http://b/', 2)])
    groups.add(ActionWrapper('http://a/', 'state_changed', 2,
                             key=('URL', 'http://a/')))
    groups.add(ActionWrapper('x', 'odd', 3, key=('URL',)))
    assert [r.key for r in groups.records({'URL'})] == [
        ('URL', 'http://a/'), ('URL',)]
    assert len(list(groups.records())) == 4
    assert list(groups.records({'Other'})) == []


# -- the same set of records as a RecordSet -----------------------------------

RECORD = st.tuples(st.integers(0, 3), st.sampled_from(['c1', 'c2']),
                   st.sampled_from(['a', 'b', 'c', 'd', 'e', 'f', 'g']),
                   st.sampled_from(['registered', 'unregistered']))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(RECORD, max_size=12), max_size=6))
def test_groups_hold_what_a_record_set_holds(batches):
    old = track.GROUP_SIZE, track.INLINE_SIZE
    track.GROUP_SIZE, track.INLINE_SIZE = 3, 1
    try:
        groups, plain = RecordGroups(), RecordSet()
        for batch in batches:
            records = [reg(c, u, ts, flag) for ts, c, u, flag in batch]
            expected = sum(plain.add(r) for r in records)
            if len(records) == 1:
                assert groups.add(records[0]) == bool(expected)
            else:
                assert groups.add_many(records) == expected
        assert sorted(triples(groups)) == triples(plain)
        assert len(groups) == len(plain)
        for run in groups._groups.values():
            lasts = _parts(run)[1]
            assert 0 < len(lasts) <= 3
            assert list(lasts) == sorted(set(lasts))
            assert isinstance(run, tuple) == (len(lasts) <= 1)
    finally:
        track.GROUP_SIZE, track.INLINE_SIZE = old


# -- stored ---------------------------------------------------------------------

@pytest.fixture
def db(tmp_path):
    database = ZODB.DB(FileStorage(str(tmp_path / 'Data.fs')))
    yield database
    database.close()


def test_families_from_two_connections_do_not_conflict(db):
    tm1, tm2 = transaction.TransactionManager(), transaction.TransactionManager()
    c1, c2 = db.open(transaction_manager=tm1), db.open(transaction_manager=tm2)
    with tm1:
        c1.root()['track'] = SetMultiPointerTrack()
        c1.root()['things'] = [Thing('http://%d/' % i) for i in range(600)]
        c1.root()['track'].prepare_entry(1)
    tm1.begin()
    tm2.begin()
    t1, t2 = c1.root()['track'], c2.root()['track']
    things1, things2 = c1.root()['things'], c2.root()['things']
    t1.add_family(1, 10.5, ('Registration', 'c1'), 'registered', None,
                  [(t.url, t) for t in things1[:300]])
    t2.add_family(1, 11.5, ('Registration', 'c2'), 'registered', None,
                  [(t.url, t) for t in things2[300:]])
    tm1.commit()
    tm2.commit()                                # resolved by the BTree
    c3 = db.open()
    records = list(c3.root()['track'][1])
    assert len(records) == 600
    assert {r.key[1] for r in records} == {'c1', 'c2'}
    assert all(r.obj.url == r.key[2] for r in records)
    c3.close()


def test_writers_adding_families_to_one_time_bucket_do_not_conflict(db):
    # Two writers (checker workers) add a family each, at once, to the same
    # time bucket, round after round: every addition lands at the end of
    # the tree. A BTree bucket split under one of them would fail the
    # other's commit; a time bucket's few dozen families split nothing.
    tm1, tm2 = transaction.TransactionManager(), transaction.TransactionManager()
    c1, c2 = db.open(transaction_manager=tm1), db.open(transaction_manager=tm2)
    with tm1:
        mpt = c1.root()['track'] = SetMultiPointerTrack()
        mpt.prepare_entry(1)
        for i in range(10):
            mpt.add_family(1, 10.0 + i, ('URL',), 'state_changed', None,
                           [('http://a/%d' % i, i)])
    for i in range(50):
        tm1.begin()
        tm2.begin()
        for n, (tm, conn) in enumerate(((tm1, c1), (tm2, c2))):
            now = 20.0 + i + n / 2
            conn.root()['track'].add_family(
                1, now, ('URL',), 'state_changed', None,
                [('http://%d/%d' % (n, j), j) for j in range(250)])
        tm1.commit()
        tm2.commit()                            # merged, never a conflict
    c3 = db.open()
    assert len(list(c3.root()['track'][1])) == 10 + 50 * 2 * 250
    c3.close()


def test_a_bucket_made_before_groups_still_takes_families(db):
    conn = db.open()
    with transaction.manager:
        mpt = conn.root()['track'] = SetMultiPointerTrack()
        mpt._buckets[1] = RecordSet()           # as an older database has
        assert mpt.add_family(1, 3, ('R', 'c'), 'registered', None,
                              [('a', 1), ('b', 2), ('a', 1)]) == 2
        mpt.add(2, reg('c', 'a'))
    assert isinstance(mpt[1], RecordSet) and isinstance(mpt[2], RecordGroups)
    assert [r.key for r in mpt[1]] == [('R', 'c', 'a'), ('R', 'c', 'b')]
    conn.close()


# -- batch handlers ------------------------------------------------------------

def test_notify_all_calls_a_batch_form_once_per_run(monkeypatch):
    import zope.component
    from zope.component.event import dispatch  # noqa: F401 (registers it)

    calls = []

    def many(evs):
        calls.append(('many', [e.object for e in evs]))

    @events.handles_many(many)
    def added(event):
        calls.append(('one', event.object))

    def removed(event):
        calls.append(('removed', event.object))

    gsm = zope.component.getGlobalSiteManager()
    from linksync import interfaces
    gsm.registerHandler(added, (interfaces.IURLAddedEvent,))
    gsm.registerHandler(removed, (interfaces.IURLRemovedEvent,))
    try:
        events.notify_all([events.URLAdded('a'), events.URLAdded('b'),
                           events.URLRemoved('c'), events.URLRemoved('d'),
                           events.URLAdded('e')])
    finally:
        gsm.unregisterHandler(added, (interfaces.IURLAddedEvent,))
        gsm.unregisterHandler(removed, (interfaces.IURLRemovedEvent,))
    assert calls == [('many', ['a', 'b']), ('removed', 'c'),
                     ('removed', 'd'), ('many', ['e'])]
