"""The tracked dict, list and set.

:class:`DictWrapper`, :class:`ListWrapper` and :class:`SetWrapper` are
subclasses of ``dict``, ``list`` and ``set``: ``isinstance(x, dict)`` holds,
reading runs at the speed of the built-in type, and JSON, YAML and pickle see
plain data. Every mutating method is overridden: it takes the tracker's
lock, adopts the values it stores (containers become wrappers of the same
tracker, at any depth), applies the change with the base method and tells
the tracker (:meth:`linksync.tracked.tracker.Tracker.changed`), which
reports, saves, and records what is needed to take the change back.

The names these classes add to the built-in types, and nothing more:

* ``_tracker`` (the :class:`~linksync.tracked.tracker.Tracker`) and
  ``_parent`` (``(container, key)`` where the wrapper was last stored);
* ``__enter__`` / ``__exit__``: the ``with`` transaction;
* on dicts, ``__getattr__`` / ``__setattr__`` / ``__delattr__``: keys read,
  set and deleted as attributes (``conf.endpoint.protocol``) unless the
  structure was tracked with ``dot_access=False``; a key that is also the
  name of a dict method (``items``, ``keys``...) is reached with ``[]``;
* ``__deepcopy__``, ``__copy__`` and ``__reduce_ex__``: copies and pickles
  of a wrapper are plain dicts, lists and sets.

Wrappers are made by :func:`linksync.tracked.track`, never directly.
"""

import copy as _copy
import operator

from linksync.tracked.changes import KeyEdit, MISSING, SetEdit, SliceEdit

#: Types stored as they are, without a look at their contents. (Containers
#: inside a tuple or a frozenset are not tracked.)
ATOMIC = frozenset({str, int, float, bool, type(None), bytes, complex,
                    tuple, frozenset})

#: Stands for a value of a lazily loaded dict that was not read yet.
UNLOADED = type('Unloaded', (), {'__repr__': lambda self: '<unloaded>',
                                 '__slots__': ()})()


def _construct_refused(self, *args, **kw):
    raise TypeError('%s is made by linksync.tracked.track(), not directly'
                    % type(self).__name__)


class _Transaction:
    """``with tracked:`` for every wrapper: a transaction of the tracker."""

    __slots__ = ()

    def __enter__(self):
        self._tracker.begin()
        return self

    def __exit__(self, exc_type, exc, tb):
        self._tracker.end(exc_type is None)
        return False


def _iterable(value):
    """`value` as a list (iterators are read once, here)."""
    return value if type(value) is list else list(value)


# -- dict ---------------------------------------------------------------------

