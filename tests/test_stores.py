"""The stores: the same contract over every backend, and their own ways."""

import json
import sqlite3

import pytest
import yaml
import ZODB
from twisted.logger import capturedLogs, formatEvent

from linksync.stores import (AlreadyExists, Link, MemoryStore, NotConnected,
                             NotFound, StoreError, TrackedStore, ZODBStore)
from linksync.tracked import track

from storekinds import KINDS, Note, clock, make_store


@pytest.fixture(params=KINDS)
def store(request, tmp_path):
    s = make_store(request.param, tmp_path)
    yield s
    s.disconnect()


def heard(store):
    events = []
    store.observe(lambda batch: events.extend(
        (e.action, e.data.name, e.old.text if e.old else None, e.origin)
        for e in batch))
    return events


# -- Data ---------------------------------------------------------------------

def test_data_fields_dirty_and_rollback():
    note = Note(name='n', text='a')
    assert note.dirty and note.changes()['text'] == (None, 'a')
    with pytest.raises(StoreError, match='never saved'):
        note.rollback()
    with pytest.raises(StoreError, match='belongs to no store'):
        note.save()
    with pytest.raises(TypeError, match="a Note has no field 'colour'"):
        Note(colour='red')
    saved = Note.from_record({'id': '1', 'name': 'n', 'tags': ['x']})
    assert not saved.dirty and saved.text == '' and saved.tags == ['x']
    saved.tags.append('y')          # a change inside a field counts too
    assert saved.dirty and saved.changes() == {'tags': (['x'], ['x', 'y'])}
    saved.rollback()
    assert saved.tags == ['x'] and not saved.dirty
    with pytest.raises(StoreError, match="has a field 'colour'"):
        Note.from_record({'id': '1', 'colour': 'red'})
    assert Note.defaults()['tags'] is not Note.defaults()['tags']


# -- the contract of every store ----------------------------------------------

def test_crud(store):
    events = heard(store)
    note = store.add(Note(name='shopping', text='milk'))
    assert note.id and note.created == note.updated == 1000
    assert not note.dirty and note.store is store
    assert store.get(Note, note.id) == note
    assert store.find(Note, name='shopping') == [note]
    assert store.find(Note, text='milk') == [note]
    assert store.find(Note, name='shopping', text='eggs') == []
    assert store.get(Note, 'nope') is None

    store.clock.advance(5)
    note.text = 'milk, eggs'
    note.save()
    again = store.get(Note, note.id)
    assert again.text == 'milk, eggs' and again.updated == 1005
    assert again.created == 1000

    store.remove(again)
    assert store.get(Note, note.id) is None and store.find(Note) == []
    assert events == [('added', 'shopping', None, None),
                      ('updated', 'shopping', 'milk', None),
                      ('removed', 'shopping', None, None)]


def test_errors_change_nothing(store):
    note = store.add(Note(id='n1', name='a'))
    with pytest.raises(AlreadyExists, match="has a Note 'n1' already"):
        store.add(Note(id='n1', name='b'))
    ghost = Note(id='ghost', name='g')
    ghost._mark_saved()
    with pytest.raises(NotFound, match="has no Note 'ghost'"):
        store.update(ghost)
    with pytest.raises(NotFound, match="has no Note 'ghost'"):
        store.remove(ghost)
    with pytest.raises(StoreError, match='holds no Link'):
        store.get(Link, 'x')
    assert store.find(Note) == [note]


def test_an_update_changing_nothing_writes_nothing(store):
    note = store.add(Note(name='a', text='x'))
    events = heard(store)
    store.clock.advance(10)
    note.text = 'x'
    store.update(note)
    assert events == [] and store.get(Note, note.id).updated == 1000


def test_put_and_delete_match_by_id_else_by_name(store):
    mine = store.add(Note(id='mine', name='shared', text='old'))
    events = heard(store)
    # Another store's datum of the same name: matched by name, the id kept.
    theirs = Note(id='theirs', name='shared', text='new')
    assert store.put(theirs) == 'updated'
    assert store.get(Note, 'mine').text == 'new'
    assert store.put(theirs) is None                 # nothing to change
    assert store.put(Note(id='other', name='else')) == 'added'
    assert store.get(Note, 'other').name == 'else'
    # Renamed elsewhere: found by its old name.
    renamed = Note(id='theirs', name='shared2', text='new')
    assert store.put(renamed, names=('shared',)) == 'updated'
    assert [n.name for n in store.find(Note)] in (
        ['shared2', 'else'], ['else', 'shared2'])
    assert store.delete(Note(id='x', name='shared2')) == 'removed'
    assert store.delete(Note(id='x', name='shared2')) is None
    assert store.get(Note, mine.id) is None
    assert [e[0] for e in events] == ['updated', 'added', 'updated',
                                      'removed']


