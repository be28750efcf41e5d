"""The C implementation of the hot mutations (linksync.tracked._speedups).

Every test of tests/test_tracked_*.py runs with whichever implementation
this process uses (C when the extension was built, unless
LINKSYNC_PURE_PYTHON=1 is set); test_the_tracked_suite_in_pure_python runs
them all again with the Python reference, so `make test` checks both. The
tests here are about what the C code adds: its lock, threads, re-entrant
callbacks, rollback of what it changed, its fallbacks, and references.
"""

import collections.abc
import contextlib
import copy
import ctypes
import gc
import importlib.machinery
import os
import pathlib
import subprocess
import sys
import threading
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from linksync.testing import ChangeCatcher
from linksync.tracked import (
    DictWrapper, ListWrapper, SetWrapper, track, tracker_of, undo, wrappers)

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = pathlib.Path(wrappers.__file__).resolve().parent
PURE = os.environ.get('LINKSYNC_PURE_PYTHON', '').strip() not in ('', '0')


def built():
    """True when the extension was compiled into the package."""
    return any(path.name.startswith('_speedups.') and
               path.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
               for path in PACKAGE.iterdir())


needs_c = pytest.mark.skipif(not wrappers.SPEEDUPS,
                             reason='pure Python (the C extension is not '
                             'in use)')


def tracked(data, **kw):
    catcher = ChangeCatcher()
    root = track(data, 'test', callback=catcher.cb, persist=False, **kw)
    return root, catcher


# -- which implementation ---------------------------------------------------------

def test_the_c_module_is_in_use_when_it_was_built():
    if PURE:
        assert not wrappers.SPEEDUPS
        pytest.skip('LINKSYNC_PURE_PYTHON is set')
    if not built():
        assert not wrappers.SPEEDUPS
        pytest.skip('the C extension was not built (no C compiler?)')
    # Built: it must be what runs, or the fast path silently dropped out.
    assert wrappers.SPEEDUPS
    from linksync.tracked import _speedups
    root = track({'l': [], 's': set()}, persist=False)
    assert isinstance(root, _speedups.DictBase)
    assert type(tracker_of(root).lock) is _speedups.RLock
    # The C methods serve the wrappers, not the Python ones.
    assert ListWrapper.append is _speedups.ListBase.append
    assert ListWrapper.sort is _speedups.ListBase.sort
    assert SetWrapper.add is _speedups.SetBase.add
    assert DictWrapper.update is _speedups.DictBase.update
    assert DictWrapper.__setitem__ is _speedups.DictBase.__setitem__
    assert ListWrapper.__setitem__ is _speedups.ListBase.__setitem__
    for cls, names in wrappers.FAST_METHODS.items():
        for name in names:
            assert name not in cls.__dict__, (cls, name)


@needs_c
@pytest.mark.slow
def test_the_tracked_suite_in_pure_python():
    """All the tests of tracked structures, with LINKSYNC_PURE_PYTHON=1."""
    # This process's path: under buildout's bin/test, the eggs (pytest
    # too) are on sys.path only.
    env = dict(os.environ, LINKSYNC_PURE_PYTHON='1',
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    tests = sorted(str(p.relative_to(ROOT))
                   for p in (ROOT / 'tests').glob('test_tracked_*.py'))
    result = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
         *tests,
         'tests/test_docs.py', '-k', 'not test_docs or tracked'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr
    assert ' passed' in result.stdout


def test_the_implementations_have_the_same_interface():
    root = track({'l': [], 's': set()}, persist=False)
    for value, plain in ((root, {}), (root['l'], []), (root['s'], set())):
        assert type(value).__name__ in ('DictWrapper', 'ListWrapper',
                                        'SetWrapper')
        assert isinstance(value, type(plain))
        assert type(value).__slots__ == ('_tracker', '_parent')
        with pytest.raises(AttributeError):
            value.__dict__
        with pytest.raises(AttributeError):
            object.__setattr__(value, 'other', 1)
        assert type(copy.deepcopy(value)) is type(plain)
        assert type(copy.copy(value)) is type(plain)
    tracker = tracker_of(root)
    tracker.other = 1  # a Tracker still has a __dict__
    assert tracker.__dict__['other'] == 1


# -- the C methods against the Python ones -----------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3),
                    st.text('ab', max_size=2), st.tuples(st.integers(0, 2)))
