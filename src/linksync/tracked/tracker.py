"""The tracker behind a tracked structure, and :func:`track`.

One :class:`Tracker` serves every wrapper of one structure (reachable as
``x._tracker`` from any of them). It holds the re-entrant lock all
mutations take, wraps the containers stored in the structure, works out
the path of a changed part, and commits changes: save through the backend,
record history, tell the observers (snapshots, device sync), call the
callback.

Transactions (``with tracked:``) collect the changes of the block and
commit them together at its end: one save, one callback with the list of
changes. An exception leaving the block takes the block's changes back
with their edits (see :mod:`linksync.tracked.changes`); nothing is saved or
reported. Blocks nest: an inner block that fails takes back only its own
changes. A save that fails takes its changes back as well, so the
structure in memory never holds what its file does not.

The lock is held for the whole of a block, so other threads wait to change
the structure until it ends. Readers are not locked out: a thread reading
while another one is inside a block may see the block half done.
"""

import collections
import threading
import weakref

from zope.interface import implementer

from linksync.tracked.interfaces import ITracker
from linksync.tracked.changes import Change
from linksync.tracked.errors import TrackedSaveError
from linksync.tracked import wrappers as _wrappers
from linksync.tracked.formats import backend_for
from linksync.tracked.values import kind
from linksync.tracked.wrappers import (
    ATOMIC, DictWrapper, LazyDictWrapper, ListWrapper, SetWrapper, UNLOADED,
    WRAPPERS)

_new_dict = DictWrapper.__new__
_new_list = ListWrapper.__new__
_new_set = SetWrapper.__new__


#: The tracker's lock: threading.RLock, or the same in C that the C
#: wrappers take without a method call.
_RLock = _wrappers._speedups.RLock if _wrappers.SPEEDUPS else \
    threading.RLock


