"""with blocks (one save, one report, rollback), threads, undo and redo."""

import copy
import json
import threading

import pytest

from linksync.testing import ChangeCatcher
from linksync.tracked import (
    TrackedSaveError, redo, track, tracker_of, undo)
from linksync.tracked.paths import get


def tracked(data, **kw):
    catcher = ChangeCatcher()
    kw.setdefault('persist', False)
    root = track(data, 'test', callback=catcher.cb, **kw)
    return root, catcher


class Boom(Exception):
    pass


def test_a_block_reports_once_with_the_list_of_changes(tmp_path):
    path = tmp_path / 'conf.json'
    from linksync.tracked import JSONFile
    backend = JSONFile(path)
    saves = []
    original_save = backend.save
    backend.save = lambda root, changes: (saves.append(changes),
                                          original_save(root, changes))
    root, catcher = tracked({'a': 1, 'l': []}, persist=backend)
    saves.clear()
    with root:
        root['a'] = 2
        root.l.append(1)
        with root.l:  # nested blocks are one transaction
            root.l.append(2)
        assert catcher.calls == 0 and saves == []
    assert catcher.calls == 1
    assert [c.func_name for c in catcher.last] == \
        ['__setitem__', 'append', 'append']
    assert len(saves) == 1
    assert json.loads(path.read_text()) == {'a': 2, 'l': [1, 2]}


def test_an_empty_block_reports_nothing():
    root, catcher = tracked({})
    with root:
        pass
    assert catcher.calls == 0


def test_an_exception_takes_the_block_back_and_reports_nothing(tmp_path):
    data = {'d': {'a': 1, 'b': {'c': [1, 2]}}, 'l': [3, 1, 2, [4]],
            's': {1, 2}, 'n': 0}
    root, catcher = tracked(data)
    before = copy.deepcopy(root)
    with pytest.raises(Boom):
        with root:
            root.d.a = 5
            del root.d.b
            root.d['new'] = {'x': [1]}
            root.d.new.x.append(2)
            root.d.update(a=7, z=1)
            root.d.popitem()
            root.d.setdefault('q', [])
            root.l.sort(key=str)
            root.l[1:3] = ['x', 'y', 'z']
            root.l[::2] = [0] * len(root.l[::2])
            del root.l[0]
            root.l *= 3
            root.l.insert(0, 'first')
            root.l.reverse()
            root.l.remove('first')
            root.l.pop(0)
            root.s |= {5}
            root.s.symmetric_difference_update({1, 9})
            root.s.intersection_update({2, 5, 9})
            root.s.clear()
            root['n'] += 1
            root.pop('n')
            raise Boom()
    assert root == before
    assert catcher.calls == 0
    # The parts are wired back: changes to them report the right paths.
    root.d.b.c.append(3)
    assert catcher.path == ['d', 'b', 'c']
    assert get(root, catcher.path) is catcher.target
    root.l[3].append(5)
    assert catcher.path == ['l', 3]


def test_rollback_of_a_moved_part():
    root, catcher = tracked({'a': {'x': 1}, 'l': [{'y': 1}]})
    with pytest.raises(Boom):
        with root:
            root['b'] = root.pop('a')
            root.b.x = 2
            root.l.append(root.l.pop(0))
            raise Boom()
    assert root == {'a': {'x': 1}, 'l': [{'y': 1}]}
    root.a.x = 3
    assert catcher.path == ['a']
    root.l[0].y = 3
    assert catcher.path == ['l', 0]


def test_an_inner_block_that_fails_takes_back_only_its_own_changes():
    root, catcher = tracked({'a': 0, 'b': 0})
    with root:
        root.a = 1
        try:
            with root:
                root.b = 1
                raise Boom()
        except Boom:
            pass
        assert root == {'a': 1, 'b': 0}
    assert catcher.calls == 1
    assert [c.args for c in catcher.last] == [('a', 1)]