def test_put_without_create_only_updates(store):
    assert store.put(Note(id='a', name='a'), create=False) is None
    assert store.find(Note) == []
    store.add(Note(id='a', name='a', text='x'))
    assert store.put(Note(id='a', name='a', text='y'), fields=('text',),
                     create=False) == 'updated'
    assert store.get(Note, 'a').text == 'y'


def test_a_batch_is_one_notification(store):
    events = []
    store.observe(events.append)
    results = store.put_many([Note(id=str(i), name=str(i)) for i in
                              range(5)])
    assert results == ['added'] * 5
    assert len(events) == 1 and len(events[0]) == 5
    assert store.delete_many([Note(id='1'), Note(id='9')]) == [
        'removed', None]


def test_synchronizer_writes_keep_their_stamps(store):
    note = Note(id='n', name='n', created=5, updated=7)
    store.add(note, origin='someone')
    assert store.get(Note, 'n').record()['updated'] == 7


def test_a_failing_observer_keeps_no_other_from_hearing(store):
    def broken(events):
        raise ValueError('the observer has a bug')
    store.observe(broken)
    events = heard(store)
    with capturedLogs() as logged:
        note = store.add(Note(name='a'))
    assert store.get(Note, note.id) == note          # the write stands
    assert events == [('added', 'a', None, None)]
    [entry] = logged
    assert 'an observer failed on 1 event(s)' in formatEvent(entry)
    assert entry['log_failure'].check(ValueError)


def test_disconnected(store):
    store.disconnect()
    with pytest.raises(NotConnected):
        store.find(Note)
    store.connect()
    assert store.find(Note) == []


@pytest.mark.parametrize('kind', ['tracked-yaml', 'zodb', 'sqlite'])
def test_data_outlive_the_store(kind, tmp_path):
    store = make_store(kind, tmp_path)
    store.add(Note(id='n', name='kept', text='t', tags=['a']))
    store.disconnect()
    again = make_store(kind, tmp_path)
    assert again.get(Note, 'n').record() == {
        'id': 'n', 'name': 'kept', 'description': '', 'created': 1000,
        'updated': 1000, 'text': 't', 'tags': ['a']}
    again.disconnect()


@pytest.mark.parametrize('kind', ['tracked-yaml', 'zodb', 'sqlite'])
def test_a_failed_batch_leaves_nothing(kind, tmp_path):
    store = make_store(kind, tmp_path)
    store.add(Note(id='b', name='b'))
    events = heard(store)
    with pytest.raises(AlreadyExists):
        # The second add finds 'b' taken (no fallback with add()).
        store._batch(lambda: [store.add(Note(id='a', name='a')),
                              store.add(Note(id='b', name='b'))])
    assert [n.id for n in store.find(Note)] == ['b'] and events == []
    store.add(Note(id='c', name='c'))       # the store still works
    assert events == [('added', 'c', None, None)]


def test_a_failed_batch_of_a_store_without_transactions_is_told():
    store = MemoryStore([Note], clock=clock()).connect()
    store.add(Note(id='b', name='b'))
    events = heard(store)
    with pytest.raises(AlreadyExists):
        store._batch(lambda: [store.add(Note(id='a', name='a')),
                              store.add(Note(id='b', name='b'))])
    # 'a' was written: the observers hear of it.
    assert events == [('added', 'a', None, None)]


# -- the tracked store --------------------------------------------------------

def test_tracked_file_is_pleasant(tmp_path):
    path = tmp_path / 'links.yaml'
    store = TrackedStore([Link], path=str(path), clock=clock()).connect()
    store.add(Link(name='http://example.com/', state='ok', reason='200 OK'))
    assert yaml.safe_load(path.read_text()) == {'links': {
        'http://example.com/': {'created': 1000, 'updated': 1000,
                                'state': 'ok', 'reason': '200 OK'}}}
    store.disconnect()


def test_tracked_store_hears_direct_changes(tmp_path):
    tracked = track({'notes': {}}, 'notes', persist=False)
    store = TrackedStore([Note], tracked=tracked, clock=clock()).connect()
    events = heard(store)
    tracked.notes['n1'] = {'name': 'first', 'text': 'a'}
    tracked.notes.n1.text = 'b'
    with tracked:
        tracked.notes['n2'] = {}
        del tracked.notes['n1']
    tracked['other'] = 'not data'           # nothing to tell
    tracked['notes'] = {'n3': None}         # everything replaced
    assert events == [('added', 'first', None, None),
                      ('updated', 'first', 'a', None),
                      ('added', 'n2', None, None),
                      ('removed', 'first', None, None),
                      ('removed', 'n2', None, None),
                      ('added', 'n3', None, None)]
    # The store's own writes are told once.
    del events[:]
    store.add(Note(id='n4', name='four'))
    assert events == [('added', 'four', None, None)]


