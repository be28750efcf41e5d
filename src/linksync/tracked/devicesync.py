"""Sync between devices: differential synchronisation over XML-RPC.

One process is the hub (:class:`SyncHub`): it serves tracked structures by
name over XML-RPC (``tracked.sync``), on the project's hardened XML-RPC
resource. Other processes are devices (:class:`SyncDevice`): each keeps its
own tracked structure of the same name in sync with the hub's, calling it
with :class:`linksync.xmlrpc.proxy.CallbackProxy`. Everybody can change their
structure at any time; the hub's structure is changed too, by its own
process and by the devices' edits.

The protocol (differential synchronisation, after Neil Fraser), one cycle
per ``device.sync()``:

1. The device diffs its structure against its shadow (its copy of what it
   last agreed with the hub), only where something changed since the last
   cycle. It sends the diff, the version of its shadow (``base``) and the
   checksum the shadow has with the diff applied, then applies the diff to
   its shadow.
2. The hub applies the diff strictly to its shadow of that device (which
   must have the same version and, then, the same checksum), then merges it
   into its structure path by path (the conflict rule below). It diffs its
   structure against the shadow, applies that diff to the shadow, and
   answers it with the new version, the checksum and, for each path, the
   device that last wrote it.
3. The device applies the answer strictly to its shadow and merges it into
   its structure (a path it changed meanwhile is kept or lost by the same
   rule). Shadows on both sides are now equal.

Messages are JSON text (:mod:`linksync.tracked.wire`) in one XML-RPC string
parameter: ``tracked.sync(secret, name, device, message) -> message``. A
device's first message is ``{"join": true}``: the hub answers with its whole
structure, which the device adopts (a device joining starts from the hub's
data; its own is replaced). A message the hub cannot read or apply is
answered with a Fault and changes nothing.

**Conflict rule.** A path is a dict key, a set element, or a whole list
(concurrent edits to one list conflict as a whole). Two devices' changes to
the same path conflict when neither had seen the other's. The change of
the device whose id is greater (as strings) wins, whichever reaches the
hub first: the hub remembers who wrote each path since every device last
synced, and a device merging the hub's answer applies the same rule to a
path it changed during the round trip. A device never loses to a change it
had seen. The hub takes part under its own ``device_id``.

**Catching up.** A cycle that fails (hub down, network cut) takes the
device's shadow back, so the next cycle sends everything since the last
success. A device given a ``shadow_path`` keeps its shadow in that file
(JSON, replaced atomically after every cycle that changed it): restarted,
it sends what changed in its structure since (its own edits, saved by its
backend while it was down or before a crash) instead of joining afresh,
which would replace its data by the hub's. An answer lost on the way is
recovered by the hub's backup of the previous shadow. A hub that
restarted, or whose shadow does not match, answers ``resync``; the device
then sends its shadow whole and the merge proceeds from it.

Everything the hub and the device do runs in the reactor thread, holding
the tracked structure's lock; other threads may change the structure at
any time.
"""

import hmac

from twisted.internet import defer, task
from twisted.logger import Logger
from zope.interface import implementer

from linksync.xmlrpc.proxy import CallbackError, CallbackProxy, make_agent
from linksync.tracked.interfaces import ISyncDevice, ISyncHub
from linksync.tracked import wire
from linksync.tracked.diffing import AreaRecorder, diff, swap
from linksync.tracked.merging import (
    SyncError, apply_strict, merge_paths, put, strip_members, whole_lists)
from linksync.tracked.paths import get
from linksync.tracked.persistence import atomic_write
from linksync.tracked.tracker import tracker_of
from linksync.tracked.values import kind, plain_copy
from linksync.xmlrpc.faults import INVALID_PARAMS, UNAVAILABLE, Fault
from linksync.xmlrpc.resource import (
    DEFAULT_MAX_REQUEST_BYTES, MethodTable, Param, Unauthorized,
    XMLRPCResource)

log = Logger()

#: The most a device id may be long.
MAX_DEVICE_ID = 200


def _overlap(a, b):
    return a[:len(b)] == b or b[:len(a)] == a


# -- the hub ---------------------------------------------------------------------

class _Peer:
    """What the hub keeps for one device of one structure."""

    def __init__(self, shadow, base, seen):
        self.shadow = shadow
        self.base = base
        self.seen = seen        # hub revision the shadow reflects
        self.backup = None      # (base, edits, answer): the last cycle
        self.recorder = AreaRecorder()


