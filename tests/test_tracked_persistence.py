"""Every format: round trip, atomic saves under a crash, corrupt files."""

import datetime
import fractions
import json
import os
import pickle
import sqlite3
import subprocess
import sys

import pytest

from linksync.tracked import (
    JSONFile, LazyDictWrapper, ShelveBackend, TrackedFileError,
    TrackedSaveError, ZODBBackend, track, tracker_of, undo)
from linksync.tracked.formats import FORMATS

WHOLE_FILE = ['yaml', 'json', 'full-yaml', 'pickle']
LAZY = ['shelve', 'zodb']
ALL = WHOLE_FILE + LAZY

#: What each format gives back exactly.
DATA = {
    'yaml': {'s': 'text', 'i': -3, 'f': 1.5, 'b': True, 'n': None,
             'raw': b'\x00\xff', 'day': datetime.date(2024, 2, 29),
             'l': [1, [2, {'x': 'y'}]], 'set': {1, 'a'}, 3: 'int key'},
    'json': {'s': 'text', 'i': -3, 'f': 1.5, 'b': False, 'n': None,
             'l': [1, [2, {'x': 'y'}]], 'd': {}},
    'full-yaml': {'t': (1, (2, 3)), 'fs': frozenset({1}), (1, 2): 'key',
                  'q': fractions.Fraction(1, 3), 'set': {('a', 1)}},
    'pickle': {'t': (1, 2), 'q': fractions.Fraction(1, 3), 5: {5}},
    'shelve': {'a': {'deep': [1, {2}]}, 'b': (1, 2), 'c': 'x'},
    'zodb': {'a': {'deep': [1, {2}]}, 'b': (1, 2), 'c': 'x'},
}
FILES = {'yaml': 'x.yaml', 'json': 'x.json', 'full-yaml': 'x.yaml',
         'pickle': 'x.pickle', 'shelve': 'x.shelve', 'zodb': 'x.fs'}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def reopen(name, fmt, default=None):
    root = track({} if default is None else default, name, persist=fmt)
    return root


def close(root):
    tracker_of(root).close()


@pytest.mark.parametrize('fmt', ALL)
def test_round_trip(fmt):
    root = track(DATA[fmt], 'x', persist=fmt)
    assert os.path.exists(FILES[fmt])
    close(root)
    again = reopen('x', fmt, default={'ignored': True})
    assert again == DATA[fmt]
    if fmt in LAZY:
        assert type(again) is LazyDictWrapper
    again['added'] = {'n': [1]}
    again['added']['n'].append(2)
    with again:
        del again['c' if 'c' in again else next(iter(again))]
    expected = dict(again)
    close(again)
    third = reopen('x', fmt)
    assert third == expected
    close(third)


@pytest.mark.parametrize('fmt', ALL)
def test_a_list_or_set_root(fmt):
    if fmt in LAZY:
        with pytest.raises(TypeError, match='stores a dict'):
            track([1], 'x', persist=fmt)
        return
    root = track([1, {2}] if fmt != 'json' else [1, [2]], 'x', persist=fmt)
    root.append(3)
    close(root)
    assert reopen('x', fmt, default=[]) == root


def test_safe_yaml_is_readable_block_style():
    track({'b': {'c': [1, 2]}, 'a': {'x'}}, 'readable')
    assert open('readable.yaml').read() == (
        'a: !!set\n  x: null\nb:\n  c:\n  - 1\n  - 2\n')


@pytest.mark.parametrize('fmt,value,message', [
    ('yaml', (1, 2), r"safe YAML cannot store the tuple at \['v'\]"),
    ('yaml', {'k': object()}, r"the object at \['v', 'k'\]"),
    ('json', {1, 2}, r"JSON cannot store the set at \['v'\]"),
    ('json', {1: 'x'}, r"JSON cannot store the key 1 at \['v'\]"),
    ('json', [(1,)], r"JSON cannot store the tuple at \['v', 0\]"),
    ('shelve', None, 'string keys'),
])
def test_formats_refuse_what_they_would_change(fmt, value, message):
    root = track({'ok': 1}, 'x', persist=fmt)
    with pytest.raises(TrackedSaveError, match=message):
        if fmt == 'shelve':
            root[1] = 'int key'
        else:
            root['v'] = value
    assert root == {'ok': 1}
    close(root)
    assert reopen('x', fmt) == {'ok': 1}


def test_refusal_at_creation_leaves_no_file():
    with pytest.raises(TrackedSaveError, match='JSON cannot store'):
        track({'s': {1}}, 'x', persist='json')
    assert not os.path.exists('x.json')


def test_the_mode_of_a_file_is_kept():
    root = track({'a': 1}, 'x', persist='json')
    os.chmod('x.json', 0o600)
    root.a = 2
    assert os.stat('x.json').st_mode & 0o777 == 0o600


