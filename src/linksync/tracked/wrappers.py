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

The most frequent mutations (``d[k] = v``, ``d.update(other)``,
``lst[i] = v``, ``lst.append(v)``, ``lst.sort()``, ``s.add(v)``) run in C
when the extension :mod:`linksync.tracked._speedups` was built: a Python
method on a subclass of dict costs several times the plain operation
before it does anything. The wrappers then derive from its ``DictBase``,
``ListBase`` and ``SetBase`` (subclasses of dict, list and set without
fields of their own) and the Python methods below are the fallback, and
the reference, of the C code: it does exactly what they do, and calls them
for whatever is not the simple case. ``LINKSYNC_PURE_PYTHON=1`` in the
environment (read at import) keeps the pure-Python implementation;
:data:`SPEEDUPS` tells which one is in use.
"""

import copy as _copy
import operator
import os

from linksync.tracked.changes import KeyEdit, MISSING, SetEdit, SliceEdit

#: Types stored as they are, without a look at their contents. (Containers
#: inside a tuple or a frozenset are not tracked.)
ATOMIC = frozenset({str, int, float, bool, type(None), bytes, complex,
                    tuple, frozenset})


def _load_speedups():
    if os.environ.get('LINKSYNC_PURE_PYTHON', '').strip() not in ('', '0'):
        return None
    try:
        from linksync.tracked import _speedups
    except ImportError:  # not built (no C compiler): pure Python
        return None
    if _speedups.ATOMIC != ATOMIC:  # pragma: no cover
        return None
    return _speedups


_speedups = _load_speedups()

#: True when the hot mutations run in C (linksync.tracked._speedups).
SPEEDUPS = _speedups is not None

if SPEEDUPS:
    _DictBase = _speedups.DictBase
    _ListBase = _speedups.ListBase
    _SetBase = _speedups.SetBase
else:
    _DictBase, _ListBase, _SetBase = dict, list, set

#: Stands for a value of a lazily loaded dict that was not read yet.
UNLOADED = type('Unloaded', (), {'__repr__': lambda self: '<unloaded>',
                                 '__slots__': ()})()


class _Tracked:
    """What every wrapper has: ``with`` is a transaction of its tracker."""

    __slots__ = ()

    def __init__(self, *args, **kw):
        raise TypeError('%s is made by linksync.tracked.track(), not '
                        'directly' % type(self).__name__)

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

class DictWrapper(_Tracked, _DictBase):
    """A tracked dict."""

    __slots__ = ('_tracker', '_parent')

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
            _dict_assign(self, name, value, '__setattr__')
        else:
            raise AttributeError('%r object has no attribute %r' % (
                'dict', name))

    def __delattr__(self, name):
        if name in _DICT_SLOTS or not self._tracker.dot_access:
            raise AttributeError(name)
        if name not in self:
            raise AttributeError(name)
        _dict_remove(self, name, '__delattr__')

    # -- mutating methods ----------------------------------------------------------

    def __setitem__(self, key, value):
        # The most frequent mutations (this, list.append and __setitem__,
        # set.add) take the lock with acquire/release: a quarter faster
        # than a with statement. (In C when _speedups is built.)
        t = self._tracker
        lock = t.lock
        lock.acquire()
        try:
            if type(value) not in ATOMIC:
                value = t.wrap(value, self, key)
            if not t.notify:
                dict.__setitem__(self, key, value)
                return
            edit = KeyEdit(self, {key: dict.get(self, key, MISSING)}) \
                if t.record else None
            dict.__setitem__(self, key, value)
            t.changed(self, '__setitem__', (key, value), {}, edit)
        finally:
            lock.release()

    def __delitem__(self, key):
        _dict_remove(self, key, '__delitem__')

    def pop(self, key, *default):
        t = self._tracker
        with t.lock:
            if key not in self:
                return dict.pop(self, key, *default)
            return _dict_remove(self, key, 'pop', (key,) + default)

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
            value = t.wrap(default, self, key)
            dict.__setitem__(self, key, value)
            if t.notify:
                edit = KeyEdit(self, {key: MISSING}) if t.record else None
                t.changed(self, 'setdefault', (key, value), {}, edit)
            return value

    def update(self, *args, **kwargs):
        if len(args) > 1:
            raise TypeError('update expected at most 1 argument, got %d'
                            % len(args))
        if args and not hasattr(args[0], 'keys'):
            args = (list(args[0]),)  # an iterator is read once, here
        _dict_update(self, dict(*args, **kwargs), 'update', args, kwargs)

    def __ior__(self, other):
        if not isinstance(other, dict) and not hasattr(other, 'keys'):
            return NotImplemented
        _dict_update(self, dict(other), '__ior__', (other,), {})
        return self

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


def _dict_assign(d, key, value, func_name):
    t = d._tracker
    with t.lock:
        value = t.wrap(value, d, key)
        edit = KeyEdit(d, {key: dict.get(d, key, MISSING)}) \
            if t.record else None
        dict.__setitem__(d, key, value)
        if t.notify:
            t.changed(d, func_name, (key, value), {}, edit)


def _dict_remove(d, key, func_name, args=None):
    t = d._tracker
    with t.lock:
        edit = KeyEdit.deletion(d, key) if t.record else None
        old = dict.pop(d, key)
        if t.notify:
            t.changed(d, func_name, (key,) if args is None else args, {},
                      edit)
        return old


def _dict_update(d, new, func_name, args, kwargs):
    t = d._tracker
    with t.lock:
        for key, value in new.items():
            if type(value) not in ATOMIC:
                new[key] = t.wrap(value, d, key)
        edit = None
        if t.record:
            get = dict.get
            edit = KeyEdit(d, {k: get(d, k, MISSING) for k in new})
        dict.update(d, new)
        if t.notify:
            t.changed(d, func_name, args, kwargs, edit)


_DICT_SLOTS = frozenset(DictWrapper.__slots__)


class LazyDictWrapper(DictWrapper):
    """A tracked dict whose values are read from its backend when used.

    The root of a structure kept in a shelve or ZODB file. Its keys are all
    there from the start; a value is loaded (and wrapped) the first time it
    is read or replaced. Everything that reads values (``items``,
    ``values``, ``==``, ``repr``, copies, ``dict(x)``, ``json.dumps``) works,
    and loads what it reads. It adds one name more: :meth:`loaded`.
    """

    __slots__ = ()

    def loaded(self, key):
        """True when the value of `key` was read from the backend."""
        return dict.__getitem__(self, key) is not UNLOADED

    def __getitem__(self, key):
        value = dict.__getitem__(self, key)
        if value is UNLOADED:
            value = _load(self, key)
        return value

    def get(self, key, default=None):
        value = dict.get(self, key, MISSING)
        if value is MISSING:
            return default
        if value is UNLOADED:
            value = _load(self, key)
        return value

    def __iter__(self):
        # Overriding __iter__ makes dict(x) and {**x} read values through
        # __getitem__ (CPython's fast path copies the raw values).
        return dict.__iter__(self)

    def values(self):
        _load_all(self)
        return dict.values(self)

    def items(self):
        _load_all(self)
        return dict.items(self)

    def __eq__(self, other):
        _load_all(self)
        if isinstance(other, LazyDictWrapper):
            _load_all(other)
        return dict.__eq__(self, other)

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = None

    def __repr__(self):
        _load_all(self)
        return dict.__repr__(self)

    def copy(self):
        _load_all(self)
        return dict.copy(self)

    def __or__(self, other):
        _load_all(self)
        return dict.__or__(self, other)

    def __ror__(self, other):
        _load_all(self)
        return dict.__ror__(self, other)

    def __copy__(self):
        return self.copy()

    # Mutations read the old value first: undo, rollback and the change
    # reported need it.

    def __setitem__(self, key, value):
        _load_keys(self, (key,))
        DictWrapper.__setitem__(self, key, value)

    def __setattr__(self, name, value):
        if name not in _DICT_SLOTS:
            _load_keys(self, (name,))
        DictWrapper.__setattr__(self, name, value)

    def __delitem__(self, key):
        _load_keys(self, (key,))
        DictWrapper.__delitem__(self, key)

    def __delattr__(self, name):
        _load_keys(self, (name,))
        DictWrapper.__delattr__(self, name)

    def pop(self, key, *default):
        _load_keys(self, (key,))
        return DictWrapper.pop(self, key, *default)

    def popitem(self):
        with self._tracker.lock:
            if self:
                _load(self, next(reversed(dict.keys(self))))
            return DictWrapper.popitem(self)

    def setdefault(self, key, default=None):
        _load_keys(self, (key,))
        return DictWrapper.setdefault(self, key, default)

    def update(self, *args, **kwargs):
        with self._tracker.lock:
            if args and not hasattr(args[0], 'keys'):
                args = (list(args[0]),)
            new = dict(*args, **kwargs)
            _load_keys(self, new)
            _dict_update(self, new, 'update', args, kwargs)

    def __ior__(self, other):
        if not isinstance(other, dict) and not hasattr(other, 'keys'):
            return NotImplemented
        with self._tracker.lock:
            new = dict(other)
            _load_keys(self, new)
            _dict_update(self, new, '__ior__', (other,), {})
        return self

    def clear(self):
        with self._tracker.lock:
            if self._tracker.record:
                _load_all(self)
            DictWrapper.clear(self)


def _load(d, key):
    t = d._tracker
    with t.lock:
        value = dict.__getitem__(d, key)
        if value is UNLOADED:
            value = t.wrap(t.backend.load_value(key), d, key)
            dict.__setitem__(d, key, value)
        return value


def _load_keys(d, keys):
    for key in keys:
        try:
            if dict.get(d, key) is UNLOADED:
                _load(d, key)
        except TypeError:  # unhashable: the dict method will say so
            pass


def _load_all(d):
    for key, value in list(dict.items(d)):
        if value is UNLOADED:
            _load(d, key)


# -- list ---------------------------------------------------------------------

def _position(index, length):
    """A normalised item index, or None when out of range."""
    index = operator.index(index)
    if index < 0:
        index += length
    return index if 0 <= index < length else None


class ListWrapper(_Tracked, _ListBase):
    """A tracked list."""

    __slots__ = ('_tracker', '_parent')

    def append(self, value):
        t = self._tracker
        lock = t.lock
        lock.acquire()
        try:
            start = len(self)
            if type(value) not in ATOMIC:
                value = t.wrap(value, self, start)
            list.append(self, value)
            if t.notify:
                edit = SliceEdit(self, start, [], [value]) \
                    if t.record else None
                t.changed(self, 'append', (value,), {}, edit)
        finally:
            lock.release()

    def extend(self, iterable):
        _list_extend(self, iterable, 'extend')

    def __iadd__(self, other):
        _list_extend(self, other, '__iadd__')
        return self

    def insert(self, index, value):
        t = self._tracker
        with t.lock:
            length = len(self)
            index = operator.index(index)
            at = max(0, index + length) if index < 0 else min(index, length)
            value = t.wrap(value, self, at)
            list.insert(self, at, value)
            if t.notify:
                edit = SliceEdit(self, at, [], [value]) if t.record else None
                t.changed(self, 'insert', (index, value), {}, edit)

    def __setitem__(self, index, value):
        t = self._tracker
        lock = t.lock
        lock.acquire()
        try:
            if type(index) is int and 0 <= index < len(self):
                at = index
            elif isinstance(index, slice):
                _list_set_slice(self, t, index, value)
                return
            else:
                at = _position(index, len(self))
                if at is None:
                    raise IndexError('list assignment index out of range')
            if type(value) not in ATOMIC:
                value = t.wrap(value, self, at)
            if not t.notify:
                list.__setitem__(self, at, value)
                return
            old = list.__getitem__(self, at)
            list.__setitem__(self, at, value)
            edit = SliceEdit(self, at, [old], [value]) if t.record else None
            t.changed(self, '__setitem__', (index, value), {}, edit)
        finally:
            lock.release()

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
        _list_rearrange(self, list.clear, 'clear', (), {})

    def reverse(self):
        _list_rearrange(self, list.reverse, 'reverse', (), {})

    def sort(self, *, key=None, reverse=False):
        kwargs = {}
        if key is not None:
            kwargs['key'] = key
        if reverse:
            kwargs['reverse'] = reverse
        _list_rearrange(self, list.sort, 'sort', (), kwargs)

    def __imul__(self, times):
        _list_rearrange(self, list.__imul__, '__imul__', (times,), {})
        return self

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


def _list_extend(lst, iterable, func_name):
    t = lst._tracker
    with t.lock:
        items = t.wrap_all(list(iterable), lst, len(lst))
        start = len(lst)
        list.extend(lst, items)
        if t.notify:
            edit = SliceEdit(lst, start, [], items) if t.record else None
            t.changed(lst, func_name, (items,), {}, edit)


def _list_set_slice(lst, t, index, value):
    items = list(value)
    start, stop, step = index.indices(len(lst))
    if step == 1:
        stop = max(start, stop)
        items = t.wrap_all(items, lst, start)
        before = list.__getitem__(lst, slice(start, stop))
        list.__setitem__(lst, slice(start, stop), items)
        edit = SliceEdit(lst, start, before, items)
    else:
        before = list(lst)
        positions = range(start, stop, step)
        if len(positions) == len(items):
            items = [t.wrap(item, lst, at)
                     for at, item in zip(positions, items)]
        list.__setitem__(lst, index, items)  # ValueError: no change
        edit = SliceEdit(lst, 0, before, list(lst))
    if t.notify:
        t.changed(lst, '__setitem__', (index, items), {},
                  edit if t.record else None)


def _list_rearrange(lst, method, func_name, args, kwargs):
    """Operations that may touch the whole list (edit: all of it)."""
    t = lst._tracker
    with t.lock:
        if not t.notify:
            method(lst, *args, **kwargs)
            return
        before = list(lst) if t.record else None
        try:
            method(lst, *args, **kwargs)
        except BaseException:
            # sort() fails half way on values it cannot compare; what
            # it did is a change like any other.
            if before is None or before == list(lst):
                raise
            t.changed(lst, func_name, args, kwargs,
                      SliceEdit(lst, 0, before, list(lst)))
            raise
        edit = SliceEdit(lst, 0, before, list(lst)) \
            if t.record else None
        t.changed(lst, func_name, args, kwargs, edit)


# -- set ------------------------------------------------------------------------

def _is_set(value):
    return isinstance(value, (set, frozenset))


class SetWrapper(_Tracked, _SetBase):
    """A tracked set."""

    __slots__ = ('_tracker', '_parent')

    def add(self, element):
        t = self._tracker
        lock = t.lock
        lock.acquire()
        try:
            if not t.notify:
                set.add(self, element)
                return
            added = set() if element in self else {element}
            set.add(self, element)
            t.changed(self, 'add', (element,), {},
                      SetEdit(self, added, set()) if t.record else None)
        finally:
            lock.release()

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

    def update(self, *others):
        with self._tracker.lock:
            others = tuple(_iterable(o) for o in others)
            new = set().union(*others)
            _set_change(self, 'update', others, new - self, set())

    def intersection_update(self, *others):
        with self._tracker.lock:
            others = tuple(_iterable(o) for o in others)
            keep = set.intersection(self, *others)
            _set_change(self, 'intersection_update', others, set(), self - keep)

    def difference_update(self, *others):
        with self._tracker.lock:
            others = tuple(_iterable(o) for o in others)
            gone = set().union(*others)
            _set_change(self, 'difference_update', others, set(), self & gone)

    def symmetric_difference_update(self, other):
        with self._tracker.lock:
            other = _iterable(other)
            flip = set(other)
            _set_change(self, 'symmetric_difference_update', (other,),
                         flip - self, flip & self)

    def __ior__(self, other):
        if not _is_set(other):
            return NotImplemented
        with self._tracker.lock:
            _set_change(self, '__ior__', (other,), other - self, set())
        return self

    def __iand__(self, other):
        if not _is_set(other):
            return NotImplemented
        with self._tracker.lock:
            _set_change(self, '__iand__', (other,), set(), self - other)
        return self

    def __isub__(self, other):
        if not _is_set(other):
            return NotImplemented
        with self._tracker.lock:
            _set_change(self, '__isub__', (other,), set(), self & other)
        return self

    def __ixor__(self, other):
        if not _is_set(other):
            return NotImplemented
        with self._tracker.lock:
            _set_change(self, '__ixor__', (other,), other - self, other & self)
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


def _set_change(s, func_name, args, added, removed):
    """Apply a computed change (both arguments are sets)."""
    t = s._tracker
    set.difference_update(s, removed)
    set.update(s, added)
    if t.notify:
        t.changed(s, func_name, args, {},
                  SetEdit(s, added, removed) if t.record else None)


#: The wrapper types, and the descriptor setting each one's ``_parent``.
WRAPPERS = {cls: cls.__dict__.get('_parent') or DictWrapper.__dict__['_parent']
            for cls in (DictWrapper, LazyDictWrapper, ListWrapper,
                        SetWrapper)}

#: The Python methods the C code of _speedups implements: with the
#: extension, they are taken off the classes (the C methods of the bases
#: serve instead) and handed to it as its fallback. (``__delitem__``
#: shares its C slot with ``__setitem__``: left on the class, it would
#: make Python call both through that slot's slow generic version; the C
#: slot calls it for deletions.)
FAST_METHODS = {
    DictWrapper: ('__setitem__', '__delitem__', 'update'),
    ListWrapper: ('__setitem__', '__delitem__', 'append', 'sort'),
    SetWrapper: ('add',),
}


#: With the extension: (class, name) -> the Python method of FAST_METHODS
#: (the tests hold the C methods to them).
PYTHON_METHODS = {}


def _install_speedups(tracker_class):
    """Hand the Python methods over to the C code (called by tracker.py,
    once the Tracker class whose slots it reads exists)."""
    fallbacks = {}
    for cls, names in FAST_METHODS.items():
        for name in names:
            PYTHON_METHODS[cls, name] = cls.__dict__[name]
            fallbacks['%s.%s' % (cls.__name__, name)] = cls.__dict__[name]
    _speedups.setup(tracker_class, DictWrapper, ListWrapper, SetWrapper,
                    KeyEdit, SliceEdit, SetEdit, MISSING, fallbacks)
    # Only now: a wrapper made before setup() runs the Python methods.
    for cls, names in FAST_METHODS.items():
        for name in names:
            delattr(cls, name)
