"""diff, patch, revert, and snapshots that compare only what changed."""

import pytest

from linksync.testing import ChangeCatcher
from linksync.tracked import diff, patch, revert, snapshot, track
from linksync.tracked import diffing


class Counted:
    """A value that counts how often it is compared."""

    comparisons = 0

    def __init__(self, n):
        self.n = n

    def __eq__(self, other):
        Counted.comparisons += 1
        return isinstance(other, Counted) and other.n == self.n

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __deepcopy__(self, memo):
        return Counted(self.n)

    def __repr__(self):
        return 'Counted(%d)' % self.n


def test_diff_patch_revert():
    a = {'x': 1, 'l': [1, 2, 3], 's': {1}, 'd': {'k': 'v'}}
    b = {'x': 2, 'l': [1], 's': {2}, 'd': {}, 'new': [4]}
    changes = diff(a, b)
    assert patch(changes, a) == b
    assert revert(changes, b) == a
    assert a['x'] == 1  # not in place


def test_values_of_different_types_at_the_top():
    assert patch(diff({'a': 1}, [1]), {'a': 1}) == [1]
    assert patch(diff(1, 2), 1) == 2
    root = track({'a': 1}, persist=False)
    with pytest.raises(TypeError, match='in place'):
        patch(diff(root, [1]), root, in_place=True)


def test_floats_are_compared_exactly():
    assert diff({'f': 1.0}, {'f': 1.0000000000000002}) != []


def test_reverting_removed_list_items_puts_them_back_in_order():
    a = [None, None, []]
    assert revert(diff(a, []), []) == a


def test_patching_a_tracked_structure_in_place_is_one_transaction():
    catcher = ChangeCatcher()
    root = track({'a': 1, 'l': [1]}, callback=catcher.cb, persist=False)
    patch(diff(root, {'a': 2, 'l': [1, 2], 's': {3}}), root, in_place=True)
    assert root == {'a': 2, 'l': [1, 2], 's': {3}}
    assert catcher.calls == 1 and len(catcher.last) == 3


def test_a_snapshot_diff_compares_only_what_changed():
    root = track({'k%d' % i: {'v': Counted(i)} for i in range(2000)},
                 persist=False)
    snap = snapshot(root)
    root['k7']['v'] = Counted(-7)
    del root['k8']
    root['new'] = {'v': Counted(1)}
    Counted.comparisons = 0
    changes = diff(snap, root)
    assert Counted.comparisons <= 3  # dictdiffer: ==, then two NaN checks
    assert sorted(c[0] for c in changes) == ['add', 'change', 'remove']
    assert patch(changes, snap.data) == root
    Counted.comparisons = 0
    diff(snap.data, root)  # without the snapshot: everything compared
    assert Counted.comparisons >= 1998


def test_a_snapshot_of_a_part():
    root = track({'a': {'b': [1]}, 'c': {'d': 1}}, persist=False)
    snap = snapshot(root['a'])
    root['a']['b'].append(2)
    root['c']['d'] = 2  # outside the part: ignored
    assert diff(snap, root['a']) == [('add', ['b'], [(1, 2)])]
    assert snap.areas_for(root['a']) == {('b',): None}
    root['a'] = {'other': 1}  # the part itself replaced: compare all
    assert snap.areas_for(root['a']) is None


def test_a_snapshot_gives_up_recording_past_its_limit(monkeypatch):
    monkeypatch.setattr(diffing, 'MAX_AREAS', 5)
    root = track({}, persist=False)
    snap = snapshot(root)
    for i in range(10):
        root[i] = i
    assert snap.recorder.areas is None
    assert patch(diff(snap, root), snap.data) == root


def test_minimal_areas():
    assert diffing.minimal([('a', 'b'), ('c',), ('a',), ('a', 'x', 'y')]) \
        == [('c',), ('a',)]


def test_patching_a_tracked_structure_gives_a_tracked_detached_copy(tmp_path,
                                                                    monkeypatch):
    """The tinysync idiom: patch(tracked, diff) is a new version of it."""
    from linksync.tracked import tracker_of
    monkeypatch.chdir(tmp_path)
    calls = []
    conf = track({'endpoint': {'address': 'a.example'}, 'retries': [1, 2]},
                 name='conf', callback=calls.append)
    changes = diff(conf, {'endpoint': {'address': 'b.example'},
                          'retries': [1, 2, 3]})
    saved = (tmp_path / 'conf.yaml').read_text()
    copy = patch(changes, conf)
    tracker_of(copy)                    # tracked (TypeError otherwise)
    assert copy.endpoint.address == 'b.example' and copy.retries == [1, 2, 3]
    assert conf.endpoint.address == 'a.example' and conf.retries == [1, 2]
    # Detached: changing the copy saves nothing and calls nobody.
    copy.retries.append(4)
    with copy:
        copy.endpoint.address = 'c.example'
    assert (tmp_path / 'conf.yaml').read_text() == saved and calls == []
    assert conf.retries == [1, 2]
    assert diff(conf, copy) == [
        ('change', ['endpoint', 'address'], ('a.example', 'c.example')),
        ('add', ['retries'], [(2, 3), (3, 4)])]