def test_unreadable_hand_edits_are_reported_not_guessed(tmp_path):
    path = tmp_path / 'notes.yaml'
    path.write_text('notes:\n  good: {text: fine}\n  bad: 5\n'
                    '  typo: {txet: oops}\n')
    with capturedLogs() as logged:
        store = TrackedStore([Note], path=str(path), clock=clock()).connect()
    assert sorted(formatEvent(e) for e in logged) == [
        "%s: the notes 'bad' is int, not a mapping of fields (the record is "
        "left out)" % path,
        "the notes 'typo' has a field 'txet' that a Note does not have (the "
        "record is left out)"]
    assert store.get(Note, 'good').text == 'fine'
    with pytest.raises(StoreError, match="the notes 'bad' is int, not a "
                                         "mapping of fields"):
        store.get(Note, 'bad')
    with pytest.raises(StoreError, match="has a field 'txet'"):
        store.get(Note, 'typo')
    with pytest.raises(StoreError, match="'bad' is int"):
        store.find(Note)            # listing them all meets the first one
    events = heard(store)
    store.root.notes['typo'] = {'text': 'fixed'}
    assert events == [('added', 'typo', None, None)]


def test_tracked_store_refuses_what_its_format_cannot_keep(tmp_path):
    store = make_store('tracked-json', tmp_path)
    events = heard(store)
    with pytest.raises(StoreError, match='JSON cannot store the set'):
        store.add(Note(id='n', name='n', tags={'a'}))
    assert store.find(Note) == [] and events == []
    assert json.loads((tmp_path / 'tracked.json').read_text()) == {
        'notes': {}}


def test_tracked_store_needs_a_known_format(tmp_path):
    with pytest.raises(StoreError, match='cannot tell the format of'):
        TrackedStore([Note], path=str(tmp_path / 'x.txt')).connect()
    (tmp_path / 'list.yaml').write_text('- 1\n')
    with pytest.raises(StoreError, match='holds a ListWrapper, not a '
                                         'mapping'):
        TrackedStore([Note], path=str(tmp_path / 'list.yaml')).connect()
    (tmp_path / 'broken.yaml').write_text('a: [\n')
    with pytest.raises(StoreError, match='cannot load .*broken.yaml'):
        TrackedStore([Note], path=str(tmp_path / 'broken.yaml')).connect()


# -- SQLite and ZODB ----------------------------------------------------------

def test_sqlite_layout_and_a_locked_database(tmp_path):
    store = make_store('sqlite', tmp_path)
    store.add(Note(id='n', name='n', text='t'))
    other = sqlite3.connect(str(tmp_path / 'sqlite.sqlite'))
    assert other.execute('SELECT id, name, fields FROM notes').fetchall() == [
        ('n', 'n', '{"tags": [], "text": "t"}')]
    other.execute('BEGIN IMMEDIATE')        # another writer holds it
    store.connection.execute('PRAGMA busy_timeout = 0')
    from linksync.stores import StoreUnavailable
    with pytest.raises(StoreUnavailable, match='locked'):
        store.add(Note(id='m', name='m'))
    other.rollback()
    store.add(Note(id='m', name='m'))
    assert len(store.find(Note)) == 2


def test_zodb_store_sees_other_connections_and_reports_conflicts():
    db = ZODB.DB(None)
    one = ZODBStore([Note], db=db, clock=clock()).connect()
    two = ZODBStore([Note], db=db, clock=clock()).connect()
    one.add(Note(id='n', name='n'))
    assert two.get(Note, 'n').name == 'n'
    assert two.find(Note, name='n')[0].id == 'n'
    note = one.get(Note, 'n')
    note.name = 'renamed'
    one.update(note)
    assert two.find(Note, name='n') == [] and \
        two.find(Note, name='renamed')[0].id == 'n'
    db.close()


# -- chaining.each -------------------------------------------------------------

def test_each_goes_past_many_fired_deferreds_without_recursion():
    from twisted.internet import defer
    from linksync.stores.chaining import each
    found = []
    each(range(5000), lambda n: defer.succeed(n * 2)).addCallback(
        found.append)
    assert found == [[n * 2 for n in range(5000)]]


def test_each_waits_for_pending_deferreds_and_keeps_order():
    from twisted.internet import defer
    from linksync.stores.chaining import each
    pending = {}

    def func(n):
        if n % 100 == 0:
            pending[n] = defer.Deferred()
            return pending[n]
        return defer.succeed(n) if n % 2 else n
    found = []
    each(range(1000), func).addCallback(found.append)
    for n in range(0, 1000, 100):
        assert not found and list(pending) == list(range(0, n + 1, 100))
        pending[n].callback(n)
    assert found == [list(range(1000))]


def test_each_stops_at_the_first_failure():
    from twisted.internet import defer
    from linksync.stores.chaining import each
    calls = []

    def func(n):
        calls.append(n)
        if n == 700:
            return defer.fail(ValueError('item 700'))
        return defer.succeed(n)
    failures = []
    each(range(1000), func).addErrback(failures.append)
    assert failures[0].check(ValueError) and calls == list(range(701))
    assert each([], func) == [] and each([1, 2], str) == ['1', '2']