class DictWrapper(dict):
    """A tracked dict."""

    __slots__ = ('_tracker', '_parent')
    __init__ = _construct_refused
    __enter__ = _Transaction.__enter__
    __exit__ = _Transaction.__exit__

    # -- attribute access to keys --------------------------------------------

    def __getattr__(self, name):
        if name[:1] == '_' and (name in _DICT_SLOTS or name[:2] == '__'):
            raise AttributeError(name)
        if self._tracker.dot_access:
            try:
                return self[name]
            except KeyError:
                pass
        raise AttributeError('%r object has no attribute %r' % (
            'dict', name))

    def __setattr__(self, name, value):
        if name in _DICT_SLOTS:
            object.__setattr__(self, name, value)
        elif self._tracker.dot_access:
            self._assign(name, value, '__setattr__')
        else:
            raise AttributeError('%r object has no attribute %r' % (
                'dict', name))

    def __delattr__(self, name):
        if name in _DICT_SLOTS or not self._tracker.dot_access:
            raise AttributeError(name)
        if name not in self:
            raise AttributeError(name)
        self._remove(name, '__delattr__')

    # -- mutating methods ----------------------------------------------------------

    def __setitem__(self, key, value):
        t = self._tracker
        with t.lock:
            if type(value) not in ATOMIC:
                value = t.adopt(value, self, key)
            if not t.notify:
                dict.__setitem__(self, key, value)
                return
            edit = KeyEdit(self, {key: dict.get(self, key, MISSING)}) \
                if t.record else None
            dict.__setitem__(self, key, value)
            t.changed(self, '__setitem__', (key, value), {}, edit)

    def _assign(self, key, value, func_name):
        t = self._tracker
        with t.lock:
            value = t.adopt(value, self, key)
            edit = KeyEdit(self, {key: dict.get(self, key, MISSING)}) \
                if t.record else None
            dict.__setitem__(self, key, value)
            if t.notify:
                t.changed(self, func_name, (key, value), {}, edit)

    def __delitem__(self, key):
        self._remove(key, '__delitem__')

    def _remove(self, key, func_name):
        t = self._tracker
        with t.lock:
            old = dict.pop(self, key)
            if t.notify:
                edit = KeyEdit(self, {key: old}) if t.record else None
                t.changed(self, func_name, (key,), {}, edit)

    def pop(self, key, *default):
        t = self._tracker
        with t.lock:
            if key not in self:
                return dict.pop(self, key, *default)
            old = dict.pop(self, key)
            if t.notify:
                edit = KeyEdit(self, {key: old}) if t.record else None
                t.changed(self, 'pop', (key,) + default, {}, edit)
            return old

    def popitem(self):
        t = self._tracker
        with t.lock:
            key, old = dict.popitem(self)
            if t.notify:
                edit = KeyEdit(self, {key: old}) if t.record else None
                t.changed(self, 'popitem', (), {}, edit)
            return key, old

    def setdefault(self, key, default=None):
        t = self._tracker
        with t.lock:
            value = dict.get(self, key, MISSING)
            if value is not MISSING:
                return value
            value = t.adopt(default, self, key)
            dict.__setitem__(self, key, value)
            if t.notify:
                edit = KeyEdit(self, {key: MISSING}) if t.record else None
                t.changed(self, 'setdefault', (key, value), {}, edit)
            return value

    def update(self, *args, **kwargs):
        if len(args) > 1:
            raise TypeError('update expected at most 1 argument, got %d'
                            % len(args))
        new = dict(*args, **kwargs)
        self._update(new, 'update', args, kwargs)

    def __ior__(self, other):
        if not isinstance(other, dict) and not hasattr(other, 'keys'):
            return NotImplemented
        self._update(dict(other), '__ior__', (other,), {})
        return self

    def _update(self, new, func_name, args, kwargs):
        t = self._tracker
        with t.lock:
            for key, value in new.items():
                if type(value) not in ATOMIC:
                    new[key] = t.adopt(value, self, key)
            edit = None
            if t.record:
                get = dict.get
                edit = KeyEdit(self, {k: get(self, k, MISSING) for k in new})
            dict.update(self, new)
            if t.notify:
                t.changed(self, func_name, args, kwargs, edit)

    def clear(self):
        t = self._tracker
        with t.lock:
            edit = KeyEdit(self, dict(self)) if t.record else None
            dict.clear(self)
            if t.notify:
                t.changed(self, 'clear', (), {}, edit)

    @classmethod
    def fromkeys(cls, iterable, value=None):
        return dict.fromkeys(iterable, value)

    # -- copies are plain ------------------------------------------------------------

    def __copy__(self):
        return dict(self)

    def __deepcopy__(self, memo):
        result = {}
        memo[id(self)] = result
        deepcopy = _copy.deepcopy
        for key, value in self.items():
            result[deepcopy(key, memo)] = deepcopy(value, memo)
        return result

    def __reduce_ex__(self, protocol):
        return (dict, (), None, None, iter(self.items()))


_DICT_SLOTS = frozenset(DictWrapper.__slots__)