@implementer(ITracker)
class Tracker:
    """The state shared by the wrappers of one tracked structure."""

    # What every mutation reads: slots, which the C wrappers read at their
    # offsets (instances keep a __dict__ for the rest).
    __slots__ = ('lock', 'notify', 'record', '__dict__', '__weakref__')

    def __init__(self, name=None, callback=None, backend=None,
                 dot_access=True, history=0):
        self.lock = _RLock()
        self.name = name
        self.backend = backend
        self.dot_access = dot_access
        self.root = None
        self.history = History(history) if history else None
        self._callback = callback
        self._observers = weakref.WeakSet()
        self._log = None       # the changes of the open transaction
        self._marks = []       # where each open block's changes start
        self._replaying = False
        self._update_flags()

    # -- what a mutation has to do ----------------------------------------------

    def _update_flags(self):
        observers = list(self._observers)
        # What commits iterate: a plain tuple of weak references (iterating
        # a WeakSet costs a microsecond).
        self._watchers = tuple(weakref.ref(o) for o in observers)
        #: Edits (for undo, rollback, precise areas) are needed.
        self.record = bool(
            self.backend is not None or self.history is not None or
            self._log is not None or
            any(o.needs_edits for o in observers))
        #: Somebody wants Change objects.
        self.notify = self.record or self._callback is not None or \
            bool(observers)

    @property
    def callback(self):
        return self._callback

    @callback.setter
    def callback(self, callback):
        with self.lock:
            self._callback = callback
            self._update_flags()

    def add_observer(self, observer):
        """Have observer.committed(changes) called after every commit.

        `observer.needs_edits` says whether the changes must carry edits.
        Observers are held weakly: one that is dropped stops observing.
        """
        with self.lock:
            self._observers.add(observer)
            self._update_flags()

    def remove_observer(self, observer):
        with self.lock:
            self._observers.discard(observer)
            self._update_flags()

    # -- wrapping -------------------------------------------------------------------

    def wrap(self, value, parent=None, key=None, memo=None):
        """The value to store at parent[key]: containers become wrappers.

        A wrapper of this structure is stored as it is (it is now found at
        parent[key]); any other dict, list or set is copied into wrappers,
        at every depth (a wrapper of another structure too).
        """
        cls = type(value)
        if cls in ATOMIC:
            return value
        setter = WRAPPERS.get(cls)
        if setter is not None and value._tracker is self:
            setter.__set__(value, None if parent is None else (parent, key))
            return value
        what = kind(value)
        if what is None:
            return value
        if memo is None:
            memo = {}
        seen = memo.get(id(value))
        if seen is not None:
            return seen[1]
        link = None if parent is None else (parent, key)
        if what == 'dict':
            w = _new_dict(DictWrapper)
            object.__setattr__(w, '_tracker', self)
            object.__setattr__(w, '_parent', link)
            memo[id(value)] = (value, w)
            dict.update(w, value)
            nested = [(k, v) for k, v in dict.items(w)
                      if type(v) not in ATOMIC]
            for k, v in nested:
                dict.__setitem__(w, k, self.wrap(v, w, k, memo))
        elif what == 'list':
            w = _new_list(ListWrapper)
            w._tracker = self
            w._parent = link
            memo[id(value)] = (value, w)
            list.extend(w, value)
            for i, v in enumerate(w):
                if type(v) not in ATOMIC:
                    list.__setitem__(w, i, self.wrap(v, w, i, memo))
        else:
            w = _new_set(SetWrapper)
            w._tracker = self
            w._parent = link
            memo[id(value)] = (value, w)
            set.update(w, value)
        return w

    def wrap_all(self, items, parent, start):
        """wrap() for values stored from index `start` of a list."""
        for offset, item in enumerate(items):
            if type(item) not in ATOMIC:
                items[offset] = self.wrap(item, parent, start + offset)
        return items

    def lazy_root(self, keys):
        """A LazyDictWrapper root holding `keys`, none of them loaded."""
        w = dict.__new__(LazyDictWrapper)
        object.__setattr__(w, '_tracker', self)
        object.__setattr__(w, '_parent', None)
        dict.update(w, dict.fromkeys(keys, UNLOADED))
        return w

    # -- paths ----------------------------------------------------------------------

    def reparent(self, node, parent, key):
        """Tell the wrapper `node` that it is found at parent[key] now."""
        setter = WRAPPERS.get(type(node))
        if setter is not None:
            setter.__set__(node, (parent, key))

    def path_of(self, container):
        """The path from the root to `container` (a list), or None.

        None means the container is no longer part of the structure (it was
        removed, or replaced): changes to it are not reported.
        """
        path = []
        node = container
        root = self.root
        while node is not root:
            link = node._parent
            if link is None:
                return None
            parent, key = link
            if isinstance(parent, list):
                if not (0 <= key < len(parent) and
                        list.__getitem__(parent, key) is node):
                    for i, item in enumerate(list.__iter__(parent)):
                        if item is node:
                            key = i
                            WRAPPERS[type(node)].__set__(node, (parent, i))
                            break
                    else:
                        return None
            elif dict.get(parent, key, UNLOADED) is not node:
                return None
            path.append(key)
            node = parent
        path.reverse()
        return path

    # -- changes -------------------------------------------------------------------

    def changed(self, target, func_name, args, kwargs, edit):
        """Called by a wrapper, with the lock held, after it changed."""
        if edit is not None:
            edit.seal()
        change = Change(self.root, self.name, self.path_of(target),
                        func_name, args, kwargs, target, edit)
        if self._log is not None:
            self._log.append(change)
        elif self.backend is None and self.history is None and \
                not self._watchers:
            # Nothing to save, record or tell observers (what _commit
            # would find out, at twice the cost): only the callback.
            if change.path is not None and self._callback is not None:
                self._callback(change)
        else:
            self._commit([change], single=True)

    def begin(self):
        """Open a transaction (``with tracked:``); blocks nest."""
        self.lock.acquire()
        if self._log is None:
            self._log = []
            self._update_flags()
        self._marks.append(len(self._log))

    def end(self, ok):
        """Close the innermost block: commit, or take its changes back."""
        try:
            mark = self._marks.pop()
            if not ok:
                self._take_back(self._log[mark:])
                del self._log[mark:]
            if not self._marks:
                changes, self._log = self._log, None
                self._update_flags()
                if changes:
                    self._commit(changes, single=False)
        finally:
            self.lock.release()

    def _take_back(self, changes):
        for change in reversed(changes):
            change.edit.undo(raw=True)

    def _commit(self, changes, single):
        reported = changes if single and changes[0].path is not None \
            else [c for c in changes if c.path is not None]
        if reported and self.backend is not None:
            try:
                self.backend.save(self.root, reported)
            except Exception as e:
                self._take_back(changes)
                raise TrackedSaveError(
                    'cannot save %s to %s (the change was taken back): %s'
                    % (self._describe(), self.backend.path, e)) from e
        if self.history is not None and not self._replaying:
            self.history.push(changes)
        gone = False
        for ref in self._watchers:
            observer = ref()
            if observer is None:
                gone = True
            else:
                observer.committed(reported)
        if gone:  # a snapshot was dropped: maybe edits are not needed now
            self._update_flags()
        if self._callback is not None and reported:
            self._callback(reported[0] if single else reported)

    def _describe(self):
        return repr(self.name) if self.name is not None else \
            'the tracked structure'

    # -- undo / redo ----------------------------------------------------------------

    def undo(self):
        """Take the last change (or block) back; False when none is left."""
        return self._replay('undo')

    def redo(self):
        """Make the last undone change again; False when none is left."""
        return self._replay('redo')

    def _replay(self, direction):
        with self.lock:
            if self.history is None:
                raise ValueError('%s keeps no history: track it with '
                                 'history=N' % self._describe())
            source, target = (self.history.done, self.history.undone) \
                if direction == 'undo' else \
                (self.history.undone, self.history.done)
            if not source:
                return False
            group = source.pop()
            self._replaying = True
            try:
                self.begin()
                ok = False
                try:
                    if direction == 'undo':
                        for edit in reversed(group):
                            edit.undo(raw=False)
                    else:
                        for edit in group:
                            edit.redo(raw=False)
                    ok = True
                finally:
                    self.end(ok)
            except BaseException:
                source.append(group)
                raise
            finally:
                self._replaying = False
            target.append(group)
            return True

    # -- persistence ----------------------------------------------------------------

    def save(self):
        """Write the whole structure to its backend now."""
        with self.lock:
            if self.backend is not None:
                self.backend.save(self.root, None)

    def close(self):
        """Release the backend (files, connections); changes still work
        in memory but are no longer saved."""
        with self.lock:
            if self.backend is not None:
                backend, self.backend = self.backend, None
                self._update_flags()
                backend.close()