def test_nothing_is_saved_when_a_block_fails(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = track({'a': 1}, 'conf', persist='json')
    written = (tmp_path / 'conf.json').read_bytes()
    with pytest.raises(Boom):
        with root:
            root.a = 2
            raise Boom()
    assert (tmp_path / 'conf.json').read_bytes() == written
    assert track({}, 'conf', persist='json') == {'a': 1}


def test_a_save_that_fails_takes_the_block_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root, catcher = tracked({'a': 1}, persist='json')
    with pytest.raises(TrackedSaveError, match=r"JSON cannot store the set "
                       r"at \['s'\]"):
        with root:
            root.a = 2
            root['s'] = {1}
    assert root == {'a': 1} and catcher.calls == 0
    assert json.loads((tmp_path / 'test.json').read_text()) == {'a': 1}
    with pytest.raises(TrackedSaveError):
        root[1] = 'int keys change in JSON'
    assert root == {'a': 1}


# -- threads ------------------------------------------------------------------------

THREADS = 4


def _run_threads(target, count=THREADS):
    errors = []

    def run(n):
        try:
            target(n)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_concurrent_writers_lose_nothing():
    root, catcher = tracked({'n': 0, 'log': [], 'seen': set(), 'by': {}})
    rounds = 300

    def writer(n):
        for i in range(rounds):
            with root:          # read-modify-write: needs the block
                root['n'] += 1
            root.log.append((n, i))
            root.seen.add((n, i))
            root.by['%d-%d' % (n, i)] = i
    _run_threads(writer)
    total = THREADS * rounds
    assert root.n == total
    assert len(root.log) == len(root.seen) == len(root.by) == total
    for n in range(THREADS):  # each thread's appends stay in its order
        assert [i for m, i in root.log if m == n] == list(range(rounds))
    # Every change was reported once: the block (one __setitem__) and the
    # three other changes of each round.
    assert catcher.calls == 4 * total
    assert sum(1 for c in catcher.changes if c.path == ['log']) == total


def test_a_block_is_atomic_for_other_threads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = track({'a': 0, 'b': 0, 'failed': 0}, 'pair', persist='json')
    rounds = 40

    def mover(n):
        for i in range(rounds):
            if n % 2:
                with root:
                    root.a += 1
                    root.b -= 1
            else:
                try:
                    with root:
                        root.a += 100
                        root.b -= 100
                        raise Boom()
                except Boom:
                    pass
            with root:  # readers take the lock to see whole blocks
                assert root.a + root.b == 0
    _run_threads(mover)
    assert root.a == rounds * (THREADS // 2)
    assert json.loads((tmp_path / 'pair.json').read_text()) == root


# -- undo / redo -----------------------------------------------------------------------

def test_undo_and_redo_single_changes_and_blocks():
    root, catcher = tracked({'l': [1], 's': set()}, history=10)
    root.l.append(2)
    root.s.add('x')
    with root:
        root['d'] = {'k': 1}
        root.d.k = 2
        root.l.sort(reverse=True)
    assert root == {'l': [2, 1], 's': {'x'}, 'd': {'k': 2}}
    calls = catcher.calls
    assert undo(root) is True
    assert root == {'l': [1, 2], 's': {'x'}}
    assert catcher.calls == calls + 1  # an undo is a change, reported once
    assert undo(root) and undo(root)
    assert root == {'l': [1], 's': set()}
    assert undo(root) is False
    assert redo(root) and redo(root) and redo(root)
    assert root == {'l': [2, 1], 's': {'x'}, 'd': {'k': 2}}
    assert redo(root) is False
    root.d.k = 3  # redone parts are live parts of the structure
    assert catcher.path == ['d']


def test_a_new_change_clears_the_redo_history():
    root, _ = tracked([], history=5)
    root.append(1)
    undo(root)
    root.append(2)
    assert redo(root) is False
    assert root == [2]


def test_history_is_bounded():
    root, _ = tracked([], history=3)
    for i in range(6):
        root.append(i)
    assert undo(root) and undo(root) and undo(root)
    assert undo(root) is False
    assert root == [0, 1, 2]


def test_undo_is_saved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = track({'a': 1}, 'h', persist='json', history=2)
    root.a = 2
    undo(root)
    assert json.loads((tmp_path / 'h.json').read_text()) == {'a': 1}


def test_undo_needs_a_history():
    root, _ = tracked([])
    with pytest.raises(ValueError, match='history'):
        undo(root)


def test_closing_stops_saving(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = track({'a': 1}, 'c', persist='json')
    tracker_of(root).close()
    root.a = 2
    assert json.loads((tmp_path / 'c.json').read_text()) == {'a': 1}


def test_rollback_of_values_that_are_not_containers():
    class Node:
        _parent = None   # a name the wrappers use too

    node = Node()
    root, _ = tracked({'a': node, 'l': [node]})
    with pytest.raises(Boom):
        with root:
            del root['a']
            root.l.clear()
            raise Boom()
    assert root['a'] is node and root.l[0] is node
