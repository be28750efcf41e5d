"""The Multi-Pointer Track: every operation, bound and ordering rule."""

import re

import persistent
import pytest
import transaction
import ZODB
from ZODB.FileStorage import FileStorage
from ZODB.POSException import ConflictError

from linksync.track.errors import EmptyTrackError
from linksync.track.mpt import MultiPointerTrack, SetMultiPointerTrack
from linksync.track.records import (ActionWrapper, RecordLog, RecordSet,
                                    object_key)


class Thing(persistent.Persistent):
    """A stored object records point at."""

    def __init__(self, url):
        self.url = url

    def __repr__(self):
        return '<Thing %r>' % self.url


def rec(name, ts, flags='state_changed'):
    return ActionWrapper('http://%s.example/' % name, flags, ts)


def names(records):
    return [r.key[1].split('//')[1].split('.')[0] for r in records]


@pytest.fixture(params=[MultiPointerTrack, SetMultiPointerTrack])
def track(request):
    return request.param()


def filled(track):
    # buckets 1..5, two records each (a, b), timestamps 10*bucket + 1, + 2
    for position in range(1, 6):
        track.add(position, rec('a%d' % position, 10 * position + 1))
        track.add(position, rec('b%d' % position, 10 * position + 2))
    return track


# -- records ---------------------------------------------------------------------

def test_record_text_form_is_the_seeds():
    record = ActionWrapper(Thing('http://www.example.org/'),
                           {'state_changed'}, 1297082086.75)
    assert re.fullmatch(
        r"<ActionWrapper@0x[0-9a-f]+ \(<Thing 'http://www.example.org/'>\) "
        r"\[state_changed\] 1297082086>", repr(record))


def test_record_flags_are_sorted_and_joined():
    record = ActionWrapper('x', ['title_changed', 'data_changed', 'created'],
                           5)
    assert '[created,data_changed,title_changed] 5>' in repr(record)
    assert record.actions == ('created', 'data_changed', 'title_changed')


def test_record_with_context_names_both():
    record = ActionWrapper('u', 'registered', 1, key=('R', 'c', 'u'),
                           context='client')
    assert re.fullmatch(r"<ActionWrapper@0x[0-9a-f]+ \('u', 'client'\) "
                        r"\[registered\] 1>", repr(record))


@pytest.mark.parametrize('bad', [None, float('nan'), float('inf'), '12', True])
def test_record_refuses_a_bad_timestamp(bad):
    with pytest.raises(TypeError):
        ActionWrapper('x', 'a', bad)


def test_record_refuses_bad_flags():
    with pytest.raises(ValueError):
        ActionWrapper('x', set(), 1)
    with pytest.raises(TypeError):
        ActionWrapper('x', {'', 'a'}, 1)
    with pytest.raises(TypeError):
        ActionWrapper('x', {3}, 1)


def test_object_key():
    assert object_key('http://a/') == ('str', 'http://a/')
    assert object_key(Thing('http://a/')) == ('Thing', 'http://a/')
    with pytest.raises(TypeError):
        object_key(object())


def test_records_compare_by_time_key_and_flags_only():
    a = ActionWrapper(Thing('x'), 'f', 1, key=('T', 'x'))
    b = ActionWrapper(Thing('x'), 'f', 1, key=('T', 'x'))
    assert a == b and hash(a) == hash(b)
    assert ActionWrapper('a', 'f', 1) < ActionWrapper('a', 'f', 2)
    assert ActionWrapper('a', 'f', 1) < ActionWrapper('b', 'f', 1)
    assert ActionWrapper('a', 'e', 1) < ActionWrapper('a', 'f', 1)
    assert ActionWrapper('a', 'f', 1) != 'something else'


# -- containers --------------------------------------------------------------------

def test_record_log_keeps_order_and_duplicates():
    log = RecordLog()
    assert log.add(rec('b', 2)) and log.add(rec('a', 1))
    assert log.add(rec('a', 1))
    assert names(log) == ['b', 'a', 'a']
    assert names(log.newest_first()) == ['a', 'a', 'b']
    assert len(log) == 3