values = st.recursive(
    scalars, lambda children: st.one_of(
        st.lists(children, max_size=2),
        st.dictionaries(st.sampled_from('ab'), children, max_size=2),
        st.sets(st.integers(0, 3), max_size=2)),
    max_leaves=4)
OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just('d'), st.just('__setitem__'),
              st.tuples(st.sampled_from(['a', 'b', 1, (1,)]), values)),
    st.tuples(st.just('d'), st.just('update'),
              st.tuples(st.dictionaries(st.sampled_from('abc'), values,
                                        max_size=3))),
    st.tuples(st.just('l'), st.just('__setitem__'),
              st.tuples(st.integers(-4, 4), values)),
    st.tuples(st.just('l'), st.just('append'), st.tuples(values)),
    st.tuples(st.just('l'), st.just('sort'), st.just(())),
    st.tuples(st.just('s'), st.just('add'),
              st.tuples(st.one_of(st.integers(0, 3), st.just([])))),
), max_size=12)


def describe(change):
    """What a change says, edits included, as comparable data."""
    edit = change.edit
    if edit is not None:
        edit = (type(edit).__name__,) + tuple(
            getattr(edit, name) for name in type(edit).__slots__
            if name not in ('target', 'order'))
    return (change.func_name, change.args, change.kwargs, change.path,
            edit)


def apply(operations, call, block, **kw):
    """Run `operations` on a new structure with `call(target, name, args)`:
    the structure, the results, and what the callback was told."""
    catcher = ChangeCatcher()
    root = track({'d': {'a': 0}, 'l': [0, [1]], 's': {0}}, persist=False,
                 callback=catcher.cb, **kw)
    results = []
    with contextlib.ExitStack() as stack:
        if block:
            stack.enter_context(root)
        for where, name, args in operations:
            args = copy.deepcopy(args)
            try:
                results.append(call(root[where], name, args))
            except Exception as e:
                results.append(type(e))
    return root, results, [describe(c) for c in catcher.changes]


@needs_c
@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(OPERATIONS, st.sampled_from([{}, {'history': 5}]), st.booleans())
def test_the_c_methods_do_what_the_python_methods_do(operations, kw, block):
    def c(target, name, args):
        return getattr(target, name)(*args)

    def python(target, name, args):
        return wrappers.PYTHON_METHODS[type(target), name](target, *args)
    c_root, c_results, c_changes = apply(operations, c, block, **kw)
    py_root, py_results, py_changes = apply(operations, python, block, **kw)
    assert c_root == py_root
    assert c_results == py_results
    assert c_changes == py_changes


# -- the lock ----------------------------------------------------------------------

def new_lock():
    return tracker_of(track({}, persist=False)).lock


def in_thread(func):
    result = []
    thread = threading.Thread(target=lambda: result.append(func()))
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    return result[0]


def test_the_lock_is_reentrant_and_owned():
    lock = new_lock()
    assert lock.acquire()
    assert lock.acquire(blocking=False)
    with lock:
        assert lock._is_owned()
        assert in_thread(lambda: lock.acquire(blocking=False)) is False
        assert in_thread(lambda: lock._is_owned()) is False
    lock.release()
    lock.release()
    assert not lock._is_owned()
    with pytest.raises(RuntimeError):
        lock.release()
    assert in_thread(lambda: lock.acquire(timeout=1)) is True
    # That thread ended holding it: nobody else gets it.
    assert lock.acquire(blocking=False) is False
    with pytest.raises(RuntimeError):
        lock.release()


def test_the_lock_times_out():
    lock = new_lock()
    with lock:
        assert in_thread(lambda: lock.acquire(timeout=0.05)) is False
        assert in_thread(lambda: lock.acquire(blocking=True,
                                              timeout=0)) is False
    with pytest.raises(ValueError):
        lock.acquire(False, 1)
    with pytest.raises(ValueError):
        lock.acquire(timeout=-2)


def test_the_lock_works_with_a_condition():
    lock = new_lock()
    condition = threading.Condition(lock)
    items = []

    def consumer():
        with condition:
            while not items:
                condition.wait(5)
            return items.pop()
    thread_result = []
    thread = threading.Thread(target=lambda: thread_result.append(
        consumer()))
    thread.start()
    with condition:
        with lock:  # re-entered: wait() must release it completely
            items.append('x')
            condition.notify()
    thread.join(5)
    assert thread_result == ['x']