if _wrappers.SPEEDUPS:
    _wrappers._install_speedups(Tracker)


class History:
    """Bounded undo history: groups of edits, newest last."""

    def __init__(self, size):
        self.done = collections.deque(maxlen=size)
        self.undone = []

    def push(self, changes):
        self.done.append([c.edit for c in changes])
        self.undone.clear()


def tracker_of(value):
    """The Tracker of a tracked structure; TypeError for anything else."""
    if type(value) in WRAPPERS:
        return value._tracker
    raise TypeError('not a tracked structure: %s' % type(value).__name__)


def track(obj, name=None, callback=None, persist=True, dot_access=True,
          history=0):
    """Track `obj` (a dict, list or set, nested at any depth).

    * `name`: the name of the structure; it names the file too
      (``NAME.yaml`` by default).
    * `callback`: called with a :class:`Change` after every change, and
      with the list of a ``with`` block's changes at its end.
    * `persist`: True (the default) saves to safe YAML when the structure
      has a name; False does not save; a format name (see
      :data:`linksync.tracked.formats.FORMATS`) saves to ``NAME.EXT``
      in that format; a backend object saves there. When the file exists,
      its contents are tracked instead of `obj`; otherwise `obj` is written.
    * `dot_access`: read and write dict keys as attributes.
    * `history`: keep that many changes (or blocks) for undo and redo.

    Returns the tracked structure, a DictWrapper, ListWrapper or SetWrapper
    (a LazyDictWrapper for the shelve and ZODB formats).
    """
    if kind(obj) is None:
        raise TypeError('track() takes a dict, list or set, not %s'
                        % type(obj).__name__)
    backend = backend_for(persist, name)
    tracker = Tracker(name, callback, backend, dot_access, history)
    if backend is None:
        tracker.root = tracker.wrap(obj)
    else:
        tracker.root = backend.open(tracker, obj)
    return tracker.root