def test_persist_arguments():
    with pytest.raises(ValueError, match='unknown format'):
        track({}, 'x', persist='xml')
    with pytest.raises(ValueError, match='needs a name'):
        track({}, persist='json')
    with pytest.raises(TypeError, match='persist must be'):
        track({}, 'x', persist=3)
    root = track({}, persist=True)  # no name: nothing to save to
    assert tracker_of(root).backend is None
    assert sorted(FORMATS) == sorted(ALL)
    explicit = track({'a': 1}, 'name-unused', persist=JSONFile('other.json'))
    explicit.a = 2
    assert json.loads(open('other.json').read()) == {'a': 2}


# -- crashes ----------------------------------------------------------------------

CHILD = r'''
import os, sys
from linksync.tracked import track
fmt, name, point = sys.argv[1:]
root = track({}, name, persist=fmt)
real_fdopen = os.fdopen

def die(*args, **kw):
    os._exit(7)

class HalfWritten:
    def __init__(self, f):
        self.f = f
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return False
    def write(self, data):
        self.f.write(data[:len(data) // 2])
        self.f.flush()
        os._exit(7)

if point == 'rename':      # written and fsynced, not renamed
    os.replace = die
elif point == 'write':     # half written
    os.fdopen = lambda fd, mode: HalfWritten(real_fdopen(fd, mode))
elif point == 'commit':    # one row of the transaction written
    import shelve
    real_setitem = shelve.Shelf.__setitem__
    def setitem(self, key, value):
        real_setitem(self, key, value)
        os._exit(7)
    shelve.Shelf.__setitem__ = setitem
elif point == 'vote':      # transaction written, not finished
    from ZODB.FileStorage import FileStorage
    real_vote = FileStorage.tpc_vote
    def vote(self, transaction):
        real_vote(self, transaction)
        os._exit(7)
    FileStorage.tpc_vote = vote
with root:
    root['v'] = 2
    root['w'] = 'new'
os._exit(0)
'''


