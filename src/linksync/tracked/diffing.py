"""Diff, patch and revert (dictdiffer), and snapshots that make diffs cheap.

:func:`diff` compares two structures the way ``dictdiffer.diff`` does
(paths are lists, numbers are compared exactly) and gives its list of
``('change' | 'add' | 'remove', path, ...)`` entries; :func:`patch` and
:func:`revert` apply such a list forwards and backwards.

A :func:`snapshot` of a tracked structure is a plain copy that goes on
recording which parts of the structure change after it was taken (the
paths the tracker reports). ``diff(snap, tracked)`` then compares only
those parts: after one change to a structure of a hundred thousand keys it
looks at one key, not all of them.
"""

import dictdiffer

from linksync.tracked.changes import Member
from linksync.tracked.tracker import track, tracker_of
from linksync.tracked.values import plain_copy

#: Past this many distinct changed areas a recorder gives up and asks for
#: a full comparison.
MAX_AREAS = 10000


class AreaRecorder:
    """Collects the paths changed in a tracked structure (an observer)."""

    needs_edits = True

    def __init__(self):
        self.areas = {}  # a dict: the order changes came in

    def committed(self, changes):
        areas = self.areas
        if areas is None:
            return
        for change in changes:
            for area in change.areas():
                if area and type(area[-1]) is Member:
                    area = area[:-1]
                areas[area] = None
        if len(areas) > MAX_AREAS:
            self.areas = None

    def take(self):
        """The areas recorded so far (None: everything); start afresh."""
        areas, self.areas = self.areas, {}
        return areas

    def add(self, areas):
        """Record `areas` again (a sync that failed puts them back)."""
        if self.areas is None or areas is None:
            self.areas = None
        else:
            self.areas.update(dict.fromkeys(areas))


class Snapshot:
    """A plain copy of a tracked structure, and what changed since."""

    def __init__(self, tracked):
        tracker = tracker_of(tracked)
        with tracker.lock:
            self.data = plain_copy(tracked)
            self.base = tuple(tracker.path_of(tracked) or ())
            self.recorder = AreaRecorder()
            tracker.add_observer(self.recorder)
        self.tracked = tracked

    def areas_for(self, other):
        """The areas to compare `other` on (None: all of it)."""
        if self.tracked is not other:
            return None
        tracker = tracker_of(other)
        if tuple(tracker.path_of(other) or ()) != self.base:
            return None  # moved since (a list index shifted): compare all
        areas = self.recorder.areas
        if areas is None:
            return None
        base = self.base
        relative = {}
        for area in areas:
            if area[:len(base)] == base:
                relative[area[len(base):]] = None
            elif base[:len(area)] == area:
                return None  # replaced from above
        return relative

    def __repr__(self):
        return '<Snapshot %r>' % (self.data,)


def snapshot(tracked):
    """A Snapshot of `tracked` (its root, or any part of it)."""
    return Snapshot(tracked)


def minimal(areas):
    """The areas that no other area contains, in their order."""
    kept = set()
    for area in sorted(set(areas), key=len):
        if not any(area[:i] in kept for i in range(len(area))):
            kept.add(area)
    result = []
    for area in areas:
        if area in kept:
            kept.discard(area)
            result.append(area)
    return result


def diff(first, second, areas=None):
    """The dictdiffer entries turning `first` into `second` (a list).

    Either may be a Snapshot (of the other, when tracked): only the areas
    changed since the snapshot are compared. `areas` (paths) restricts the
    comparison explicitly.
    """
    if isinstance(first, Snapshot):
        if areas is None:
            areas = first.areas_for(second)
        first = first.data
    elif isinstance(second, Snapshot):
        if areas is None:
            areas = second.areas_for(first)
        second = second.data
    if areas is None:
        return _diff(first, second, [])
    result = []
    regions = set()
    for area in minimal(areas):
        a, b, node = first, second, []
        for key in area:
            if isinstance(a, dict) and isinstance(b, dict):
                in_a, in_b = _has(a, key), _has(b, key)
                if in_a and in_b:
                    a, b = a[key], b[key]
                    node.append(key)
                    continue
                region = (tuple(node), 'key', key)
                if region not in regions:
                    regions.add(region)
                    result.extend(_diff({key: a[key]} if in_a else {},
                                        {key: b[key]} if in_b else {}, node))
                break
            region = (tuple(node), 'all', None)
            if region not in regions:
                regions.add(region)
                result.extend(_diff(a, b, node))
            break
        else:
            region = (tuple(node), 'all', None)
            if region not in regions:
                regions.add(region)
                result.extend(_diff(a, b, node))
    return result


def _has(mapping, key):
    try:
        return key in mapping
    except TypeError:
        return False


def _diff(first, second, node):
    return list(dictdiffer.diff(first, second, node=list(node) or None,
                                dot_notation=False, tolerance=0))


def patch(diff_result, destination, in_place=False):
    """Apply the entries of :func:`diff` to `destination`.

    A copy is patched and returned unless `in_place`; a tracked destination
    patched in place takes every entry in one transaction (one save, one
    callback). The copy of a tracked destination is tracked too, as
    ``track(..., persist=False)`` makes it: with the destination's dot
    access, but detached (no name, nothing saved, no callback), so that
    patching never writes over the destination's file.
    """
    entries = list(diff_result)
    whole = [e for e in entries if e[0] == 'change' and not e[1]]
    if whole:
        # The values differ in type at the top: dictdiffer has no parent
        # to patch; the result is the new value.
        if in_place:
            raise TypeError('cannot patch a %s in place into a %s' % (
                type(destination).__name__, type(whole[-1][2][1]).__name__))
        return plain_copy(whole[-1][2][1])
    try:
        tracker = tracker_of(destination)
    except TypeError:
        tracker = None
    if tracker is None:
        return dictdiffer.patch(entries, destination, in_place=in_place)
    if not in_place:
        patched = dictdiffer.patch(entries, plain_copy(destination),
                                   in_place=True)
        return track(patched, persist=False, dot_access=tracker.dot_access)
    with destination:
        return dictdiffer.patch(entries, destination, in_place=True)


def swap(diff_result):
    """The entries that undo `diff_result` (a list, last entry first).

    Unlike ``dictdiffer.swap``, removed list items come back in ascending
    order, and the entries are taken back in reverse order, as list
    indexes need.
    """
    undo = []
    for action, node, changes in reversed(list(diff_result)):
        if action == 'change':
            undo.append(('change', node, (changes[1], changes[0])))
        else:
            undo.append(('remove' if action == 'add' else 'add', node,
                         list(reversed(changes))))
    return undo


def revert(diff_result, destination, in_place=False):
    """Apply the entries of :func:`diff` backwards (see :func:`patch`)."""
    return patch(swap(diff_result), destination, in_place)

