"""Where tracked structures are saved: the formats and their backends.

Whole-file formats write the whole structure after every change (or
``with`` block), atomically: into a temporary file of the same directory,
flushed and fsynced, then renamed over the old file (and the directory
fsynced). A crash leaves the old file or the new one, never a mix; the
temporary file a crash leaves behind is removed the next time the
structure is opened.

=============  ===============  ==========================================
format         file             what it stores
=============  ===============  ==========================================
``yaml``       ``NAME.yaml``    safe YAML, block style, keys sorted (the
                                default): dicts, lists, sets, str, int,
                                float, bool, None, bytes, dates
``json``       ``NAME.json``    JSON: dicts with string keys, lists, str,
                                int, float, bool, None
``full-yaml``  ``NAME.yaml``    YAML with Python tags: tuples and objects
                                too (loading runs constructors: use it
                                only for files you trust)
``pickle``     ``NAME.pickle``  any picklable value (same warning)
``shelve``     ``NAME.shelve``  a dict with string keys; one pickle per
                                key in SQLite (see
                                :mod:`linksync.tracked.shelf`)
``zodb``       ``NAME.fs``      a dict; one ZODB object per key (see
                                :mod:`linksync.tracked.zodbbackend`)
=============  ===============  ==========================================

The safe YAML and JSON formats refuse, with an error naming its path, a
value they would not give back as it was (a tuple would come back as a
list, a set or an int key cannot be JSON): the change is taken back.

Shelve and ZODB are lazy: the keys are read when the structure is opened,
a value the first time it is used, and a save writes only the top-level
keys that changed, so its cost does not grow with the structure.

A file that cannot be read raises :class:`TrackedFileError` naming the file
and the position of the problem; the file is left untouched.
"""

import datetime
import glob
import io
import json
import os
import pickle
import tempfile

import yaml
from zope.interface import implementer

from linksync.tracked.interfaces import ITrackedBackend
from linksync.tracked.changes import KeyEdit, MISSING, Member
from linksync.tracked.errors import TrackedFileError, TrackedSaveError
from linksync.tracked.paths import get, show
from linksync.tracked.values import kind, plain_copy
from linksync.tracked.wrappers import (
    DictWrapper, ListWrapper, SetWrapper, UNLOADED)

_UMASK = os.umask(0o022)
os.umask(_UMASK)


# -- atomic files ------------------------------------------------------------------

def _temporary_prefix(path):
    return '.%s.' % os.path.basename(path)


