"""The Multi-Pointer Track: change records in time buckets, read by pointers.

A :class:`MultiPointerTrack` (MPT) is a persistent BTree whose keys are
integer *positions* (time buckets: ``timestamp // granularity``, computed by
the caller, see linksync.agents) and whose values are ordered collections of
change records (:class:`ActionWrapper`). Named *pointers* mark how far each
reader (an agent) has consumed the track, like runners on a race track.

Intervals are half-open, ``]from, till]``: the bucket at ``from`` is
excluded (a pointer at position p has consumed p), the bucket at ``till``
included. Listings run newest first; agents consume oldest first
(:meth:`MultiPointerTrack.window`). Buckets at or behind every pointer are
removed by :meth:`MultiPointerTrack.prune`.

Concurrency: two transactions adding different records to the same bucket
do not conflict, the bucket containers resolve it (a :class:`RecordSet` is a
BTree; a :class:`RecordLog` merges concurrent appends). Creating a bucket
touches the BTree of buckets itself; :meth:`MultiPointerTrack.prepare_entry`
creates buckets ahead of time so that writers only ever touch containers.

>>> track = SetMultiPointerTrack()
>>> track.add(7, ActionWrapper('http://a.example/', {'state_changed'}, 70.5))
True
>>> track.add(8, ActionWrapper('http://b.example/', {'registered'}, 81))
True
>>> [(position, record.key) for position, record in track.iterate()]
[(8, ('str', 'http://b.example/')), (7, ('str', 'http://a.example/'))]
>>> track.add_pointer('agent', 7)
>>> [record.key for record in track.pointer_iter_values('agent')]
[('str', 'http://b.example/')]
"""


import persistent
from BTrees.LOBTree import LOBTree
from BTrees.OOBTree import OOBTree
from linksync.track.errors import EmptyTrackError
from linksync.track.records import ActionWrapper, RecordGroups, RecordLog


# -- the track ------------------------------------------------------------------