def test_record_set_orders_and_drops_duplicates():
    records = RecordSet()
    assert records.add(rec('b', 2))
    assert records.add(rec('a', 1))
    assert not records.add(rec('a', 1))
    assert records.add(rec('a', 1, 'other'))
    assert [(r.timestamp, r.actions) for r in records] == [
        (1, ('other',)), (1, ('state_changed',)), (2, ('state_changed',))]
    assert len(records) == 3


def test_set_track_drops_duplicates_list_track_keeps_them():
    for cls, expected in ((MultiPointerTrack, 2), (SetMultiPointerTrack, 1)):
        track = cls()
        track.add(1, rec('a', 1))
        track.add(1, rec('a', 1))
        assert track.count() == expected


def test_track_with_its_own_container():
    track = MultiPointerTrack(container=RecordSet)
    track.add(1, rec('a', 1))
    assert isinstance(track[1], RecordSet)


def test_track_only_takes_records_at_integer_positions(track):
    with pytest.raises(TypeError):
        track.add(1, 'not a record')
    with pytest.raises(TypeError):
        track.add(1.5, rec('a', 1))
    with pytest.raises(TypeError):
        track.add(True, rec('a', 1))
    assert track.is_empty()


# -- intervals and order ---------------------------------------------------------------

def test_iterate_is_newest_first(track):
    filled(track)
    assert [(p, n) for p, n in ((p, names([r])[0])
                                for p, r in track.iterate())] == [
        (5, 'b5'), (5, 'a5'), (4, 'b4'), (4, 'a4'), (3, 'b3'), (3, 'a3'),
        (2, 'b2'), (2, 'a2'), (1, 'b1'), (1, 'a1')]
    assert list(track) == list(track.iterate())


def test_interval_excludes_from_and_includes_till(track):
    filled(track)
    assert sorted({p for p, _ in track.iterate(2, 4)}) == [3, 4]
    assert sorted({p for p, _ in track.iterate(None, 2)}) == [1, 2]
    assert sorted({p for p, _ in track.iterate(4)}) == [5]
    assert list(track.iterate(3, 3)) == []
    assert list(track.iterate(4, 2)) == []
    assert list(track.iterate(5)) == []
    assert list(track.iterate(-10, 0)) == []


def test_iterate_applies_func(track):
    filled(track)
    assert list(track.iterate(4, func=lambda pair: pair[0])) == [5, 5]


def test_window_is_oldest_first(track):
    filled(track)
    assert [(p, names([r])[0]) for p, r in track.window(3, 5)] == [
        (4, 'a4'), (4, 'b4'), (5, 'a5'), (5, 'b5')]


def test_positions_values_items_and_count(track):
    filled(track)
    assert list(track.positions(1, 3)) == [2, 3]
    assert [len(b) for b in track.values(1, 3)] == [2, 2]
    assert [p for p, _ in track.items(3)] == [4, 5]
    assert track.count() == 10 and track.count(2, 4) == 4
    assert 3 in track and 9 not in track
    assert len(track[3]) == 2 and track.entry(9) is None


def test_most_recent_and_oldest(track):
    with pytest.raises(EmptyTrackError):
        track.most_recent_ts()
    with pytest.raises(EmptyTrackError):
        track.oldest_ts()
    filled(track)
    assert track.most_recent_ts() == 5
    assert track.most_recent_ts(maximum=3) == 3
    assert track.most_recent_ts(maximum=8) == 5
    assert track.oldest_ts() == 1


def test_prepare_entry_creates_an_empty_bucket_once(track):
    bucket = track.prepare_entry(7)
    assert len(bucket) == 0 and track.prepare_entry(7) is bucket
    assert not track.is_empty() and track.count() == 0


# -- pointers ------------------------------------------------------------------------

