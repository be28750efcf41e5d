"""The containers of change records in one bucket of the track."""

import math

import persistent
from BTrees.OOBTree import OOBTree
from ZODB.POSException import ConflictError


def object_key(obj):
    """The key naming `obj` in change records: (class name, identity).

    The identity is the ``url`` or ``id`` attribute (a str), or the object
    itself when it is a str; anything else needs an explicit key.
    """
    if isinstance(obj, str):
        return ('str', obj)
    for attribute in ('url', 'id'):
        value = getattr(obj, attribute, None)
        if isinstance(value, str):
            return (type(obj).__name__, value)
    raise TypeError('cannot name %r in a change record: give a key' % (obj,))


class ActionWrapper:
    """A change record: the object, the set of action flags, the time.

    `obj` is a reference to the changed object (a persistent object is
    stored as a reference); `context` an optional second one (the client of
    a registration). Records are ordered and compared by (timestamp, key,
    actions) only, plain data that never needs the objects loaded, not even
    in ZODB conflict resolution.

    >>> ActionWrapper('x', ['b', 'a', 'b'], 12.5).actions
    ('a', 'b')
    >>> ActionWrapper('x', [], 1)
    Traceback (most recent call last):
    ...
    ValueError: a change record needs at least one action flag
    """

    __slots__ = ('obj', 'actions', 'timestamp', 'key', 'context')

    def __init__(self, obj, actions, timestamp, key=None, context=None):
        if isinstance(actions, str) and actions:
            actions = (actions,)            # the common case, kept fast
        else:
            actions = tuple(sorted(set(actions)))
            if not actions:
                raise ValueError('a change record needs at least one action '
                                 'flag')
            if not all(isinstance(a, str) and a for a in actions):
                raise TypeError('action flags are non-empty strings: %r'
                                % (actions,))
        if isinstance(timestamp, bool) or \
                not isinstance(timestamp, (int, float)) or \
                not math.isfinite(timestamp):
            raise TypeError('the timestamp of a change record is a finite '
                            'number of seconds, not %r' % (timestamp,))
        self.obj = obj
        self.actions = actions
        self.timestamp = timestamp
        self.key = object_key(obj) if key is None else tuple(key)
        if not self.key:
            raise ValueError('a change record needs a key naming its object')
        self.context = context

    @property
    def sort_key(self):
        return (self.timestamp, self.key, self.actions)

    def _stored(self):
        """(key, value) as kept in a bucket container."""
        return self.sort_key, (self.obj, self.context)

    @classmethod
    def _load(cls, sort_key, value):
        record = cls.__new__(cls)
        record.timestamp, record.key, record.actions = sort_key
        record.obj, record.context = value
        return record

    def __eq__(self, other):
        if not isinstance(other, ActionWrapper):
            return NotImplemented
        return self.sort_key == other.sort_key

    def __lt__(self, other):
        if not isinstance(other, ActionWrapper):
            return NotImplemented
        return self.sort_key < other.sort_key

    def __hash__(self):
        return hash(self.sort_key)

    def __repr__(self):
        subject = repr(self.obj) if self.context is None else \
            '%r, %r' % (self.obj, self.context)
        return '<ActionWrapper@0x%x (%s) [%s] %d>' % (
            id(self), subject, ','.join(self.actions), self.timestamp)


# -- bucket containers ----------------------------------------------------------

class _Container(persistent.Persistent):
    """What the bucket containers offer (records oldest first).

    A container is *closed* (:meth:`close`) when no record may be added
    any more (linksync.agents.SyncManager.close). Every addition writes
    the container itself (:attr:`_adds`), so an addition and a close
    committed at once conflict, and the writer retries; two additions
    merge (:meth:`_p_resolveConflict`).
    """

    closed = False
    #: Additions so far (what makes each one write the container).
    _adds = 0

    def close(self):
        if not self.closed:
            self.closed = True

    def _added(self, count=1):
        if count:
            self._adds += count

    def _p_resolveConflict(self, old, committed, new):
        def closed(state):
            return (state or {}).get('closed', False)
        if closed(committed) != closed(old) or closed(new) != closed(old):
            raise ConflictError('records were added to a bucket of the '
                                'change track that was closed meanwhile')
        result = dict(committed)
        result['_adds'] = committed.get('_adds', 0) + new.get('_adds', 0) \
            - (old or {}).get('_adds', 0)
        return result

    def newest_first(self):
        return reversed(list(self))

    def records(self, kinds=None):
        """The records, oldest first; with `kinds`, only those whose key
        starts with one of them (``'URL'``, ``'Registration'``)."""
        if kinds is None:
            return iter(self)
        return (record for record in self if record.key[0] in kinds)

    def is_empty(self):
        return not len(self)