class MultiPointerTrack(persistent.Persistent):
    """Buckets of change records at integer positions, and named pointers.

    `container` is the class of the buckets (default :class:`RecordLog`,
    records in insertion order); see :class:`SetMultiPointerTrack`.
    """

    container = RecordLog

    def __init__(self, container=None):
        if container is not None:
            self.container = container
        self._buckets = LOBTree()
        self._pointers = OOBTree()

    def __repr__(self):
        return '<%s>' % type(self).__name__

    # -- records --------------------------------------------------------------

    def prepare_entry(self, position):
        """The bucket at `position`, created (empty) when missing."""
        position = _position(position)
        bucket = self._buckets.get(position)
        if bucket is None:
            bucket = self._buckets[position] = self.container()
        return bucket

    def add(self, position, record):
        """Add `record` to the bucket at `position`; False for a duplicate
        (set containers only)."""
        if not isinstance(record, ActionWrapper):
            raise TypeError('the track holds ActionWrapper records, not %r'
                            % (record,))
        return self.prepare_entry(position).add(record)

    def add_family(self, position, timestamp, prefix, actions, context,
                   items):
        """Add to the bucket at `position` the records keyed ``prefix +
        (last,)`` for the (last, object) pairs `items`, with the same
        `timestamp`, `actions` and `context` (a client's registrations of
        one call); returns how many were new. A :class:`RecordGroups`
        stores them as one family; other containers record by record."""
        bucket = self.prepare_entry(position)
        if isinstance(bucket, RecordGroups):
            return bucket.add_family(timestamp, prefix, actions, context,
                                     items)
        prefix = tuple(prefix)
        return sum(bool(bucket.add(ActionWrapper(
            obj, actions, timestamp, key=prefix + (last,), context=context)))
            for last, obj in items)

    def __contains__(self, position):
        return position in self._buckets

    def __getitem__(self, position):
        return self._buckets[position]

    def __len__(self):
        """The number of buckets (as the seed's MPT counted its entries;
        :meth:`count` counts records). BTrees count by walking their
        buckets: this reads the whole index of the track."""
        return len(self._buckets)

    def __delitem__(self, position):
        """Remove the bucket at `position` with its records (KeyError when
        there is none). Pointers are positions, not references: they stay
        where they are, and a pointer behind `position` never sees the
        records removed. :meth:`prune` removes only what every pointer
        has consumed."""
        del self._buckets[_position(position)]

    def entry(self, position, default=None):
        """The bucket at `position`, or `default`."""
        return self._buckets.get(position, default)

    def positions(self, from_pos=None, till=None):
        """The positions of the buckets in ]from_pos, till], oldest first."""
        if from_pos is not None and till is not None and till <= from_pos:
            return iter(())
        return iter(self._buckets.keys(from_pos, till,
                                       excludemin=from_pos is not None))

    def values(self, from_pos=None, till=None):
        """The buckets in ]from_pos, till], oldest first."""
        return (self._buckets[p] for p in self.positions(from_pos, till))

    def items(self, from_pos=None, till=None):
        """(position, bucket) for ]from_pos, till], oldest first."""
        return ((p, self._buckets[p]) for p in self.positions(from_pos, till))

    def iterate(self, from_pos=None, till=None, func=None):
        """(position, record) for every record in ]from_pos, till], newest
        first (`func`, if given, is applied to each pair)."""
        positions = list(self.positions(from_pos, till))
        for position in reversed(positions):
            for record in self._buckets[position].newest_first():
                pair = (position, record)
                yield pair if func is None else func(pair)

    __iter__ = iterate

    def window(self, from_pos=None, till=None):
        """(position, record) for every record in ]from_pos, till], oldest
        first: the order in which agents consume the track."""
        for position in self.positions(from_pos, till):
            for record in self._buckets[position]:
                yield position, record

    def count(self, from_pos=None, till=None):
        """The number of records in ]from_pos, till]."""
        return sum(len(bucket) for bucket in self.values(from_pos, till))

    def is_empty(self):
        return not self._buckets

    def most_recent_ts(self, maximum=None):
        """The most recent position; `maximum` instead when it is older.

        Raises EmptyTrackError when the track holds no bucket.
        """
        if not self._buckets:
            raise EmptyTrackError('the track is empty')
        latest = self._buckets.maxKey()
        return latest if maximum is None else min(latest, maximum)

    def oldest_ts(self):
        """The oldest position; EmptyTrackError when there is none."""
        if not self._buckets:
            raise EmptyTrackError('the track is empty')
        return self._buckets.minKey()

    def clear(self):
        """Remove every bucket (the pointers stay where they are)."""
        self._buckets.clear()

    # -- pointers --------------------------------------------------------------

    def add_pointer(self, pid, start=None):
        """Register pointer `pid` at position `start` (default: the most
        recent position, or 0 on an empty track)."""
        if pid in self._pointers:
            raise KeyError('pointer %r exists already' % (pid,))
        if start is None:
            start = self._buckets.maxKey() if self._buckets else 0
        self._pointers[pid] = _position(start)

    def move_pointer(self, pid, position):
        """Move pointer `pid` to `position` (either way)."""
        if pid not in self._pointers:
            raise KeyError('no pointer %r' % (pid,))
        position = _position(position)
        if self._pointers[pid] != position:
            self._pointers[pid] = position

    def remove_pointer(self, pid):
        if pid not in self._pointers:
            raise KeyError('no pointer %r' % (pid,))
        del self._pointers[pid]

    def has_pointer(self, pid):
        return pid in self._pointers

    def pointer_position(self, pid):
        """The position of pointer `pid` (KeyError when unknown)."""
        try:
            return self._pointers[pid]
        except KeyError:
            raise KeyError('no pointer %r' % (pid,)) from None

    def pointers(self):
        """(pid, position) pairs, in pid order."""
        return list(self._pointers.items())

    def current_entry(self, pid):
        """The bucket at the position of pointer `pid` (None when that
        position holds none)."""
        return self._buckets.get(self.pointer_position(pid))

    def pointer_iter_items(self, pid, till=None):
        """(position, record) for what pointer `pid` has not consumed, up to
        `till`, newest first."""
        return self.iterate(self.pointer_position(pid), till)

    def pointer_iter_values(self, pid, till=None):
        """Like pointer_iter_items, the records only."""
        return self.iterate(self.pointer_position(pid), till,
                            func=lambda pair: pair[1])

    def clear_pointers(self):
        self._pointers.clear()

    # -- pruning --------------------------------------------------------------

    def prune(self, upto=None):
        """Remove the buckets at or behind every pointer; returns how many.

        With `upto`, nothing after that position is removed. With no pointer
        at all nothing is removed: no reader has consumed anything.
        """
        if not self._pointers:
            return 0
        limit = min(self._pointers.values())
        if upto is not None:
            limit = min(limit, upto)
        doomed = list(self._buckets.keys(max=limit))
        for position in doomed:
            del self._buckets[position]
        return len(doomed)

    def prune_empty(self, upto, after=None):
        """Remove the empty buckets in ]after, upto]; returns how many.

        Only safe for positions no writer can add to any more (see
        linksync.agents.SyncManager.close).
        """
        doomed = [p for p, bucket in self.items(after, upto)
                  if bucket.is_empty()]
        for position in doomed:
            del self._buckets[position]
        return len(doomed)

    # -- the names of the seed -------------------------------------------------

    prepareEntry = prepare_entry
    addPointer = add_pointer
    movePointer = move_pointer
    removePointer = remove_pointer
    getPointerTimestamp = pointer_position
    getCurrentPosition = current_entry
    pointerIterItems = pointer_iter_items
    pointerIterValues = pointer_iter_values
    mostRecentTS = most_recent_ts
    oldestTS = oldest_ts


#: The seed's name of EmptyTrackError.
EmptyTrackException = EmptyTrackError


class SetMultiPointerTrack(MultiPointerTrack):
    """A track whose buckets keep their records free of duplicates
    (:class:`RecordGroups`; buckets made before it existed are
    :class:`RecordSet` and stay readable and writable)."""

    container = RecordGroups

    def __init__(self):
        super().__init__()


def _position(value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError('a track position is an integer, not %r' % (value,))
    return value