class LazyDictWrapper(DictWrapper):
    """A tracked dict whose values are read from its backend when used.

    The root of a structure kept in a shelve or ZODB file. Its keys are all
    there from the start; a value is loaded (and wrapped) the first time it
    is read or replaced. Everything that reads values (``items``,
    ``values``, ``==``, ``repr``, copies, ``dict(x)``, ``json.dumps``) works,
    and loads what it reads.
    """

    __slots__ = ()

    def _load(self, key):
        t = self._tracker
        with t.lock:
            value = dict.__getitem__(self, key)
            if value is UNLOADED:
                value = t.wrap(t.backend.load_value(key), self, key)
                dict.__setitem__(self, key, value)
            return value

    def _load_all(self):
        for key, value in list(dict.items(self)):
            if value is UNLOADED:
                self._load(key)

    def loaded(self, key):
        """True when the value of `key` was read from the backend."""
        return dict.__getitem__(self, key) is not UNLOADED

    def __getitem__(self, key):
        value = dict.__getitem__(self, key)
        if value is UNLOADED:
            value = self._load(key)
        return value

    def get(self, key, default=None):
        value = dict.get(self, key, MISSING)
        if value is MISSING:
            return default
        if value is UNLOADED:
            value = self._load(key)
        return value

    def __iter__(self):
        # Overriding __iter__ makes dict(x) and {**x} read values through
        # __getitem__ (CPython's fast path copies the raw values).
        return dict.__iter__(self)

    def values(self):
        self._load_all()
        return dict.values(self)

    def items(self):
        self._load_all()
        return dict.items(self)

    def __eq__(self, other):
        self._load_all()
        if isinstance(other, LazyDictWrapper):
            other._load_all()
        return dict.__eq__(self, other)

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = None

    def __repr__(self):
        self._load_all()
        return dict.__repr__(self)

    def copy(self):
        self._load_all()
        return dict.copy(self)

    def __or__(self, other):
        self._load_all()
        return dict.__or__(self, other)

    def __ror__(self, other):
        self._load_all()
        return dict.__ror__(self, other)

    def __copy__(self):
        return self.copy()

    # Mutations read the old value first: undo, rollback and the change
    # reported need it.

    def __setitem__(self, key, value):
        if dict.get(self, key) is UNLOADED:
            self._load(key)
        DictWrapper.__setitem__(self, key, value)

    def _assign(self, key, value, func_name):
        if dict.get(self, key) is UNLOADED:
            self._load(key)
        DictWrapper._assign(self, key, value, func_name)

    def _remove(self, key, func_name):
        if dict.get(self, key) is UNLOADED:
            self._load(key)
        DictWrapper._remove(self, key, func_name)

    def pop(self, key, *default):
        if dict.get(self, key) is UNLOADED:
            self._load(key)
        return DictWrapper.pop(self, key, *default)

    def popitem(self):
        with self._tracker.lock:
            if self:
                self._load(next(reversed(dict.keys(self))))
            return DictWrapper.popitem(self)

    def setdefault(self, key, default=None):
        if dict.get(self, key) is UNLOADED:
            self._load(key)
        return DictWrapper.setdefault(self, key, default)

    def _update(self, new, func_name, args, kwargs):
        with self._tracker.lock:
            for key in new:
                if dict.get(self, key) is UNLOADED:
                    self._load(key)
            DictWrapper._update(self, new, func_name, args, kwargs)

    def clear(self):
        with self._tracker.lock:
            if self._tracker.record:
                self._load_all()
            DictWrapper.clear(self)


# -- list ---------------------------------------------------------------------

def _position(index, length):
    """A normalised item index, or None when out of range."""
    index = operator.index(index)
    if index < 0:
        index += length
    return index if 0 <= index < length else None