def test_pointers(track):
    filled(track)
    track.add_pointer('late')
    assert track.pointer_position('late') == 5
    track.add_pointer('early', 2)
    with pytest.raises(KeyError):
        track.add_pointer('early', 3)
    assert names(track.pointer_iter_values('early')) == [
        'b5', 'a5', 'b4', 'a4', 'b3', 'a3']
    assert [p for p, _ in track.pointer_iter_items('early', 3)] == [3, 3]
    assert list(track.pointer_iter_values('late')) == []
    assert names(track.current_entry('early')) == ['a2', 'b2']
    track.move_pointer('early', 4)
    assert track.pointer_position('early') == 4
    track.move_pointer('early', 1)          # either way
    assert track.pointers() == [('early', 1), ('late', 5)]
    track.remove_pointer('late')
    assert not track.has_pointer('late')
    for operation in (track.remove_pointer, track.pointer_position,
                      lambda pid: track.move_pointer(pid, 1)):
        with pytest.raises(KeyError):
            operation('late')


def test_pointer_on_an_empty_track_starts_at_zero(track):
    track.add_pointer('p')
    assert track.pointer_position('p') == 0
    assert track.current_entry('p') is None


def test_seed_names(track):
    filled(track)
    track.addPointer('p', 3)
    track.movePointer('p', 4)
    assert track.getPointerTimestamp('p') == 4
    assert names(track.getCurrentPosition('p')) == ['a4', 'b4']
    assert len(list(track.pointerIterItems('p'))) == 2
    assert len(list(track.pointerIterValues('p'))) == 2
    assert track.mostRecentTS() == 5 and track.oldestTS() == 1
    track.prepareEntry(9)
    track.removePointer('p')


# -- pruning ---------------------------------------------------------------------------

def test_prune_removes_buckets_behind_every_pointer(track):
    filled(track)
    assert track.prune() == 0                  # no pointer: no reader yet
    track.add_pointer('a', 4)
    track.add_pointer('b', 2)
    assert track.prune() == 2                  # buckets 1 and 2
    assert list(track.positions()) == [3, 4, 5]
    assert track.prune() == 0
    track.move_pointer('b', 5)
    assert track.prune(upto=3) == 1            # never after `upto`
    assert list(track.positions()) == [4, 5]
    assert track.prune() == 1                  # up to 'a' at 4
    assert list(track.positions()) == [5]
    assert names(track.pointer_iter_values('a')) == ['b5', 'a5']


def test_prune_empty(track):
    filled(track)
    track.prepare_entry(7)
    track.prepare_entry(9)
    track.prepare_entry(11)
    assert track.prune_empty(8) == 1
    assert list(track.positions(5)) == [9, 11]
    assert track.prune_empty(11, after=9) == 1          # ]9, 11]
    assert list(track.positions(5)) == [9]


def test_clear_keeps_pointers(track):
    filled(track)
    track.add_pointer('p', 3)
    track.clear()
    assert track.is_empty() and track.pointer_position('p') == 3
    track.clear_pointers()
    assert track.pointers() == []


# -- concurrency: two connections adding to the same bucket ---------------------------

@pytest.fixture
def db(tmp_path):
    database = ZODB.DB(FileStorage(str(tmp_path / 'Data.fs')))
    yield database
    database.close()


def two_connections(db, factory):
    tm1, tm2 = transaction.TransactionManager(), transaction.TransactionManager()
    c1, c2 = db.open(transaction_manager=tm1), db.open(transaction_manager=tm2)
    tm1.begin()
    c1.root()['track'] = factory()
    c1.root()['things'] = [Thing('http://a/'), Thing('http://b/')]
    tm1.commit()
    tm2.begin()
    return (tm1, c1.root()), (tm2, c2.root())


@pytest.mark.parametrize('factory', [MultiPointerTrack, SetMultiPointerTrack])
def test_two_transactions_add_to_one_bucket_without_conflict(db, factory):
    (tm1, root1), (tm2, root2) = two_connections(db, factory)
    tm1.begin()
    root1['track'].prepare_entry(7)
    tm1.commit()
    tm1.begin()
    tm2.begin()
    root1['track'].add(7, ActionWrapper(root1['things'][0], 'state_changed',
                                        71))
    root2['track'].add(7, ActionWrapper(root2['things'][1], 'registered',
                                        72))
    tm1.commit()
    tm2.commit()                                # resolved, not a conflict
    tm1.begin()
    records = list(root1['track'][7])
    assert sorted((r.obj.url, r.actions) for r in records) == [
        ('http://a/', ('state_changed',)), ('http://b/', ('registered',))]
    assert all(isinstance(r.obj, Thing) for r in records)