def test_a_waiting_thread_is_served():
    # Handed over on release: threads that release and take the lock
    # again at once do not starve one that waits.
    lock = new_lock()
    stop = threading.Event()
    got = []

    def hog():
        while not stop.is_set():
            with lock:
                pass
    hogs = [threading.Thread(target=hog) for _ in range(2)]
    for thread in hogs:
        thread.start()
    try:
        for _ in range(20):
            got.append(in_thread(lambda: lock.acquire(timeout=5) and
                                 (lock.release() or True)))
    finally:
        stop.set()
        for thread in hogs:
            thread.join()
    assert all(got)


# -- threads, re-entrancy, rollback ----------------------------------------------

@pytest.mark.parametrize('callback', [False, True])
def test_threads_hammering_one_structure(callback):
    catcher = ChangeCatcher()
    root = track({'d': {}, 'l': [], 's': set(), 'n': [0]}, persist=False,
                 callback=catcher.cb if callback else None)
    threads, rounds = 4, 2000
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    errors = []

    def worker(n):
        try:
            for i in range(rounds):
                root['d']['%d-%d' % (n, i)] = i
                root['l'].append((n, i))
                root['s'].add((n, i))
                root['d'].update({'last-%d' % n: i})
                with root:
                    root['n'][0] = root['n'][0] + 1
        except BaseException as e:  # pragma: no cover
            errors.append(e)
    workers = [threading.Thread(target=worker, args=(n,))
               for n in range(threads)]
    try:
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    total = threads * rounds
    assert root['n'] == [total]
    assert len(root['l']) == len(root['s']) == total
    assert len(root['d']) == total + threads
    for n in range(threads):  # each thread's appends in its order
        assert [i for m, i in root['l'] if m == n] == list(range(rounds))
    if callback:
        assert catcher.calls == 5 * total
    assert not tracker_of(root).lock._is_owned()


def test_a_callback_that_mutates():
    seen = []

    def callback(change):
        seen.append((change.func_name, tuple(change.path)))
        if change.path != ['count']:
            root['count'].append(len(seen))  # re-enters the lock
    root = track({'count': [], 'd': {}, 's': set()}, persist=False,
                 callback=callback)
    root['d']['a'] = 1
    root['s'].add(1)
    root['count'][0:0] = []
    root.update({'x': 1})
    assert root['count'] == [1, 3, 6]
    assert seen[:2] == [('__setitem__', ('d',)), ('append', ('count',))]
    assert not tracker_of(root).lock._is_owned()


def test_an_exception_in_a_block_takes_the_c_changes_back():
    initial = {'d': {'a': 1}, 'l': [1, 2], 's': {1}, 'n': 0}
    root, catcher = tracked(copy.deepcopy(initial))
    with pytest.raises(KeyError):
        with root:
            root['d']['a'] = 2
            root['d']['b'] = {'new': [1]}
            root['d'].update({'a': 3, 'c': [2]})
            root['l'][0] = 10
            root['l'][-1] = {'x': 1}
            root['l'].append([3])
            root['l'].sort(key=str)
            root['s'].add(2)
            root['n'] = 5
            root['missing']
    assert root == initial
    assert catcher.calls == 0
    assert not tracker_of(root).lock._is_owned()


def test_undo_of_the_c_changes():
    root, _ = tracked({'d': {}, 'l': [0], 's': set()}, history=20)
    root['d']['k'] = [1]
    root['d'].update({'k': 2, 'j': {'x': 1}})
    root['l'][0] = 5
    root['l'].append(6)
    root['s'].add(7)
    for _ in range(5):
        assert undo(root)
    assert root == {'d': {}, 'l': [0], 's': set()}