class ListWrapper(list):
    """A tracked list."""

    __slots__ = ('_tracker', '_parent')
    __init__ = _construct_refused
    __enter__ = _Transaction.__enter__
    __exit__ = _Transaction.__exit__

    def append(self, value):
        t = self._tracker
        with t.lock:
            start = len(self)
            if type(value) not in ATOMIC:
                value = t.adopt(value, self, start)
            list.append(self, value)
            if t.notify:
                edit = SliceEdit(self, start, [], [value]) \
                    if t.record else None
                t.changed(self, 'append', (value,), {}, edit)

    def extend(self, iterable):
        self._extend(iterable, 'extend')

    def __iadd__(self, other):
        self._extend(other, '__iadd__')
        return self

    def _extend(self, iterable, func_name):
        t = self._tracker
        with t.lock:
            items = t.adopt_all(list(iterable), self, len(self))
            start = len(self)
            list.extend(self, items)
            if t.notify:
                edit = SliceEdit(self, start, [], items) if t.record else None
                t.changed(self, func_name, (items,), {}, edit)

    def insert(self, index, value):
        t = self._tracker
        with t.lock:
            length = len(self)
            index = operator.index(index)
            at = max(0, index + length) if index < 0 else min(index, length)
            value = t.adopt(value, self, at)
            list.insert(self, at, value)
            if t.notify:
                edit = SliceEdit(self, at, [], [value]) if t.record else None
                t.changed(self, 'insert', (index, value), {}, edit)

    def __setitem__(self, index, value):
        t = self._tracker
        with t.lock:
            if isinstance(index, slice):
                self._set_slice(t, index, value)
                return
            at = _position(index, len(self))
            if at is None:
                raise IndexError('list assignment index out of range')
            if type(value) not in ATOMIC:
                value = t.adopt(value, self, at)
            if not t.notify:
                list.__setitem__(self, at, value)
                return
            old = list.__getitem__(self, at)
            list.__setitem__(self, at, value)
            edit = SliceEdit(self, at, [old], [value]) if t.record else None
            t.changed(self, '__setitem__', (index, value), {}, edit)

    def _set_slice(self, t, index, value):
        items = list(value)
        start, stop, step = index.indices(len(self))
        if step == 1:
            stop = max(start, stop)
            items = t.adopt_all(items, self, start)
            before = list.__getitem__(self, slice(start, stop))
            list.__setitem__(self, slice(start, stop), items)
            edit = SliceEdit(self, start, before, items)
        else:
            before = list(self)
            positions = range(start, stop, step)
            if len(positions) == len(items):
                items = [t.adopt(item, self, at)
                         for at, item in zip(positions, items)]
            list.__setitem__(self, index, items)  # ValueError: no change
            edit = SliceEdit(self, 0, before, list(self))
        if t.notify:
            t.changed(self, '__setitem__', (index, items), {},
                      edit if t.record else None)

    def __delitem__(self, index):
        t = self._tracker
        with t.lock:
            if isinstance(index, slice):
                start, stop, step = index.indices(len(self))
                if step == 1:
                    stop = max(start, stop)
                    before = list.__getitem__(self, slice(start, stop))
                    list.__delitem__(self, slice(start, stop))
                    edit = SliceEdit(self, start, before, [])
                else:
                    before = list(self)
                    list.__delitem__(self, index)
                    edit = SliceEdit(self, 0, before, list(self))
            else:
                at = _position(index, len(self))
                if at is None:
                    raise IndexError('list assignment index out of range')
                edit = SliceEdit(self, at, [list.__getitem__(self, at)], [])
                list.__delitem__(self, at)
            if t.notify:
                t.changed(self, '__delitem__', (index,), {},
                          edit if t.record else None)

    def pop(self, index=-1):
        t = self._tracker
        with t.lock:
            at = _position(index, len(self))
            if at is None:
                return list.pop(self, index)  # raises the IndexError
            value = list.pop(self, at)
            if t.notify:
                edit = SliceEdit(self, at, [value], []) if t.record else None
                t.changed(self, 'pop', (index,), {}, edit)
            return value

    def remove(self, value):
        t = self._tracker
        with t.lock:
            try:
                at = list.index(self, value)
            except ValueError:
                raise ValueError('list.remove(x): x not in list') from None
            old = list.__getitem__(self, at)
            list.__delitem__(self, at)
            if t.notify:
                edit = SliceEdit(self, at, [old], []) if t.record else None
                t.changed(self, 'remove', (value,), {}, edit)

    def clear(self):
        self._rearrange(list.clear, 'clear', (), {})

    def reverse(self):
        self._rearrange(list.reverse, 'reverse', (), {})

    def sort(self, *, key=None, reverse=False):
        kwargs = {}
        if key is not None:
            kwargs['key'] = key
        if reverse:
            kwargs['reverse'] = reverse
        self._rearrange(list.sort, 'sort', (), kwargs)

    def __imul__(self, times):
        self._rearrange(list.__imul__, '__imul__', (times,), {})
        return self

    def _rearrange(self, method, func_name, args, kwargs):
        """Operations that may touch the whole list (edit: all of it)."""
        t = self._tracker
        with t.lock:
            if not t.notify:
                method(self, *args, **kwargs)
                return
            before = list(self) if t.record else None
            try:
                method(self, *args, **kwargs)
            except BaseException:
                # sort() fails half way on values it cannot compare; what
                # it did is a change like any other.
                if before is None or before == list(self):
                    raise
                t.changed(self, func_name, args, kwargs,
                          SliceEdit(self, 0, before, list(self)))
                raise
            edit = SliceEdit(self, 0, before, list(self)) \
                if t.record else None
            t.changed(self, func_name, args, kwargs, edit)

    def __copy__(self):
        return list(self)

    def __deepcopy__(self, memo):
        result = []
        memo[id(self)] = result
        deepcopy = _copy.deepcopy
        result.extend(deepcopy(item, memo) for item in self)
        return result

    def __reduce_ex__(self, protocol):
        return (list, (), None, iter(self))