class _Served:
    """One structure the hub serves: its peers, revisions and writers."""

    needs_edits = True

    def __init__(self, hub, tracked):
        self.hub = hub
        self.tracked = tracked
        self.tracker = tracker_of(tracked)
        self.revision = 0
        self.writers = {}       # merge path -> (device id, revision)
        self.peers = {}
        self.merging = False
        self.tracker.add_observer(self)

    def committed(self, changes):
        """Record the hub's own writes (the observer of the structure)."""
        if self.merging or not changes or not self.peers:
            return  # (a device joining later starts from here)
        self.revision += 1
        for change in changes:
            for area in change.areas():
                path = whole_lists(area, self.tracked)
                self.writers[path] = (self.hub.device_id, self.revision)

    def rival(self, path, device, seen):
        """(greatest other writer of `path` since `seen`, whether `device`
        wrote it itself)."""
        others = set()
        own = False
        for written, (writer, revision) in self.writers.items():
            if revision > seen and _overlap(path, written):
                if writer == device:
                    own = True
                else:
                    others.add(writer)
        return (max(others) if others else None), own

    def wins(self, device, path, seen):
        rival, own = self.rival(path, device, seen)
        if rival is None:
            return own or device > self.hub.device_id
        return device > rival

    def handle(self, device, message):
        with self.tracker.lock:
            if message.get('join'):
                return self._join(device)
            peer = self._peer_for(device, message)
            if peer is None:
                return {'status': 'resync', 'reason': 'unknown device or '
                        'version'}
            return self._cycle(device, peer, message)

    def _join(self, device):
        peer = _Peer(plain_copy(self.tracked), 1, self.revision)
        self.tracker.add_observer(peer.recorder)
        old = self.peers.get(device)
        if old is not None:
            self.tracker.remove_observer(old.recorder)
        self.peers[device] = peer
        return {'status': 'ok', 'base': 1, 'data': peer.shadow,
                'checksum': wire.checksum(peer.shadow)}

    def _peer_for(self, device, message):
        base = message['base']
        peer = self.peers.get(device)
        if 'shadow' in message:
            shadow = message['shadow']
            if kind(shadow) != kind(self.tracked):
                raise SyncError('the shadow of %s is a %s, the structure a '
                                '%s' % (device, type(shadow).__name__,
                                        kind(self.tracked)))
            if peer is None:
                peer = self.peers[device] = _Peer(shadow, base, 0)
                self.tracker.add_observer(peer.recorder)
            peer.shadow, peer.base, peer.seen = shadow, base, 0
            peer.backup = None
            peer.recorder.add(None)  # compare everything on the way back
            return peer
        if peer is None:
            return None
        if base == peer.base:
            return peer
        if peer.backup is not None and base == peer.backup[0]:
            # The device did not get the last answer: back to the shadow
            # it still has.
            old_base, edits, answer = peer.backup
            apply_strict(swap(answer), peer.shadow)
            apply_strict(swap(edits), peer.shadow)
            peer.base, peer.backup = old_base, None
            peer.recorder.add(None)
            return peer
        return None

    def _cycle(self, device, peer, message):
        edits = message['edits']
        try:
            paths = merge_paths(edits, peer.shadow)
            before = {p: plain_copy(get(peer.shadow, p)) for p in paths}
            apply_strict(edits, peer.shadow)
        except (SyncError, TypeError) as e:
            # The device's shadow is not ours: start again from its shadow.
            return {'status': 'resync', 'reason': str(e)}
        if edits and message['checksum'] != wire.checksum(peer.shadow):
            apply_strict(swap(edits), peer.shadow)
            return {'status': 'resync', 'reason': 'checksum mismatch'}
        merged = []
        self.merging = True
        try:
            with self.tracked:
                for path in paths:
                    if get(self.tracked, path) == before[path] or \
                            self.wins(device, path, peer.seen):
                        put(self.tracked, path, peer.shadow)
                        merged.append(path)
        except Exception:
            apply_strict(swap(edits), peer.shadow)
            raise
        finally:
            self.merging = False
        if merged:
            self.revision += 1
            for path in merged:
                self.writers[path] = (device, self.revision)
        areas = peer.recorder.take()
        if areas is not None:
            areas.update(strip_members(paths))
        answer = diff(peer.shadow, self.tracked, areas)
        writers = []
        for path in merge_paths(answer, peer.shadow):
            rival, own = self.rival(path, device, peer.seen)
            writers.append([list(path), rival or self.hub.device_id])
        apply_strict(answer, peer.shadow)
        peer.backup = (peer.base, edits, answer)
        peer.base += 1
        peer.seen = self.revision
        self._prune()
        return {'status': 'ok', 'base': peer.base, 'edits': answer,
                'writers': writers,
                'checksum': wire.checksum(peer.shadow) if answer else None}

    def _prune(self):
        low = min(peer.seen for peer in self.peers.values())
        self.writers = {path: written for path, written
                        in self.writers.items() if written[1] > low}