def test_many_records_in_one_bucket_from_two_connections(db):
    # Beyond the first BTree bucket: still resolved, or a conflict that a
    # retry resolves; never a lost record.
    (tm1, root1), (tm2, root2) = two_connections(db, SetMultiPointerTrack)
    tm1.begin()
    root1['track'].prepare_entry(1)
    for i in range(100):
        root1['track'].add(1, rec('x%03d' % i, i))
    tm1.commit()
    for round_ in range(5):
        tm1.begin()
        tm2.begin()
        root1['track'].add(1, rec('one%d' % round_, 1000 + round_))
        root2['track'].add(1, rec('two%d' % round_, 2000 + round_))
        tm1.commit()
        try:
            tm2.commit()
        except ConflictError:
            tm2.abort()
            tm2.begin()
            root2['track'].add(1, rec('two%d' % round_, 2000 + round_))
            tm2.commit()
    tm1.begin()
    assert root1['track'].count() == 110


def test_same_new_bucket_created_twice_conflicts_without_loss(db):
    # Creating a bucket touches the BTree of buckets: that is what
    # prepare_entry() avoids; without it one writer retries.
    (tm1, root1), (tm2, root2) = two_connections(db, SetMultiPointerTrack)
    tm1.begin()
    tm2.begin()
    root1['track'].add(9, rec('a', 90))
    root2['track'].add(9, rec('b', 91))
    tm1.commit()
    with pytest.raises(ConflictError):
        tm2.commit()
    tm2.abort()
    tm2.begin()
    root2['track'].add(9, rec('b', 91))
    tm2.commit()
    tm1.begin()
    assert names(root1['track'][9]) == ['a', 'b']


def test_record_log_refuses_to_merge_a_removal():
    log = RecordLog()
    a, b = rec('a', 1)._stored(), rec('b', 2)._stored()
    merged = log._p_resolveConflict({'_items': [a]}, {'_items': [a, b]},
                                    {'_items': [a, a]})
    assert merged['_items'] == [a, b, a]
    with pytest.raises(ConflictError):
        log._p_resolveConflict({'_items': [a]}, {'_items': []},
                               {'_items': [a, b]})


@pytest.mark.parametrize('container', [RecordSet, RecordLog])
def test_containers_say_whether_they_are_empty(container):
    bucket = container()
    assert bucket.is_empty()
    bucket.add(ActionWrapper('http://a.example/', 'state_changed', 1))
    assert not bucket.is_empty()


@pytest.mark.parametrize('kind', [MultiPointerTrack, SetMultiPointerTrack])
def test_len_counts_buckets_and_del_removes_one(kind, tmp_path):
    db = ZODB.DB(FileStorage(str(tmp_path / 'Data.fs')))
    conn = db.open()
    track = conn.root()['track'] = kind()
    assert len(track) == 0
    for position in (1, 2, 3):
        for n in range(position):
            track.add(position, ActionWrapper('http://%d.example/' % n,
                                              'state_changed', position * 10))
    track.add_pointer('behind', 1)
    track.add_pointer('ahead', 3)
    transaction.commit()
    assert len(track) == 3 and track.count() == 6
    del track[2]
    transaction.commit()
    assert len(track) == 2 and 2 not in track and track.count() == 4
    # The pointers stay where they were; the one behind never sees what
    # was removed.
    assert track.pointer_position('behind') == 1
    assert track.pointer_position('ahead') == 3
    assert {p for p, _ in track.pointer_iter_items('behind')} == {3}
    with pytest.raises(KeyError):
        del track[2]
    with pytest.raises(TypeError):
        del track['3']
    conn.close()
    conn = db.open()
    track = conn.root()['track']
    assert len(track) == 2 and list(track.positions()) == [1, 3]
    conn.close()
    db.close()