# -- set ------------------------------------------------------------------------

def _is_set(value):
    return isinstance(value, (set, frozenset))


class SetWrapper(set):
    """A tracked set."""

    __slots__ = ('_tracker', '_parent')
    __init__ = _construct_refused
    __enter__ = _Transaction.__enter__
    __exit__ = _Transaction.__exit__

    def add(self, element):
        t = self._tracker
        with t.lock:
            if not t.notify:
                set.add(self, element)
                return
            added = set() if element in self else {element}
            set.add(self, element)
            t.changed(self, 'add', (element,), {},
                      SetEdit(self, added, set()) if t.record else None)

    def discard(self, element):
        t = self._tracker
        with t.lock:
            removed = {element} if element in self else set()
            set.discard(self, element)
            if t.notify:
                t.changed(self, 'discard', (element,), {},
                          SetEdit(self, set(), removed) if t.record else None)

    def remove(self, element):
        t = self._tracker
        with t.lock:
            set.remove(self, element)
            if t.notify:
                t.changed(self, 'remove', (element,), {},
                          SetEdit(self, set(), {element})
                          if t.record else None)

    def pop(self):
        t = self._tracker
        with t.lock:
            element = set.pop(self)
            if t.notify:
                t.changed(self, 'pop', (), {},
                          SetEdit(self, set(), {element})
                          if t.record else None)
            return element

    def clear(self):
        t = self._tracker
        with t.lock:
            removed = set(self)
            set.clear(self)
            if t.notify:
                t.changed(self, 'clear', (), {},
                          SetEdit(self, set(), removed) if t.record else None)

    def _change(self, func_name, args, added, removed):
        """Apply a computed change (both arguments are sets)."""
        t = self._tracker
        set.difference_update(self, removed)
        set.update(self, added)
        if t.notify:
            t.changed(self, func_name, args, {},
                      SetEdit(self, added, removed) if t.record else None)

    def update(self, *others):
        with self._tracker.lock:
            others = tuple(_iterable(o) for o in others)
            new = set().union(*others)
            self._change('update', others, new - self, set())

    def intersection_update(self, *others):
        with self._tracker.lock:
            others = tuple(_iterable(o) for o in others)
            keep = set.intersection(self, *others)
            self._change('intersection_update', others, set(), self - keep)

    def difference_update(self, *others):
        with self._tracker.lock:
            others = tuple(_iterable(o) for o in others)
            gone = set().union(*others)
            self._change('difference_update', others, set(), self & gone)

    def symmetric_difference_update(self, other):
        with self._tracker.lock:
            other = _iterable(other)
            flip = set(other)
            self._change('symmetric_difference_update', (other,),
                         flip - self, flip & self)

    def __ior__(self, other):
        if not _is_set(other):
            return NotImplemented
        with self._tracker.lock:
            self._change('__ior__', (other,), other - self, set())
        return self

    def __iand__(self, other):
        if not _is_set(other):
            return NotImplemented
        with self._tracker.lock:
            self._change('__iand__', (other,), set(), self - other)
        return self

    def __isub__(self, other):
        if not _is_set(other):
            return NotImplemented
        with self._tracker.lock:
            self._change('__isub__', (other,), set(), self & other)
        return self

    def __ixor__(self, other):
        if not _is_set(other):
            return NotImplemented
        with self._tracker.lock:
            self._change('__ixor__', (other,), other - self, other & self)
        return self

    def __repr__(self):
        return repr(set(self))

    def __copy__(self):
        return set(self)

    def __deepcopy__(self, memo):
        result = set()
        memo[id(self)] = result
        result.update(_copy.deepcopy(element, memo) for element in self)
        return result

    def __reduce_ex__(self, protocol):
        return (set, (list(self),))


#: The wrapper types, and the descriptor setting each one's ``_parent``.
WRAPPERS = {cls: cls.__dict__.get('_parent') or DictWrapper.__dict__['_parent']
            for cls in (DictWrapper, LazyDictWrapper, ListWrapper,
                        SetWrapper)}
