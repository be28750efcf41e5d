"""Tracked structures: plain Python data that reports, saves and syncs.

``track(obj, name)`` wraps a dict, list or set (nested at any depth) so
that every change is reported to a callback with a change object, saved
to a file (safe YAML by default), taken back when a ``with`` block fails,
diffed and patched, undone and redone, and kept in sync between devices.
docs/tracked.txt tells the story; the modules:

* :mod:`~linksync.tracked.wrappers`: DictWrapper, ListWrapper, SetWrapper;
* :mod:`~linksync.tracked.tracker`: the Tracker (lock, transactions,
  history) and :func:`track`;
* :mod:`~linksync.tracked.changes`: Change and the edits undoing it;
* :mod:`~linksync.tracked.persistence`, :mod:`~linksync.tracked.shelf`,
  :mod:`~linksync.tracked.zodbbackend`: the formats;
* :mod:`~linksync.tracked.diffing`: snapshot, diff, patch, revert;
* :mod:`~linksync.tracked.devicesync` and :mod:`~linksync.tracked.wire`:
  sync between devices.
"""

from linksync.tracked.changes import Change
from linksync.tracked.diffing import diff, patch, revert, snapshot
from linksync.tracked.errors import (
    TrackedError, TrackedFileError, TrackedSaveError)
from linksync.tracked.formats import FORMATS
from linksync.tracked.persistence import (
    FullYAMLFile, JSONFile, PickleFile, SafeYAMLFile)
from linksync.tracked.shelf import ShelveBackend
from linksync.tracked.tracker import track, tracker_of
from linksync.tracked.values import plain_copy
from linksync.tracked.wrappers import (
    DictWrapper, LazyDictWrapper, ListWrapper, SetWrapper)
from linksync.tracked.zodbbackend import ZODBBackend


def undo(tracked):
    """Take back the last change (or ``with`` block) of `tracked`.

    The structure must have been tracked with ``history=N``. Returns False
    when there is nothing left to undo.
    """
    return tracker_of(tracked).undo()


def redo(tracked):
    """Make the last undone change again; False when there is none."""
    return tracker_of(tracked).redo()


__all__ = [
    'Change', 'DictWrapper', 'FORMATS', 'FullYAMLFile', 'JSONFile',
    'LazyDictWrapper', 'ListWrapper', 'PickleFile', 'SafeYAMLFile',
    'SetWrapper', 'ShelveBackend', 'TrackedError', 'TrackedFileError',
    'TrackedSaveError', 'ZODBBackend', 'diff', 'patch', 'plain_copy',
    'redo', 'revert', 'snapshot', 'track', 'tracker_of', 'undo',
]