def _check_message(message):
    """The sync message, validated; SyncError says what is wrong."""
    if not isinstance(message, dict):
        raise SyncError('a sync message is an object')
    if message.get('join') is True:
        return message
    if type(message.get('base')) is not int:
        raise SyncError('base must be an integer')
    edits = message.get('edits')
    if not isinstance(edits, list):
        raise SyncError('edits must be an array')
    for entry in edits:
        if not isinstance(entry, tuple) or len(entry) != 3 or \
                entry[0] not in ('add', 'remove', 'change') or \
                not isinstance(entry[1], list):
            raise SyncError('an edit must be (action, path, changes)')
        if entry[0] == 'change' and not (
                isinstance(entry[2], tuple) and len(entry[2]) == 2):
            raise SyncError('a change carries (old, new)')
        if entry[0] != 'change' and not (
                isinstance(entry[2], list) and all(
                    isinstance(c, tuple) and len(c) == 2
                    for c in entry[2])):
            raise SyncError('an add or remove carries [(key, value), ...]')
    if message.get('checksum') is not None and \
            not isinstance(message['checksum'], str):
        raise SyncError('checksum must be a string')
    return message


@implementer(ISyncHub)
class SyncHub:
    """Serves tracked structures to devices (``tracked.sync``).

    >>> from linksync.tracked import track
    >>> hub = SyncHub('hub', secret='s3cret')
    >>> hub.add(track({'todo': []}, 'shared', persist=False))
    >>> hub.names()
    ['shared']
    """

    table = MethodTable()

    def __init__(self, device_id='hub', secret='',
                 max_request_bytes=DEFAULT_MAX_REQUEST_BYTES):
        _check_device_id(device_id)
        self.device_id = device_id
        self.secret = secret
        self.max_request_bytes = max_request_bytes
        self.served = {}
        self._ports = []

    def add(self, tracked):
        """Serve `tracked` (a root) under its name."""
        name = tracker_of(tracked).name
        if not name:
            raise ValueError('a structure served to devices needs a name')
        self.served[name] = _Served(self, tracked)

    def names(self):
        return sorted(self.served)

    def resource(self):
        return XMLRPCResource(self.table.bind(self),
                                     self.max_request_bytes)

    def listen(self, endpoint='tcp:0:interface=127.0.0.1', reactor=None):
        """Listen on a Twisted server endpoint; a Deferred port."""
        from twisted.internet import endpoints
        from linksync.xmlrpc.site import LinkSyncSite
        if reactor is None:
            from twisted.internet import reactor
        site = LinkSyncSite(self.resource(), self.max_request_bytes)
        d = endpoints.serverFromString(reactor, endpoint).listen(site)
        d.addCallback(self._listening)
        return d

    def _listening(self, port):
        self._ports.append(port)
        return port

    def stop(self):
        """Stop listening; a Deferred."""
        ports, self._ports = self._ports, []
        return defer.gatherResults(
            [defer.maybeDeferred(p.stopListening) for p in ports])

    @table.method('tracked.sync', [
        Param('secret', str), Param('name', str),
        Param('device', str), Param('message', str)], str)
    def xmlrpc_sync(self, call, secret, name, device, message):
        """One cycle of differential sync of structure `name` with
        `device` (see docs/tracked.txt): message and answer are JSON."""
        if not hmac.compare_digest(secret.encode('utf-8'),
                                   self.secret.encode('utf-8')):
            raise Unauthorized()
        call.client_id = device
        served = self.served.get(name)
        if served is None:
            raise Fault(INVALID_PARAMS,
                               'no structure named %r here' % name)
        try:
            _check_device_id(device)
            if device == self.device_id:
                raise SyncError('device id %r is the hub\'s own' % device)
            message = _check_message(wire.loads(message))
            answer = served.handle(device, message)
        except (SyncError, wire.WireError) as e:
            raise Fault(INVALID_PARAMS,
                               'bad sync message from %s: %s' % (device, e))
        except Exception as e:
            log.failure('sync of {name} with {device} failed', name=name,
                        device=device)
            raise Fault(UNAVAILABLE, 'the hub cannot merge '
                               'the edits now: %s' % e)
        return wire.dumps(answer)


