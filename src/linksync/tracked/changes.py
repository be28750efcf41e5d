"""Change objects, and the edits that undo and redo a change.

A :class:`Change` is what a callback receives. When the tracker needs to
take a change back (a rolled-back transaction, a save that failed, undo and
redo) it also carries an edit, one of three kinds:

* :class:`KeyEdit`: some keys of a dict, their values before and after
  (:data:`MISSING` where a key was absent);
* :class:`SetEdit`: the elements added to and removed from a set;
* :class:`SliceEdit`: a slice of a list, its items before and after (every
  list operation, even ``sort``, replaces one slice of the list).

An edit applies its `before` or `after` state either ``raw`` (with the base
class methods: nothing is reported, used to roll back) or through the
tracked methods (reported and saved like any change, used by undo/redo).
"""

from zope.interface import implementer

from linksync.tracked.interfaces import IChange


class _Missing:
    """The value of a key that is not there."""

    __slots__ = ()

    def __repr__(self):
        return '<missing>'

    def __reduce__(self):
        return 'MISSING'


MISSING = _Missing()


@implementer(IChange)
class Change:
    """One change of a tracked structure, as the callback receives it."""

    __slots__ = ('root', 'name', 'path', 'func_name', 'args', 'kwargs',
                 'target', 'edit')

    def __init__(self, root, name, path, func_name, args, kwargs, target,
                 edit=None):
        self.root = root
        self.name = name
        self.path = path
        self.func_name = func_name
        self.args = args
        self.kwargs = kwargs
        self.target = target
        self.edit = edit

    def as_dict(self):
        """The public fields as a dict (handy with pprint)."""
        return {field: getattr(self, field) for field in (
            'root', 'name', 'path', 'func_name', 'args', 'kwargs', 'target')}

    def areas(self):
        """The paths (tuples) this change touched, as precisely as known."""
        if self.path is None:
            return []
        path = tuple(self.path)
        if self.edit is None:
            return [path]
        return self.edit.areas(path)

    def __repr__(self):
        return '<Change %s%r at %r of %r>' % (
            self.func_name, tuple(self.args), self.path, self.name)


def _reparent(value, parent, key):
    """A wrapper put back raw is found at parent[key] again."""
    tracker = parent._tracker
    if tracker is not None and getattr(value, '_tracker', None) is tracker:
        tracker.reparent(value, parent, key)


class KeyEdit:
    """Keys of a dict: their values before and after the change.

    A key deleted from the middle of a dict would come back at its end:
    the edit of such a deletion keeps the order of the keys (`order`) to
    put it back in its place.
    """

    __slots__ = ('target', 'before', 'after', 'order')

    def __init__(self, target, before):
        self.target = target
        self.before = before
        self.after = None
        self.order = None

    @classmethod
    def deletion(cls, target, key):
        """The edit of deleting `key` (there) from `target`."""
        edit = cls(target, {key: dict.__getitem__(target, key)})
        if next(reversed(dict.keys(target))) is not key:
            edit.order = list(dict.keys(target))
        return edit

    def seal(self):
        get = dict.get
        target = self.target
        self.after = {key: get(target, key, MISSING) for key in self.before}

    def undo(self, raw):
        self._apply(self.before, raw)
        if self.order is not None:
            target = self.target
            saved = dict(dict.items(target))
            dict.clear(target)
            dict.update(target, ((key, saved.pop(key)) for key in self.order
                                 if key in saved))
            dict.update(target, saved)

    def redo(self, raw):
        self._apply(self.after, raw)

    def _apply(self, state, raw):
        target = self.target
        for key, value in state.items():
            if value is MISSING:
                if raw:
                    dict.pop(target, key, None)
                elif key in target:
                    del target[key]
            elif raw:
                dict.__setitem__(target, key, value)
                _reparent(value, target, key)
            else:
                target[key] = value

    def areas(self, path):
        return [path + (key,) for key in self.before]


class SetEdit:
    """Elements added to and removed from a set."""

    __slots__ = ('target', 'added', 'removed')

    def __init__(self, target, added, removed):
        self.target = target
        self.added = added
        self.removed = removed

    def seal(self):
        pass

    def undo(self, raw):
        self._apply(self.removed, self.added, raw)

    def redo(self, raw):
        self._apply(self.added, self.removed, raw)

    def _apply(self, add, remove, raw):
        target = self.target
        if raw:
            set.difference_update(target, remove)
            set.update(target, add)
        else:
            if remove:
                target.difference_update(remove)
            if add:
                target.update(add)

    def areas(self, path):
        return [path + (Member(e),) for e in self.added | self.removed]


class SliceEdit:
    """A slice of a list: `before` became `after`, from index `start`."""

    __slots__ = ('target', 'start', 'before', 'after')

    def __init__(self, target, start, before, after):
        self.target = target
        self.start = start
        self.before = before
        self.after = after

    def seal(self):
        pass

    def undo(self, raw):
        self._apply(self.after, self.before, raw)

    def redo(self, raw):
        self._apply(self.before, self.after, raw)

    def _apply(self, current, wanted, raw):
        target = self.target
        where = slice(self.start, self.start + len(current))
        if raw:
            list.__setitem__(target, where, wanted)
            for offset, value in enumerate(wanted):
                _reparent(value, target, self.start + offset)
        else:
            target[where] = wanted

    def areas(self, path):
        return [path]


class Member:
    """A path step naming one element of a set (for set changes)."""

    __slots__ = ('element',)

    def __init__(self, element):
        self.element = element

    def __eq__(self, other):
        return type(other) is Member and other.element == self.element

    def __hash__(self):
        return hash(('Member', self.element))

    def __repr__(self):
        return 'Member(%r)' % (self.element,)