def test_errors_leave_the_lock_free_and_the_structure_unchanged():
    root, catcher = tracked({'d': {}, 'l': [1], 's': set()})
    lock = tracker_of(root).lock
    with pytest.raises(TypeError):
        root['d'][[1]] = 1
    with pytest.raises(TypeError):
        root['d'][[1]] = {'wrapped': 1}
    with pytest.raises(IndexError):
        root['l'][5] = 1
    with pytest.raises(IndexError):
        root['l'][-2] = 1
    with pytest.raises(TypeError):
        root['l']['x'] = 1
    with pytest.raises(TypeError):
        root['s'].add([1])
    with pytest.raises(TypeError):
        root['l'].sort(key=1)
    with pytest.raises(TypeError):
        root['l'].sort(1)

    class Broken(collections.abc.MutableMapping):
        __setitem__ = __delitem__ = None

        def __getitem__(self, key):
            raise ZeroDivisionError()

        def __iter__(self):
            raise ZeroDivisionError()

        def __len__(self):
            return 1
    with pytest.raises(ZeroDivisionError):
        root['d']['x'] = Broken()
    assert root == {'d': {}, 'l': [1], 's': set()}
    assert catcher.calls == 0
    assert in_thread(lambda: lock.acquire(blocking=False))


def test_the_other_cases_fall_back_to_python():
    root, catcher = tracked({'l': [0, 1, 2, 3], 'd': {'a': 1}})
    root['l'][1:3] = [[5]]
    assert catcher.args == (slice(1, 3), [[5]])
    assert type(root['l'][1]) is ListWrapper
    root['l'][True] = 'bool index'      # an index that is not an int
    assert root['l'] == [0, 'bool index', 3]
    del root['l'][0]
    assert catcher.func_name == '__delitem__'
    del root['d']['a']
    assert catcher.path == ['d'] and catcher.func_name == '__delitem__'
    root['d'].update([('x', [1])], y={2})
    assert catcher.args == ([('x', [1])],) and catcher.kwargs == {'y': {2}}
    assert type(root['d']['x']) is ListWrapper
    root['l'].sort(reverse=True, key=str)
    assert catcher.func_name == 'sort'
    assert catcher.kwargs == {'key': str, 'reverse': True}
    with pytest.raises(IndexError):
        root['l'][2 ** 100] = 1
    assert root == {'l': ['bool index', 3], 'd': {'x': [1], 'y': {2}}}
    assert catcher.calls == 6


def test_a_tracker_with_another_lock_uses_the_python_methods():
    root, catcher = tracked({'l': [], 'd': {}, 's': set()})
    tracker = tracker_of(root)
    tracker.lock = threading.RLock()
    root['l'].append(1)
    root['l'][0] = 2
    root['d']['k'] = [1]
    root['d'].update({'j': 1})
    root['s'].add(1)
    root['l'].sort()
    assert catcher.calls == 6
    assert root == {'l': [2], 'd': {'k': [1], 'j': 1}, 's': {1}}


def test_sequence_set_item_is_tracked():
    # C code calling PySequence_SetItem() reaches the wrapper too.
    root, catcher = tracked({'l': [0, 1]})
    set_item = ctypes.pythonapi.PySequence_SetItem
    set_item.argtypes = (ctypes.py_object, ctypes.c_ssize_t,
                         ctypes.py_object)
    set_item(root['l'], -1, {'a': 1})
    assert root['l'] == [0, {'a': 1}]
    assert type(root['l'][1]) is DictWrapper
    assert catcher.path == ['l'] and catcher.func_name == '__setitem__'


# -- references ------------------------------------------------------------------------

class Value:
    """Not atomic, not a container: stored as it is."""


@pytest.mark.parametrize('callback', [None, 'callback', 'history'])
def test_no_references_are_leaked(callback):
    kw = {}
    if callback == 'callback':
        kw['callback'] = lambda change: None
    elif callback == 'history':
        kw['history'] = 3
    root = track({'d': {}, 'l': [None], 's': set(), 'x': []}, persist=False,
                 **kw)
    tracker = tracker_of(root)
    key, value = 'key-%d' % id(root), Value()
    batch = {key: value}
    d, lst, s = root['d'], root['l'], root['s']

    def mutate(n):
        for _ in range(n):
            d[key] = value
            d.update(batch)
            lst[0] = value
            lst.append(value)
            s.add(value)
            s.discard(value)
            del lst[-1]
            root['x'].sort()
            try:
                d[[]] = value
            except TypeError:
                pass
    mutate(1000)  # warm up (caches, history full)
    gc.collect()
    counts = [sys.getrefcount(o) for o in (key, value, batch, tracker,
                                           tracker.lock, d, lst, s)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        mutate(100000 // 8)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert [sys.getrefcount(o) for o in (key, value, batch, tracker,
                                         tracker.lock, d, lst, s)] == counts
    assert grown < 64 * 1024, grown