def _check_device_id(device_id):
    if not isinstance(device_id, str) or not device_id or \
            len(device_id) > MAX_DEVICE_ID:
        raise SyncError('a device id is a non-empty string of at most %d '
                        'characters' % MAX_DEVICE_ID)


# -- a device ------------------------------------------------------------------------

@implementer(ISyncDevice)
class SyncDevice:
    """Keeps a tracked structure in sync with the one a hub serves.

    `url` is the hub's XML-RPC URL; the structure's name is its tracker's.
    Cycles run in the reactor thread: call :meth:`sync` there (it returns a
    Deferred), or :meth:`start` periodic cycles on `clock`.
    """

    def __init__(self, tracked, url, device_id, secret='', reactor=None,
                 clock=None, timeout=60, shadow_path=None):
        _check_device_id(device_id)
        if reactor is None:
            from twisted.internet import reactor
        self.tracked = tracked
        self.tracker = tracker_of(tracked)
        if not self.tracker.name:
            raise ValueError('a structure synced between devices needs a '
                             'name')
        self.url = url
        self.device_id = device_id
        self.secret = secret
        self.clock = clock if clock is not None else reactor
        self.proxy = CallbackProxy(
            url, reactor, agent=make_agent(reactor, persistent=False),
            timeout=timeout)
        self.shadow = None
        self.base = None
        self.recorder = AreaRecorder()
        self.tracker.add_observer(self.recorder)
        self.resync = False
        self.last_error = None
        self._lock = defer.DeferredLock()
        self._loop = None
        self.shadow_path = shadow_path
        self._saved = None
        if shadow_path is not None:
            self._load_shadow()

    def __repr__(self):
        return '<SyncDevice %s of %r at %s>' % (
            self.device_id, self.tracker.name, self.url)

    # -- the shadow kept between runs -----------------------------------------

    def _load_shadow(self):
        path = self.shadow_path
        try:
            with open(path, encoding='utf-8') as f:
                text = f.read()
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as e:
            raise SyncError('cannot read the shadow file %s: %s'
                            % (path, e)) from None
        try:
            saved = wire.loads(text)
        except wire.WireError as e:
            raise SyncError('the shadow file %s is damaged: %s'
                            % (path, e)) from None
        if not isinstance(saved, dict) or type(saved.get('base')) is not int \
                or 'shadow' not in saved:
            raise SyncError('the shadow file %s is damaged: no base and '
                            'shadow in it' % path)
        if (saved.get('name'), saved.get('device')) != (
                self.tracker.name, self.device_id):
            raise SyncError(
                'the shadow file %s is the shadow of %r on device %r, not '
                'of %r on device %r' % (path, saved.get('name'),
                                        saved.get('device'),
                                        self.tracker.name, self.device_id))
        shadow = saved['shadow']
        if wire.checksum(shadow) != saved.get('checksum'):
            raise SyncError('the shadow file %s is damaged: wrong checksum'
                            % path)
        if kind(shadow) != kind(self.tracked):
            raise SyncError('the shadow file %s holds a %s, the structure '
                            'is a %s' % (path, type(shadow).__name__,
                                         kind(self.tracked)))
        self.shadow = shadow
        self.base = saved['base']
        self._saved = (self.base, saved['checksum'])
        # Whatever changed while the device was down is not recorded:
        # the first cycle compares the whole structure with the shadow.
        self.recorder.add(None)

    def _save_shadow(self):
        """Write the shadow to its file if it changed since it was last
        written (called holding the structure's lock)."""
        if self.shadow_path is None:
            return
        check = wire.checksum(self.shadow)
        if self._saved == (self.base, check):
            return
        text = wire.dumps({'name': self.tracker.name,
                           'device': self.device_id, 'base': self.base,
                           'checksum': check, 'shadow': self.shadow})
        atomic_write(self.shadow_path, text.encode('utf-8'))
        self._saved = (self.base, check)

    def sync(self):
        """One sync cycle (after the running one, if any); a Deferred."""
        d = self._lock.run(self._cycle)

        def done(result):
            self.last_error = None
            return result

        def failed(failure):
            self.last_error = failure.value
            return failure
        d.addCallbacks(done, failed)
        return d

    def start(self, interval):
        """Sync every `interval` seconds of the clock, starting now."""
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._loop.start(interval, now=True)

    def idle(self):
        """A Deferred firing when no cycle runs (at once if none does)."""
        return self._lock.run(lambda: None)

    def stop(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _tick(self):
        d = self.sync()
        d.addErrback(lambda f: log.warn('{device}: sync failed: {error}',
                                        device=self, error=f.value))
        return d

    @defer.inlineCallbacks
    def _call(self, message):
        try:
            text = yield self.proxy.call(
                'tracked.sync', self.secret, self.tracker.name,
                self.device_id, wire.dumps(message))
        except CallbackError as e:
            raise SyncError(str(e)) from None
        if not isinstance(text, str):
            raise SyncError('%s answered tracked.sync with %s, not a string'
                            % (self.url, type(text).__name__))
        try:
            answer = wire.loads(text)
        except wire.WireError as e:
            raise SyncError('%s answered tracked.sync with a bad message: %s'
                            % (self.url, e)) from None
        if not isinstance(answer, dict) or answer.get('status') not in (
                'ok', 'resync'):
            raise SyncError('%s answered tracked.sync without a status'
                            % self.url)
        return answer

    @defer.inlineCallbacks
    def _cycle(self):
        if self.shadow is None:
            answer = yield self._call({'join': True})
            with self.tracker.lock:
                self._adopt(answer)
            return
        with self.tracker.lock:
            areas = self.recorder.take()
            try:
                edits = diff(self.shadow, self.tracked, areas)
                message = {'base': self.base, 'edits': edits}
                if self.resync:
                    message['shadow'] = plain_copy(self.shadow)
                apply_strict(edits, self.shadow)
            except BaseException:
                self.recorder.add(areas)
                raise
        try:
            with self.tracker.lock:
                message['checksum'] = wire.checksum(self.shadow) \
                    if edits else None
            answer = yield self._call(message)
        except BaseException:
            self._take_back(edits, areas)
            raise
        if answer['status'] == 'resync':
            self._take_back(edits, areas)
            if self.resync:
                raise SyncError('%s refused the shadow of %s: %s' % (
                    self.url, self.device_id, answer.get('reason')))
            self.resync = True
            yield self._cycle()
            return
        with self.tracker.lock:
            self._merge(answer)

    def _take_back(self, edits, areas):
        with self.tracker.lock:
            apply_strict(swap(edits), self.shadow)
            self.recorder.add(areas)
            if areas is not None:
                self.recorder.add(strip_members(
                    merge_paths(edits, self.shadow)))

    def _adopt(self, answer):
        data = answer.get('data')
        if kind(data) != kind(self.tracked):
            raise SyncError('%s holds a %s as %r, this device a %s' % (
                self.url, type(data).__name__, self.tracker.name,
                kind(self.tracked)))
        if wire.checksum(data) != answer.get('checksum'):
            raise SyncError('%s sent %r with a wrong checksum' % (
                self.url, self.tracker.name))
        with self.tracked:
            put(self.tracked, (), data)
        self.shadow = data
        self.base = answer['base']
        self.recorder.take()
        self.resync = False
        self._save_shadow()

    def _merge(self, answer):
        edits = answer.get('edits')
        if not isinstance(edits, list) or \
                type(answer.get('base')) is not int:
            raise SyncError('%s answered without edits or base' % self.url)
        writers = {}
        for path, writer in answer.get('writers') or ():
            writers[tuple(path)] = writer
        paths = merge_paths(edits, self.shadow)
        before = {p: plain_copy(get(self.shadow, p)) for p in paths}
        try:
            apply_strict(edits, self.shadow)
        except SyncError:
            self.resync = True
            raise
        if edits and wire.checksum(self.shadow) != answer.get('checksum'):
            self.resync = True
            raise SyncError('the shadow of %s differs from the hub\'s after '
                            'the answer; the next cycle resyncs'
                            % self.device_id)
        self.base = answer['base']
        self.resync = False
        with self.tracked:
            for path in paths:
                writer = writers.get(path)
                if get(self.tracked, path) == before[path] or \
                        writer is None or writer > self.device_id:
                    put(self.tracked, path, self.shadow)
        # After the structure: a crash in between leaves an older shadow,
        # which the hub's backup of the previous one (or a resync) covers.
        self._save_shadow()
