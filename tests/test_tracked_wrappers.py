"""Tracked dicts, lists and sets: every mutation is reported, nothing else
changes."""

import copy
import json
import pickle

import pytest

from linksync.testing import ChangeCatcher
from linksync.tracked import (
    DictWrapper, ListWrapper, SetWrapper, track, tracker_of)
from linksync.tracked.paths import get


def tracked(data, **kw):
    catcher = ChangeCatcher()
    root = track(data, 'test', callback=catcher.cb, persist=False, **kw)
    return root, catcher


def test_types_and_isinstance():
    root, _ = tracked({'d': {}, 'l': [[]], 's': set()})
    assert type(root) is DictWrapper and isinstance(root, dict)
    assert type(root['d']) is DictWrapper
    assert type(root['l']) is ListWrapper and isinstance(root['l'], list)
    assert type(root['l'][0]) is ListWrapper
    assert type(root['s']) is SetWrapper and isinstance(root['s'], set)
    assert root == {'d': {}, 'l': [[]], 's': set()}
    assert repr(root) == "{'d': {}, 'l': [[]], 's': set()}"


def test_the_original_is_not_changed():
    data = {'l': [1]}
    root, _ = tracked(data)
    root['l'].append(2)
    assert data == {'l': [1]}


def test_wrappers_are_made_by_track_only():
    with pytest.raises(TypeError, match='track'):
        DictWrapper()


def test_track_refuses_other_types():
    with pytest.raises(TypeError, match='dict, list or set'):
        track(42)


def test_values_added_later_are_tracked_at_any_depth():
    root, catcher = tracked({})
    root['a'] = {'b': [{'c': set()}]}
    assert type(root['a']['b'][0]['c']) is SetWrapper
    root['a']['b'][0]['c'].add(1)
    assert catcher.path == ['a', 'b', 0, 'c']
    assert catcher.func_name == 'add'
    root.a.b.append({'x': []})
    root.a.b[1].x.extend([1, 2])
    assert catcher.path == ['a', 'b', 1, 'x']
    assert catcher.args == ([1, 2],)


def test_the_names_added():
    root, _ = tracked({'l': [], 's': set()})
    common = {'_tracker', '_parent', '__enter__', '__exit__', '__slots__',
              '__module__', '__copy__', '__deepcopy__'}
    # zope.interface caches declarations on classes it was asked about.
    zope = {'__implemented__', '__providedBy__', '__provides__'}
    assert set(dir(root)) - set(dir({})) - zope == common | {'__getattr__'}
    assert set(dir(root.l)) - set(dir([])) - zope == common
    assert set(dir(root.s)) - set(dir(set())) - zope == common


def test_dot_access():
    root, catcher = tracked({'endpoint': {'protocol': 'HTTP'}})
    assert root.endpoint.protocol == 'HTTP'
    root.endpoint.protocol = 'HTTPS'
    assert root == {'endpoint': {'protocol': 'HTTPS'}}
    assert (catcher.path, catcher.func_name, catcher.args) == \
        (['endpoint'], '__setattr__', ('protocol', 'HTTPS'))
    del root.endpoint.protocol
    assert catcher.func_name == '__delattr__'
    assert root.endpoint == {}
    with pytest.raises(AttributeError):
        root.missing
    with pytest.raises(AttributeError):
        del root.missing
    assert root.items().__class__.__name__ == 'dict_items'


def test_dot_access_switched_off():
    root, _ = tracked({'a': 1}, dot_access=False)
    with pytest.raises(AttributeError):
        root.a
    with pytest.raises(AttributeError):
        root.b = 2
    assert root == {'a': 1}


# -- every mutation is reported ---------------------------------------------------

DICT_OPS = [
    (lambda d: d.__setitem__('x', 1), '__setitem__', ('x', 1), {}),
    (lambda d: d.__delitem__('a'), '__delitem__', ('a',), {}),
    (lambda d: d.pop('a'), 'pop', ('a',), {}),
    (lambda d: d.pop('a', None), 'pop', ('a', None), {}),
    (lambda d: d.popitem(), 'popitem', (), {}),
    (lambda d: d.setdefault('x', 3), 'setdefault', ('x', 3), {}),
    (lambda d: d.update({'x': 1}, y=2), 'update', ({'x': 1},), {'y': 2}),
    (lambda d: d.update(iter([('x', 1)])), 'update', ([('x', 1)],), {}),
    (lambda d: d.clear(), 'clear', (), {}),
    (lambda d: d.__ior__({'x': 1}), '__ior__', ({'x': 1},), {}),
]


