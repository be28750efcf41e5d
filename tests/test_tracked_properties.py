"""Property-based tests: tracked structures behave like plain ones, and
patch(diff(a, b), a) == b."""

import copy

from hypothesis import HealthCheck, given, settings, strategies as st

from linksync.testing import ChangeCatcher
from linksync.tracked import (
    DictWrapper, ListWrapper, SetWrapper, diff, patch, revert, redo,
    snapshot, track, tracker_of, undo)
from linksync.tracked.paths import get

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

hashables = st.one_of(st.integers(-3, 3), st.text('ab', max_size=2),
                      st.tuples(st.integers(0, 2)))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5),
                    st.text('xyz', max_size=3),
                    st.floats(allow_nan=False, allow_infinity=False,
                              width=16),
                    st.tuples(hashables))
keys = st.sampled_from(['a', 'b', 'c', 'items', 1, 2])
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(keys, children, max_size=3),
        st.sets(hashables, max_size=3)),
    max_leaves=8)
roots = st.one_of(st.dictionaries(keys, values, max_size=4),
                  st.lists(values, max_size=4),
                  st.sets(hashables, max_size=4))


def stable(value):
    """A sort key for any value: repr, with sets in a fixed order (their
    own order depends on their history)."""
    if isinstance(value, (set, frozenset)):
        return '{%s}' % ', '.join(sorted(stable(v) for v in value))
    if isinstance(value, dict):
        return '{%s}' % ', '.join('%s: %s' % (stable(k), stable(v))
                                  for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return '[%s]' % ', '.join(stable(v) for v in value)
    return repr(value)


def containers(data, path=()):
    """(path, container) for every dict, list and set, root first."""
    found = [(path, data)]
    if isinstance(data, dict):
        items = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return found
    for key, value in items:
        if isinstance(value, (dict, list, set)):
            found.extend(containers(value, path + (key,)))
    return found


# -- the operations, drawn with their arguments ------------------------------------

def dict_ops(draw, d):
    k = draw(keys)
    v = draw(values)
    present = list(d)
    old = draw(st.sampled_from(present)) if present else k
    other = draw(st.dictionaries(keys, values, max_size=2))
    return draw(st.sampled_from([
        ('setitem', lambda t: t.__setitem__(k, copy.deepcopy(v))),
        ('delitem', lambda t: t.__delitem__(old)),
        ('pop', lambda t: t.pop(old)),
        ('pop default', lambda t: t.pop(k, 'default')),
        ('popitem', lambda t: t.popitem()),
        ('setdefault', lambda t: t.setdefault(k, copy.deepcopy(v))),
        ('update', lambda t: t.update(copy.deepcopy(other))),
        ('update pairs', lambda t: t.update(iter(copy.deepcopy(
            list(other.items()))))),
        ('ior', lambda t: t.__ior__(copy.deepcopy(other))),
        ('clear', lambda t: t.clear()),
        ('dot set', lambda t: t.__setattr__('a', copy.deepcopy(v))
         if type(t) is DictWrapper else t.__setitem__('a',
                                                    copy.deepcopy(v))),
    ]))


def list_ops(draw, lst):
    n = len(lst)
    i = draw(st.integers(-n - 1, n + 1))
    j = draw(st.integers(-n - 1, n + 1))
    step = draw(st.sampled_from([None, 1, 2, -1, -2]))
    v = draw(values)
    vs = draw(st.lists(values, max_size=3))
    times = draw(st.integers(-1, 2))
    member = draw(st.sampled_from(lst)) if lst else v
    return draw(st.sampled_from([
        ('append', lambda t: t.append(copy.deepcopy(v))),
        ('extend', lambda t: t.extend(iter(copy.deepcopy(vs)))),
        ('insert', lambda t: t.insert(i, copy.deepcopy(v))),
        ('setitem', lambda t: t.__setitem__(i, copy.deepcopy(v))),
        ('setslice', lambda t: t.__setitem__(slice(i, j, step),
                                             copy.deepcopy(vs))),
        ('delitem', lambda t: t.__delitem__(i)),
        ('delslice', lambda t: t.__delitem__(slice(i, j, step))),
        ('pop', lambda t: t.pop()),
        ('pop i', lambda t: t.pop(i)),
        ('remove', lambda t: t.remove(copy.deepcopy(member))),
        ('clear', lambda t: t.clear()),
        ('sort', lambda t: t.sort(key=stable)),
        ('sort plain', lambda t: t.sort(reverse=True)),
        ('reverse', lambda t: t.reverse()),
        ('iadd', lambda t: t.__iadd__(copy.deepcopy(vs))),
        ('imul', lambda t: t.__imul__(times)),
    ]))


def set_ops(draw, s):
    # No set.pop(): which element it takes depends on the set's history.
    e = draw(hashables)
    member = draw(st.sampled_from(sorted(s, key=stable))) if s else e
    others = draw(st.lists(st.sets(hashables, max_size=3), max_size=2))
    other = draw(st.sets(hashables, max_size=3))
    return draw(st.sampled_from([
        ('add', lambda t: t.add(e)),
        ('discard', lambda t: t.discard(member)),
        ('remove', lambda t: t.remove(member)),
        ('clear', lambda t: t.clear()),
        ('update', lambda t: t.update(*others)),
        ('intersection_update', lambda t: t.intersection_update(*others)),
        ('difference_update', lambda t: t.difference_update(*others)),
        ('symmetric_difference_update',
         lambda t: t.symmetric_difference_update(iter(other))),
        ('ior', lambda t: t.__ior__(set(other))),
        ('iand', lambda t: t.__iand__(frozenset(other))),
        ('isub', lambda t: t.__isub__(set(other))),
        ('ixor', lambda t: t.__ixor__(set(other))),
        ('ior list', lambda t: t.__ior__(list(other))),
    ]))


def draw_op(draw, plain):
    """(path, name, function) of an operation on a container of `plain`."""
    found = containers(plain)
    path, target = found[draw(st.integers(0, len(found) - 1))]
    if isinstance(target, dict):
        name, op = dict_ops(draw, target)
    elif isinstance(target, list):
        name, op = list_ops(draw, target)
    else:
        name, op = set_ops(draw, target)
    return path, name, op


def run(op, target):
    try:
        return 'ok', op(target)
    except Exception as e:
        return 'error', type(e)


def check_tracked(root):
    """Every container is a wrapper of the structure, at the right path."""
    tracker = tracker_of(root)
    for path, container in containers(root):
        assert type(container) in (DictWrapper, ListWrapper, SetWrapper)
        assert container._tracker is tracker
        assert get(root, tracker.path_of(container)) is container


@SETTINGS
@given(roots, st.data())
def test_any_operations_act_as_on_a_plain_structure(initial, data):
    draw = data.draw
    plain = copy.deepcopy(initial)
    catcher = ChangeCatcher()
    root = track(copy.deepcopy(initial), callback=catcher.cb,
                 persist=False, history=100)
    snap = snapshot(root)
    done = 0
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(['op', 'op', 'op', 'block', 'failed']))
        if kind == 'op':
            path, name, op = draw_op(draw, plain)
            seen = len(catcher.changes)
            expected = run(op, get(plain, path))
            got = run(op, get(root, path))
            assert got[0] == expected[0], (name, got, expected)
            if got[0] == 'ok':
                assert got[1] == expected[1], name
            else:
                assert got[1] is expected[1], name
            for change in catcher.changes[seen:]:
                assert get(root, change.path) is change.target
            done += len(catcher.changes) > seen
        else:
            before = copy.deepcopy(plain)
            mirror = copy.deepcopy(plain)
            calls = catcher.calls
            try:
                with root:
                    for _ in range(draw(st.integers(1, 4))):
                        path, name, op = draw_op(draw, mirror)
                        run(op, get(mirror, path))
                        run(op, get(root, path))
                    if kind == 'failed':
                        raise KeyboardInterrupt()
            except KeyboardInterrupt:
                assert root == before
                assert catcher.calls == calls
            else:
                plain = mirror
                done += catcher.calls > calls
        assert root == plain
        check_tracked(root)
    # A diff against the snapshot compares the changed parts only, and
    # still finds every difference.
    assert patch(diff(snap, root), snap.data) == root
    assert revert(diff(snap, root), plain) == initial
    # Every change (or block) can be undone, and redone.
    final = copy.deepcopy(root)
    for _ in range(done):
        assert undo(root)
    assert root == initial
    check_tracked(root)
    for _ in range(done):
        assert redo(root)
    assert root == final
    check_tracked(root)


@SETTINGS
@given(values, values)
def test_patch_of_a_diff_gives_the_second(a, b):
    changes = diff(a, b)
    assert patch(changes, a) == b
    assert revert(changes, b) == a


@SETTINGS
@given(st.dictionaries(keys, values, max_size=4),
       st.dictionaries(keys, values, max_size=4))
def test_patching_a_tracked_structure_in_place(a, b):
    catcher = ChangeCatcher()
    root = track(copy.deepcopy(a), callback=catcher.cb, persist=False)
    patch(diff(root, b), root, in_place=True)
    assert root == b
    assert catcher.calls <= 1  # one transaction
    check_tracked(root)
