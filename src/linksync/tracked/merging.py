"""Applying diffs strictly to shadows, and merging them into structures.

Device sync (:mod:`linksync.tracked.devicesync`) keeps a shadow (plain
data) per partner and sends diffs (:func:`linksync.tracked.diffing.diff`
entries) between them. Shadows take diffs strictly
(:func:`apply_strict`: every entry must find what it expects, or nothing
changes). The tracked structures take them path by path (:func:`put`),
where the conflict rule allows.

A merge path (:func:`merge_paths`) is the path of a dict key, of a set
element (:class:`~linksync.tracked.changes.Member`), or of a whole list:
lists are merged as one value (concurrent edits to one list conflict).
"""

from linksync.tracked.changes import MISSING, Member
from linksync.tracked.diffing import diff, minimal, patch, swap
from linksync.tracked.paths import get, show
from linksync.tracked.values import plain_copy


class SyncError(Exception):
    """Sync failed; the message says why (nothing was lost)."""


def whole_lists(path, data):
    """`path`, cut at the first list it enters in `data`."""
    node = data
    for i, step in enumerate(path):
        if isinstance(node, list):
            return tuple(path[:i])
        if type(step) is Member or not isinstance(node, dict):
            break
        node = node.get(step, MISSING) if _hashable(step) else MISSING
    return tuple(path)


def _hashable(key):
    try:
        hash(key)
    except TypeError:
        return False
    return True


def merge_paths(entries, old):
    """The merge paths diff `entries` change in `old` (none inside
    another)."""
    paths = set()
    for op, node, changes in entries:
        node = tuple(node)
        if op == 'change':
            found = [node]
        else:
            container = get(old, node)
            if isinstance(container, (set, frozenset)):
                found = [node + (Member(e),)
                         for _, elements in changes for e in elements]
            elif isinstance(container, dict):
                found = [node + (key,) for key, _ in changes]
            else:
                found = [node]
        paths.update(whole_lists(p, old) for p in found)
    return minimal(paths)


def strip_members(paths):
    """Paths for diffing (a dict, ordered): a set element's path becomes
    the set's."""
    return dict.fromkeys(p[:-1] if p and type(p[-1]) is Member else p
                         for p in paths)


# -- shadows -----------------------------------------------------------------------

def apply_strict(entries, data):
    """Apply diff `entries` to plain `data` in place, all or nothing.

    Every entry must find the value it says was there; otherwise the
    entries applied so far are taken back and SyncError says which entry
    did not fit.
    """
    done = []
    try:
        for entry in entries:
            _apply(entry, data)
            done.append(entry)
    except Exception as e:
        for entry in reversed(done):
            _apply(swap([entry])[0], data)
        if isinstance(e, SyncError):
            raise
        raise SyncError('an edit does not apply (%s: %s)' % (
            type(e).__name__, e)) from None


def _lookup(data, node):
    for step in node:
        if isinstance(data, dict):
            data = data[step]
        elif isinstance(data, list) and type(step) is int and \
                0 <= step < len(data):
            data = data[step]
        else:
            raise SyncError('no container at %s' % show(node))
    return data


def _same(a, b):
    return a is b or a == b or (a != a and b != b)


def _apply(entry, data):
    if not isinstance(entry, (tuple, list)) or len(entry) != 3:
        raise SyncError('an edit must be (action, path, changes)')
    op, node, changes = entry
    if not isinstance(node, list):
        raise SyncError('the path of an edit must be an array')
    if op == 'change':
        old, new = changes
        if not node:
            raise SyncError('an edit cannot replace the whole structure')
        parent = _lookup(data, node[:-1])
        key = node[-1]
        if isinstance(parent, list) and not (
                type(key) is int and 0 <= key < len(parent)):
            raise SyncError('no item %r at %s' % (key, show(node[:-1])))
        if not isinstance(parent, (dict, list)) or \
                not _same(parent[key], old):
            raise SyncError('the value at %s is not the one the edit '
                            'changes' % show(node))
        parent[key] = plain_copy(new)
    elif op in ('add', 'remove'):
        container = _lookup(data, node)
        for key, value in changes:
            _add_remove(op, container, key, value, node)
    else:
        raise SyncError('unknown edit action %r' % (op,))


def _add_remove(op, container, key, value, node):
    adding = op == 'add'
    if isinstance(container, set):
        if not isinstance(value, (set, frozenset)):
            raise SyncError('set edits carry sets')
        if adding and not container.isdisjoint(value) or \
                not adding and not value <= container:
            raise SyncError('the set at %s does not match the edit'
                            % show(node))
        (container.update if adding else container.difference_update)(value)
    elif isinstance(container, dict):
        if adding == (key in container) or \
                not adding and not _same(container[key], value):
            raise SyncError('the key %r at %s does not match the edit' % (
                key, show(node)))
        if adding:
            container[key] = plain_copy(value)
        else:
            del container[key]
    elif isinstance(container, list):
        limit = len(container) + (1 if adding else 0)
        if type(key) is not int or not 0 <= key < limit or \
                not adding and not _same(container[key], value):
            raise SyncError('item %r of the list at %s does not match the '
                            'edit' % (key, show(node)))
        if adding:
            container.insert(key, plain_copy(value))
        else:
            del container[key]
    else:
        raise SyncError('no container at %s' % show(node))


# -- tracked structures ----------------------------------------------------------------

def put(target, path, source):
    """Make `target` (tracked) hold at `path` what `source` holds there.

    What is missing on the way is copied from `source` whole; a value
    `source` lacks is deleted from `target`. Call it inside a transaction
    of `target`.
    """
    if path and type(path[-1]) is Member:
        container = get(target, path[:-1])
        if isinstance(container, set) and \
                isinstance(get(source, path[:-1]), (set, frozenset)):
            element = path[-1].element
            if get(source, path):
                container.add(element)
            else:
                container.discard(element)
            return
        path = path[:-1]
    if not path:
        patch(diff(target, source), target, in_place=True)
        return
    node = target
    for i, step in enumerate(path):
        last = i == len(path) - 1
        child = node.get(step, MISSING) if isinstance(node, dict) \
            else MISSING
        if not last and isinstance(child, dict):
            node = child
            continue
        value = get(source, path[:i + 1])
        if value is MISSING:
            if isinstance(node, dict) and child is not MISSING:
                del node[step]
        else:
            node[step] = plain_copy(value)
        return