@pytest.mark.parametrize('op,name,args,kwargs', DICT_OPS)
def test_dict_mutations_are_reported(op, name, args, kwargs):
    root, catcher = tracked({'d': {'a': 0}})
    plain = {'a': 0}
    op(root['d'])
    op(plain)
    assert root['d'] == plain
    assert catcher.calls == 1
    assert (catcher.path, catcher.func_name, catcher.args, catcher.kwargs) \
        == (['d'], name, args, kwargs)
    assert catcher.target is root['d'] and catcher.root is root
    assert catcher.name == 'test'


def test_dict_augmented_assignment_reports_both_calls():
    root, catcher = tracked({'d': {'a': 0}})
    root['d'] |= {'b': 1}
    assert [c.func_name for c in catcher.changes] == \
        ['__ior__', '__setitem__']


def test_no_report_without_a_change():
    root, catcher = tracked({'a': 1, 'l': [], 's': set()})
    assert root.setdefault('a', 2) == 1
    assert root.pop('missing', 'default') == 'default'
    with pytest.raises(KeyError):
        del root['missing']
    with pytest.raises(IndexError):
        root.l.pop()
    with pytest.raises(KeyError):
        root.s.remove(1)
    assert catcher.calls == 0


LIST_OPS = [
    (lambda l: l.append(9), 'append', (9,), {}),
    (lambda l: l.extend(x for x in (7, 8)), 'extend', ([7, 8],), {}),
    (lambda l: l.insert(-10, 9), 'insert', (-10, 9), {}),
    (lambda l: l.__setitem__(1, 9), '__setitem__', (1, 9), {}),
    (lambda l: l.__setitem__(slice(1, 3), [9]), '__setitem__',
     (slice(1, 3), [9]), {}),
    (lambda l: l.__setitem__(slice(None, None, 2), [7, 8]), '__setitem__',
     (slice(None, None, 2), [7, 8]), {}),
    (lambda l: l.__delitem__(-1), '__delitem__', (-1,), {}),
    (lambda l: l.__delitem__(slice(0, 2)), '__delitem__', (slice(0, 2),),
     {}),
    (lambda l: l.__delitem__(slice(None, None, 2)), '__delitem__',
     (slice(None, None, 2),), {}),
    (lambda l: l.pop(), 'pop', (-1,), {}),
    (lambda l: l.pop(0), 'pop', (0,), {}),
    (lambda l: l.remove(2), 'remove', (2,), {}),
    (lambda l: l.clear(), 'clear', (), {}),
    (lambda l: l.sort(key=lambda x: -x), 'sort', (), None),
    (lambda l: l.sort(reverse=True), 'sort', (), {'reverse': True}),
    (lambda l: l.reverse(), 'reverse', (), {}),
    (lambda l: l.__iadd__([5]), '__iadd__', ([5],), {}),
    (lambda l: l.__imul__(2), '__imul__', (2,), {}),
]


@pytest.mark.parametrize('op,name,args,kwargs', LIST_OPS)
def test_list_mutations_are_reported(op, name, args, kwargs):
    root, catcher = tracked({'l': [3, 1, 2]})
    plain = [3, 1, 2]
    op(root['l'])
    op(plain)
    assert root['l'] == plain
    assert catcher.calls == 1
    assert (catcher.path, catcher.func_name, catcher.args) == \
        (['l'], name, args)
    if kwargs is not None:
        assert catcher.kwargs == kwargs
    assert catcher.target is root['l']


def test_list_augmented_assignment_through_a_dict():
    root, catcher = tracked({'l': [1]})
    root.l += [2]
    root['l'] *= 2
    assert root.l == [1, 2, 1, 2]
    assert [c.func_name for c in catcher.changes] == \
        ['__iadd__', '__setattr__', '__imul__', '__setitem__']


SET_OPS = [
    (lambda s: s.add(9), 'add', (9,)),
    (lambda s: s.discard(1), 'discard', (1,)),
    (lambda s: s.remove(1), 'remove', (1,)),
    (lambda s: s.clear(), 'clear', ()),
    (lambda s: s.update([7], {8}), 'update', ([7], [8])),
    (lambda s: s.intersection_update({1, 2}), 'intersection_update',
     ([1, 2],)),
    (lambda s: s.difference_update({1}), 'difference_update', ([1],)),
    (lambda s: s.symmetric_difference_update({1, 5}),
     'symmetric_difference_update', ([1, 5],)),
    (lambda s: s.__ior__({5}), '__ior__', ({5},)),
    (lambda s: s.__iand__({1}), '__iand__', ({1},)),
    (lambda s: s.__isub__({1}), '__isub__', ({1},)),
    (lambda s: s.__ixor__({1, 5}), '__ixor__', ({1, 5},)),
]