def atomic_write(path, data):
    """Replace the file at `path` by `data` (bytes), all or nothing."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_UMASK
    fd, temporary = tempfile.mkstemp(
        prefix=_temporary_prefix(path), suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    try:
        dirfd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dirfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dirfd)


def remove_leftovers(path):
    """Remove the temporary files a crash during atomic_write() left."""
    pattern = os.path.join(
        os.path.dirname(os.path.abspath(path)),
        glob.escape(_temporary_prefix(path)) + '*.tmp')
    for leftover in glob.glob(pattern):
        try:
            os.unlink(leftover)
        except OSError:
            pass


# -- what a format can store ------------------------------------------------------------

class _Rules:
    """The values a format gives back as they were."""

    def __init__(self, format, scalars, containers, keys):
        self.format = format
        self.scalars = scalars
        self.containers = containers
        self.keys = keys

    def check(self, root, changes):
        """Raise TypeError naming the path of a value the format refuses."""
        if changes is None:
            self._check(root, ())
            return
        for change in changes:
            for area in change.areas():
                if area and type(area[-1]) is Member:
                    area = area[:-1]
                value = get(root, area)
                if value is MISSING:
                    continue
                if area:
                    parent = get(root, area[:-1])
                    if isinstance(parent, dict) and \
                            type(area[-1]) not in self.keys:
                        self._refuse('key %r' % (area[-1],), area[:-1])
                self._check(value, area)

    def _check(self, value, path):
        stack = [(value, path)]
        while stack:
            value, path = stack.pop()
            cls = type(value)
            if cls in self.scalars:
                continue
            what = kind(value) if cls not in (tuple, frozenset) else None
            if what not in self.containers:
                self._refuse(what or cls.__name__, path)
            if what == 'dict':
                for k, v in value.items():
                    if type(k) not in self.keys:
                        self._refuse('key %r' % (k,), path)
                    stack.append((v, path + (k,)))
            elif what == 'list':
                stack.extend((v, path + (i,)) for i, v in enumerate(value))
            else:
                for element in value:
                    if type(element) not in self.scalars:
                        self._refuse('set element %r' % (element,), path)

    def _refuse(self, what, path):
        raise TypeError('%s cannot store the %s at %s' % (
            self.format, what, show(path)))


_YAML_SCALARS = frozenset({str, int, float, bool, type(None), bytes,
                           datetime.date, datetime.datetime})
SAFE_YAML_RULES = _Rules('safe YAML', _YAML_SCALARS,
                         {'dict', 'list', 'set'}, _YAML_SCALARS)
JSON_RULES = _Rules('JSON', frozenset({str, int, float, bool, type(None)}),
                    {'dict', 'list'}, frozenset({str}))


# -- whole-file formats ------------------------------------------------------------------

@implementer(ITrackedBackend)
class Backend:
    """What the backends share: a path, and a name + extension."""

    extension = None
    path = None

    @classmethod
    def for_name(cls, name):
        return cls(name + cls.extension)

    def __repr__(self):
        return '<%s %s>' % (type(self).__name__, self.path)

    def save_first(self, tracker, root):
        """Save a new structure; TrackedSaveError (and close) if it fails."""
        try:
            self.save(root, None)
        except Exception as e:
            self.close()
            raise TrackedSaveError('cannot save %r to %s: %s' % (
                tracker.name, self.path, e)) from e
        return root


class FileBackend(Backend):
    """A format writing the whole structure to one file.

    Subclasses give `extension`, `parse(bytes)` and `dump(root)`, and may
    give `rules` (what the format refuses to store).
    """

    lazy = False
    rules = None

    def __init__(self, path):
        self.path = os.fspath(path)

    def open(self, tracker, default):
        remove_leftovers(self.path)
        if os.path.exists(self.path):
            return tracker.wrap(self.load())
        return self.save_first(tracker, tracker.wrap(default))

    def load(self):
        """The structure in the file (plain data)."""
        try:
            with open(self.path, 'rb') as f:
                data = f.read()
        except OSError as e:
            raise TrackedFileError(self.path, None,
                                   e.strerror or str(e)) from None
        value = self.parse(data)
        if kind(value) is None:
            raise TrackedFileError(
                self.path, self.start, 'holds %s, not a dict, list or set'
                % ('no data' if value is None else
                   'a ' + type(value).__name__))
        return value

    start = 'byte 0'

    def save(self, root, changes):
        if self.rules is not None:
            self.rules.check(root, changes)
        atomic_write(self.path, self.dump(root))

    def close(self):
        pass


def _yaml_position(error):
    mark = getattr(error, 'problem_mark', None) or \
        getattr(error, 'context_mark', None)
    if mark is not None:
        return 'line %d, column %d' % (mark.line + 1, mark.column + 1)
    position = getattr(error, 'position', None)
    if position is not None:
        return 'character %d' % position
    return None


def _yaml_problem(error):
    problem = getattr(error, 'problem', None)
    if problem:
        context = getattr(error, 'context', None)
        return '%s %s' % (context, problem) if context else problem
    return str(error).splitlines()[0]


class _YAMLFile(FileBackend):
    extension = '.yaml'
    start = 'line 1, column 1'
    dumper = loader = None

    def parse(self, data):
        try:
            return yaml.load(data, Loader=self.loader)
        except yaml.YAMLError as e:
            raise TrackedFileError(self.path, _yaml_position(e),
                                   _yaml_problem(e)) from None

    def dump(self, root):
        return yaml.dump(root, Dumper=self.dumper, default_flow_style=False,
                         allow_unicode=True, sort_keys=True).encode('utf-8')


def _dumper(base):
    """`base` (a PyYAML Dumper) writing wrappers as plain containers."""
    dumper = type('Tracked' + base.__name__, (base,), {})
    representer = yaml.representer.SafeRepresenter
    dumper.add_multi_representer(DictWrapper, representer.represent_dict)
    dumper.add_multi_representer(ListWrapper, representer.represent_list)
    dumper.add_multi_representer(SetWrapper, representer.represent_set)
    return dumper


class SafeYAMLFile(_YAMLFile):
    """Safe YAML (the default format)."""

    rules = SAFE_YAML_RULES
    dumper = _dumper(getattr(yaml, 'CSafeDumper', yaml.SafeDumper))
    loader = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)


class FullYAMLFile(_YAMLFile):
    """YAML with Python tags (tuples, objects): files you trust only."""

    dumper = _dumper(getattr(yaml, 'CDumper', yaml.Dumper))
    loader = getattr(yaml, 'CUnsafeLoader', yaml.UnsafeLoader)


class JSONFile(FileBackend):
    """JSON, indented."""

    extension = '.json'
    start = 'line 1, column 1'
    rules = JSON_RULES

    def parse(self, data):
        try:
            return json.loads(data.decode('utf-8'))
        except UnicodeDecodeError as e:
            raise TrackedFileError(self.path, 'byte %d' % e.start,
                                   'not UTF-8 text') from None
        except json.JSONDecodeError as e:
            raise TrackedFileError(
                self.path, 'line %d, column %d' % (e.lineno, e.colno),
                e.msg) from None

    def dump(self, root):
        return (json.dumps(root, indent=2, ensure_ascii=False) +
                '\n').encode('utf-8')


class PickleFile(FileBackend):
    """Pickle (any picklable value): files you trust only."""

    extension = '.pickle'

    def parse(self, data):
        f = io.BytesIO(data)
        try:
            return pickle.Unpickler(f).load()
        except Exception as e:
            raise TrackedFileError(self.path, 'byte %d' % f.tell(), '%s: %s'
                                   % (type(e).__name__, e)) from None

    def dump(self, root):
        return pickle.dumps(root, protocol=pickle.HIGHEST_PROTOCOL)


# -- lazy formats ----------------------------------------------------------------------

class LazyBackend(Backend):
    """A format storing a dict one top-level key at a time.

    Subclasses connect to their storage and implement keys(),
    load_value(key) and store(updates, replace).
    """

    lazy = True

    def open(self, tracker, default):
        found = self.connect(tracker)
        if found:
            return tracker.lazy_root(self.keys())
        if kind(default) != 'dict':
            self.close()
            raise TypeError('the %s format stores a dict, not %s' % (
                self.format, type(default).__name__))
        root = tracker.lazy_root(())
        for key, value in default.items():
            dict.__setitem__(root, key, tracker.wrap(value, root, key))
        return self.save_first(tracker, root)

    def save(self, root, changes):
        if changes is None:
            keys = list(dict.keys(root))
        else:
            keys = set()
            for change in changes:
                if change.path:
                    keys.add(change.path[0])
                elif isinstance(change.edit, KeyEdit):
                    keys.update(change.edit.before)
                else:  # pragma: no cover - a dict root has key edits
                    keys.update(dict.keys(root))
        updates = {}
        for key in keys:
            value = dict.get(root, key, MISSING)
            if value is UNLOADED:
                continue
            updates[key] = value if value is MISSING else plain_copy(value)
        self.store(updates, replace=changes is None)