class RecordLog(_Container):
    """Records in the order they were added; duplicates are kept.

    Two transactions appending to the same log do not conflict: the appends
    of both are kept, the committed ones first.
    """

    def __init__(self):
        self._items = []

    def add(self, record):
        self._items.append(record._stored())
        self._p_changed = True
        return True

    def __iter__(self):
        return (ActionWrapper._load(k, v) for k, v in self._items)

    def __len__(self):
        return len(self._items)

    def is_empty(self):
        return not self._items

    def _p_resolveConflict(self, old, committed, new):
        # Only the sort keys are compared: the values hold references that
        # conflict resolution cannot compare.
        def keys(items):
            return [item[0] for item in items]
        o, c, n = (state.get('_items', []) for state in (old, committed, new))
        if keys(c[:len(o)]) != keys(o) or keys(n[:len(o)]) != keys(o):
            raise ConflictError('records were removed from a record log')
        result = _Container._p_resolveConflict(self, old, committed, new)
        result['_items'] = list(c) + list(n[len(o):])
        return result


class RecordSet(_Container):
    """Records ordered by (timestamp, key, actions), without duplicates.

    The records live in a BTree, which resolves concurrent insertions of
    different records.
    """

    def __init__(self):
        self._records = OOBTree()

    def add(self, record):
        key, value = record._stored()
        added = bool(self._records.insert(key, value))
        self._added(added)
        return added

    def __iter__(self):
        return (ActionWrapper._load(k, v) for k, v in self._records.items())

    def __len__(self):
        return len(self._records)

    def is_empty(self):
        # Without counting: a BTree's length walks all its buckets.
        return not self._records


class RecordRun(persistent.Persistent):
    """Records of one family of a :class:`RecordGroups`: their context,
    and their last key parts (sorted) with their objects."""

    lasts = objs = ()

    def __init__(self, context=None):
        self.context = context


#: The most records one entry of a :class:`RecordGroups` holds.
GROUP_SIZE = 256

#: Runs of at most this many records are kept in the BTree's buckets
#: themselves, as ``(context, last parts, objects)`` tuples: a checker
#: result's state change is a family of one, and a persistent object of
#: its own would cost twice a RecordSet entry.
INLINE_SIZE = 8


class FamilyTree(OOBTree):
    """The BTree of a :class:`RecordGroups`: an OOBTree whose buckets hold
    up to 120 entries instead of 30.

    Every writer adds its families at the end of the tree (their keys
    start with the time), so the writers of a time bucket all change its
    last BTree bucket. ZODB merges two such additions, unless one of them
    splits the bucket: then the other transaction fails and is retried.
    Those splits were the only conflicts left between checker workers
    (bench/scale.py: one in 751 commits over its runs, one in 55 in the
    worst). A checker stores its results every 2 s (each of N workers
    every 2N s), or sooner when 5,000 are waiting, one entry per 256
    records: a fleet of workers gives a 10-s time bucket a few dozen
    entries, below 120, and its buckets do not split. A bucket of 120
    entries pickles in about 10 KB, rewritten by each addition; buckets
    are that full only when families come in by the hundred in one time
    bucket, as when a million URLs are registered.
    """

    max_leaf_size = 120


def _parts(value):
    """(context, last parts, objects) of a run of a RecordGroups."""
    if type(value) is tuple:
        return value
    return value.context, value.lasts, value.objs


def _context_key(context):
    """What tells the contexts of records apart inside a RecordGroups."""
    if context is None:
        return ()
    try:
        return object_key(context)
    except TypeError:
        # A context with no name is never grouped with another record's.
        return ('', '%x' % id(context))