@pytest.mark.parametrize('fmt,point', [
    (fmt, point) for fmt in WHOLE_FILE for point in ('write', 'rename')
] + [('shelve', 'commit'), ('zodb', 'vote')])
def test_a_crash_while_saving_leaves_the_old_data(tmp_path, fmt, point):
    close(track({'v': 1}, 'crash', persist=fmt))
    path = FILES[fmt].replace('x', 'crash')
    before = open(path, 'rb').read()
    child = subprocess.run(
        [sys.executable, '-c', CHILD, fmt, 'crash', point],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert child.returncode == 7, child.stderr
    if fmt in WHOLE_FILE:
        assert open(path, 'rb').read() == before
        assert [n for n in os.listdir() if n.endswith('.tmp')]
    again = reopen('crash', fmt)
    assert again == {'v': 1}
    assert not [n for n in os.listdir() if n.startswith('.crash')]
    again['v'] = 3  # and it still saves
    close(again)
    assert reopen('crash', fmt) == {'v': 3}


# -- corrupt files -----------------------------------------------------------------------

CORRUPT = {
    'yaml': (b'a: 1\nb: [1, 2\nc: 3\n', 'line 3, column 2'),
    'full-yaml': (b'a:\n  - 1\n - 2\n', 'line 3, column 2'),
    'json': (b'{\n  "a": 1,,\n}\n', 'line 2, column 10'),
    'pickle': (pickle.dumps({'a': list(range(50))})[:40], 'byte 40'),
    'shelve': (b'this is not a database at all' * 10, 'SQLite header'),
    'zodb': (b'FS99' + b'\x00' * 60, 'FileStorage header'),
}


@pytest.mark.parametrize('fmt', ALL)
def test_a_corrupt_file_is_reported_and_left_alone(fmt):
    data, position = CORRUPT[fmt]
    path = FILES[fmt]
    with open(path, 'wb') as f:
        f.write(data)
    with pytest.raises(TrackedFileError) as e:
        track({'default': 1}, 'x', persist=fmt)
    assert path in str(e.value) and position in str(e.value)
    assert e.value.path.endswith(path) and e.value.position
    assert open(path, 'rb').read() == data


@pytest.mark.parametrize('fmt,text,problem', [
    ('yaml', b'', 'holds no data'),
    ('yaml', b'just text\n', 'holds a str'),
    ('json', b'42', 'holds a int'),
    ('json', b'\xff{}', 'byte 0'),
    ('yaml', b'a: !!python/tuple [1]\n', 'could not determine a '
     'constructor'),
])
def test_files_that_hold_no_structure(fmt, text, problem):
    with open(FILES[fmt], 'wb') as f:
        f.write(text)
    with pytest.raises(TrackedFileError, match=problem):
        track({}, 'x', persist=fmt)
    assert open(FILES[fmt], 'rb').read() == text


def test_a_sqlite_file_that_is_not_a_shelve():
    cx = sqlite3.connect('x.shelve')
    cx.execute('CREATE TABLE other (a)')
    cx.commit()
    cx.close()
    with pytest.raises(TrackedFileError, match='without the Dict table'):
        track({}, 'x', persist='shelve')


def test_a_corrupt_value_in_a_shelve_names_its_key():
    close(track({'good': 1, 'bad': 2}, 'x', persist='shelve'))
    cx = sqlite3.connect('x.shelve')
    cx.execute("UPDATE Dict SET value = CAST('junk' AS BLOB) "
               "WHERE key = CAST('bad' AS BLOB)")
    cx.commit()
    cx.close()
    root = track({}, 'x', persist='shelve')
    assert root['good'] == 1
    with pytest.raises(TrackedFileError, match="x.shelve: key 'bad'"):
        root['bad']
    close(root)


# -- lazy formats ----------------------------------------------------------------------

def _writes(root):
    """Rows or records the last save wrote."""
    backend = tracker_of(root).backend
    if isinstance(backend, ShelveBackend):
        return backend.shelf.dict.cx.total_changes
    records = 0
    for transaction in backend.db.storage.iterator():
        records = len(list(transaction))  # the last one's, in the end
    return records


@pytest.mark.parametrize('fmt', LAZY)
def test_lazy_values_are_loaded_when_used(fmt):
    close(track({'k%d' % i: {'n': i} for i in range(100)}, 'x',
                persist=fmt))
    root = track({}, 'x', persist=fmt)
    assert len(root) == 100 and 'k5' in root
    assert not any(root.loaded(k) for k in root)
    assert root['k5'] == {'n': 5} and root.get('k6') == {'n': 6}
    assert root.k7.n == 7
    assert [k for k in root if root.loaded(k)] == ['k5', 'k6', 'k7']
    assert root.get('missing', 'd') == 'd'
    assert dict(root)['k99'] == {'n': 99}
    assert all(root.loaded(k) for k in root)
    close(root)


@pytest.mark.parametrize('fmt', LAZY)
def test_lazy_saves_write_only_what_changed(fmt):
    close(track({'k%d' % i: {'n': i} for i in range(2000)}, 'x',
                persist=fmt))
    root = track({}, 'x', persist=fmt)
    before = _writes(root)
    root['k10']['n'] = 'ten'
    if fmt == 'shelve':
        assert _writes(root) - before == 1
    else:
        assert _writes(root) == 1
    assert [k for k in root if root.loaded(k)] == ['k10']
    close(root)
    assert reopen('x', fmt)['k10'] == {'n': 'ten'}


@pytest.mark.parametrize('fmt', LAZY)
def test_lazy_root_operations(fmt):
    close(track({'a': [1], 'b': {'c': 2}, 'd': 3, 'e': 4}, 'x',
                persist=fmt))
    root = track({}, 'x', persist=fmt, history=5)
    assert root.pop('a') == [1]
    assert root.setdefault('b') == {'c': 2}
    root.update(d=30, f=6)
    root |= {'g': 7}
    del root['e']
    assert root.popitem() == ('g', 7)
    assert json.loads(json.dumps(root)) == {'b': {'c': 2}, 'd': 30, 'f': 6}
    undo(root)
    assert root == {'b': {'c': 2}, 'd': 30, 'f': 6, 'g': 7}
    with pytest.raises(KeyError):
        with root:
            root.clear()
            raise KeyError('x')
    assert repr(root) == "{'b': {'c': 2}, 'd': 30, 'f': 6, 'g': 7}"
    close(root)
    root = reopen('x', fmt)
    assert root == {'b': {'c': 2}, 'd': 30, 'f': 6, 'g': 7}
    root.clear()
    close(root)
    root = reopen('x', fmt)
    assert root == {}
    close(root)


def test_a_zodb_file_in_use_is_reported():
    root = track({'a': 1}, 'x', persist='zodb')
    with pytest.raises(TrackedFileError, match='LockError'):
        track({}, 'x', persist='zodb')
    close(root)


def test_zodb_in_a_database_of_ones_own(tmp_path):
    import ZODB
    import ZODB.FileStorage
    db = ZODB.DB(ZODB.FileStorage.FileStorage(str(tmp_path / 'own.fs')))
    try:
        one = track({'a': 1}, 'one', persist=ZODBBackend(db=db))
        two = track({'b': 2}, 'two', persist=ZODBBackend(db=db))
        one['a'] = 10
        close(one)
        close(two)
        assert track({}, 'one', persist=ZODBBackend(db=db)) == {'a': 10}
        assert track({}, 'two', persist=ZODBBackend(db=db)) == {'b': 2}
    finally:
        db.close()


def test_zodb_pack_keeps_the_data():
    root = track({'a': 1}, 'x', persist='zodb')
    for i in range(20):
        root['a'] = i
    size = os.path.getsize('x.fs')
    tracker_of(root).backend.pack()
    assert os.path.getsize('x.fs') < size
    close(root)
    assert reopen('x', 'zodb') == {'a': 19}


def test_save_writes_what_changed_inside_an_untracked_value():
    root = track({'t': (1, [2])}, 'x', persist='full-yaml')
    root['t'][1].append(3)     # inside a tuple: not tracked, not saved
    close_and_read = lambda: reopen('x', 'full-yaml')['t']  # noqa: E731
    assert close_and_read() == (1, [2])
    tracker_of(root).save()
    assert close_and_read() == (1, [2, 3])