@pytest.mark.parametrize('op,name,args', SET_OPS)
def test_set_mutations_are_reported(op, name, args):
    root, catcher = tracked({'s': {1, 2, 3}})
    plain = {1, 2, 3}
    op(root['s'])
    op(plain)
    assert root['s'] == plain
    assert catcher.calls == 1
    assert (catcher.path, catcher.func_name) == (['s'], name)
    assert [sorted(a) if isinstance(a, (set, list)) else a
            for a in catcher.args] == \
        [sorted(a) if isinstance(a, (set, list)) else a for a in args]


def test_set_pop_is_reported():
    root, catcher = tracked({'s': {1}})
    assert root.s.pop() == 1
    assert catcher.func_name == 'pop' and root.s == set()


def test_set_operators_with_non_sets_are_refused_like_plain_sets():
    root, catcher = tracked({'s': {1}})
    s = root['s']
    with pytest.raises(TypeError):
        s |= [2]
    assert catcher.calls == 0


def test_root_changes_have_an_empty_path():
    root, catcher = tracked([1])
    root.append(2)
    assert catcher.path == [] and catcher.target is root


def test_paths_follow_list_items_when_they_move():
    root, catcher = tracked({'rows': [{'n': 1}, {'n': 2}]})
    second = root.rows[1]
    root.rows.insert(0, {'n': 0})
    second['n'] = 20
    assert catcher.path == ['rows', 2]
    assert get(root, catcher.path) is second


def test_a_removed_part_is_no_longer_reported():
    root, catcher = tracked({'a': {'b': 1}, 'l': [[1]]})
    a = root.pop('a')
    inner = root.l.pop()
    calls = catcher.calls
    a['b'] = 2
    inner.append(2)
    assert catcher.calls == calls
    root['moved'] = a          # back in the structure: reported again
    a['b'] = 3
    assert catcher.path == ['moved']


def test_a_part_of_another_structure_is_copied():
    one, _ = tracked({'x': {'y': 1}})
    two, catcher = tracked({})
    two['x'] = one['x']
    assert two['x'] is not one['x']
    assert tracker_of(two['x']) is tracker_of(two)
    one.x.y = 5
    assert two == {'x': {'y': 1}}


def test_copies_and_pickles_are_plain():
    root, _ = tracked({'a': [1, {'b': {2}}]})
    for other in (copy.deepcopy(root), pickle.loads(pickle.dumps(root)),
                  json.loads(json.dumps({'a': root['a'][:1]}))):
        assert other == root or other == {'a': [1]}
        assert type(other) is dict
    deep = copy.deepcopy(root)
    assert type(deep['a']) is list and type(deep['a'][1]['b']) is set
    assert type(copy.copy(root)) is dict
    assert type(root.a.copy()) is list


def test_non_tree_values_are_shared_like_plain_data():
    shared = [1]
    root, catcher = tracked({'a': shared, 'b': shared})
    assert root['a'] is root['b']
    root['a'].append(2)
    assert root['b'] == [1, 2]


def test_other_mappings_sequences_and_sets_become_wrappers():
    import collections
    root, _ = tracked({'od': collections.OrderedDict(a=1),
                       'dq': collections.deque([1]), 'b': bytearray(b'x')})
    assert type(root['od']) is DictWrapper
    assert type(root['dq']) is ListWrapper
    assert type(root['b']) is bytearray


def test_callback_can_be_set_later():
    root = track([], persist=False)
    catcher = ChangeCatcher()
    root.append(1)
    tracker_of(root).callback = catcher.cb
    root.append(2)
    assert catcher.calls == 1 and catcher.args == (2,)


def test_the_interfaces_are_provided(tmp_path):
    from zope.interface.verify import verifyObject
    from linksync.tracked.interfaces import (IChange, ISyncDevice, ISyncHub,
                                             ITrackedBackend, ITracker)
    from linksync.tracked.devicesync import SyncDevice, SyncHub
    from linksync.tracked.formats import FORMATS
    root, catcher = tracked({})
    root['a'] = 1
    assert verifyObject(ITracker, tracker_of(root))
    assert verifyObject(IChange, catcher.change)
    for factory in FORMATS.values():
        assert verifyObject(ITrackedBackend,
                            factory(str(tmp_path / 'x')))
    named = track({}, 'named', persist=False)
    assert verifyObject(ISyncHub, SyncHub())
    assert verifyObject(ISyncDevice, SyncDevice(named, 'http://127.0.0.1:9/',
                                                'dev'))


def test_a_part_stored_twice_is_shared_like_plain_data():
    root, catcher = tracked({'y': [1]})
    root['x'] = {'a': root['y']}
    assert root['x']['a'] is root['y']
    root['y'].append(2)
    assert root == {'y': [1, 2], 'x': {'a': [1, 2]}}
    assert catcher.path == ['x', 'a']  # where it was stored last