class RecordGroups(_Container):
    """Records without duplicates, stored a family at a time: the default
    container of a :class:`SetMultiPointerTrack`.

    The key of a record is split into its *prefix* and its *last part*: a
    registration is keyed ``('Registration', client id, url)``, prefix
    ``('Registration', client id)``. Records with the same timestamp,
    prefix, actions and context form a *family* (the registrations of one
    call of a client). A family is kept as runs of at most
    :data:`GROUP_SIZE` records in order of their last parts, each run a
    persistent :class:`RecordRun` in a BTree (or, up to
    :data:`INLINE_SIZE` records, a tuple in the BTree's bucket)::

        (timestamp, prefix, actions, context key, first last part) -> run

    So a thousand URLs registered together are four BTree entries, not a
    thousand, and a record costs the pickle of a string and a reference
    where a :class:`RecordSet` entry pickles eleven objects; a commit
    writes the runs it changed, not the BTree buckets' other runs. The runs of
    a family never overlap, which is how a duplicate is found (by its one
    possible run). Records come back ordered by (timestamp, prefix,
    actions, context, last part). Concurrent transactions adding to
    different families (any two calls: their timestamps differ) touch
    different entries, which the BTree resolves; the same run changed on
    both sides is a conflict, retried like any other.

    >>> groups = RecordGroups()
    >>> groups.add_family(5, ('R', 'c1'), ('registered',), None,
    ...                   [('b', 'B'), ('a', 'A'), ('b', 'B')])
    2
    >>> groups.add(ActionWrapper('A', 'registered', 5, key=('R', 'c1', 'a')))
    False
    >>> [(r.key, r.obj) for r in groups]
    [(('R', 'c1', 'a'), 'A'), (('R', 'c1', 'b'), 'B')]
    """

    def __init__(self):
        self._groups = FamilyTree()

    def add(self, record):
        key = record.key
        return bool(self._add(record.timestamp, key[:-1], record.actions,
                              record.context, [(key[-1], record.obj)]))

    def add_many(self, records):
        """Add ActionWrapper records; returns how many were new."""
        families = {}
        for record in records:
            family = (record.timestamp, record.key[:-1], record.actions,
                      _context_key(record.context))
            found = families.get(family)
            if found is None:
                found = families[family] = (record.context, [])
            found[1].append((record.key[-1], record.obj))
        return sum(self._add(family[0], family[1], family[2], context, items)
                   for family, (context, items) in families.items())

    def add_family(self, timestamp, prefix, actions, context, items):
        """Add the records keyed ``prefix + (last,)`` of the (last part,
        object) pairs `items`, all with `timestamp`, `actions` (a flag or
        flags) and `context`; returns how many were new (the first of
        duplicates is kept)."""
        prefix = tuple(prefix)
        if not items:
            return 0
        # One record made the usual way checks the timestamp and the
        # flags, and puts the flags in their stored form.
        check = ActionWrapper(None, actions, timestamp,
                              key=prefix + (items[0][0],))
        return self._add(timestamp, prefix, check.actions, context, items)

    def _add(self, timestamp, prefix, actions, context, items):
        family = (timestamp, prefix, actions, _context_key(context))
        new = {}
        for last, obj in items:
            if last not in new:
                new[last] = obj
        lasts = sorted(new)
        tree = self._groups
        added = 0
        i = 0
        while i < len(lasts):
            run = self._run_of(family, lasts[i])
            if run is None:
                added += self._write(family, (context, (), ()),
                                     lasts[i:], new, None)
                break
            following = self._following(run)
            j = i
            while j < len(lasts) and (following is None or
                                      lasts[j] < following):
                j += 1
            added += self._write(family, tree[run], lasts[i:j], new, run)
            i = j
        self._added(added)
        return added

    def _run_of(self, family, last):
        """The key of the run `last` belongs in: the family's run with the
        greatest first part not after it, else its first run; None for a
        family with no run yet."""
        tree = self._groups
        n = len(family)
        for first in tree.keys(min=family):
            break
        else:
            return None
        if first[:n] != family:
            return None     # a new family: the usual case
        try:
            key = tree.maxKey(family + (last,))
        except ValueError:      # before every key of the tree
            return first
        return key if key[:n] == family else first

    def _following(self, run):
        """The first part of the run after `run` in its family, or None."""
        n = len(run) - 1
        for key in self._groups.keys(min=run, excludemin=True):
            return key[n] if key[:n] == run[:n] else None
        return None

    def _write(self, family, value, lasts, new, run):
        """Merge the sorted new `lasts` into the run `value` (stored under
        the key `run`, None for a new one); returns how many of them it did
        not hold yet."""
        tree = self._groups
        context, old, old_objs = _parts(value)
        if not old or lasts[0] > old[-1]:
            # After all the run holds (the usual case: a sync walks its
            # URLs in order): nothing to look up or sort.
            order = old + tuple(lasts)
            objs = old_objs + tuple(new[last] for last in lasts)
            added = len(lasts)
        else:
            merged = dict(zip(old, old_objs))
            for last in lasts:
                if last not in merged:
                    merged[last] = new[last]
            added = len(merged) - len(old)
            if not added:
                return 0
            order = sorted(merged)
            objs = [merged[last] for last in order]
        chunks = -(-len(order) // GROUP_SIZE)
        size = -(-len(order) // chunks)
        reusable = value if isinstance(value, RecordRun) else None
        keys = []
        for start in range(0, len(order), size):
            part = tuple(order[start:start + size])
            part_objs = tuple(objs[start:start + size])
            key = family + (part[0],)
            keys.append(key)
            if len(part) <= INLINE_SIZE:
                tree[key] = (context, part, part_objs)
                continue
            target, reusable = reusable or RecordRun(context), None
            target.lasts, target.objs = part, part_objs
            if key != run or target is not value:
                tree[key] = target
        if run is not None and run not in keys:
            del tree[run]
        return added

    def __iter__(self):
        load = ActionWrapper._load
        for (timestamp, prefix, actions, _, _), run in self._groups.items():
            context, lasts, objs = _parts(run)
            for last, obj in zip(lasts, objs):
                yield load((timestamp, prefix + (last,), actions),
                           (obj, context))

    def records(self, kinds=None):
        if kinds is None:
            return iter(self)
        return self._iterate(frozenset(kinds))

    def _iterate(self, kinds):
        # The runs of other kinds are not even loaded.
        load = ActionWrapper._load
        for (timestamp, prefix, actions, _, _), run in self._groups.items():
            if prefix[:1] and prefix[0] in kinds or \
                    not prefix and kinds.intersection(_parts(run)[1]):
                context, lasts, objs = _parts(run)
                for last, obj in zip(lasts, objs):
                    if prefix or last in kinds:
                        yield load((timestamp, prefix + (last,), actions),
                                   (obj, context))

    def __len__(self):
        return sum(len(_parts(run)[1]) for run in self._groups.values())

    def is_empty(self):
        return not self._groups
