"""Politeness: how many requests run at once, and how often one host is hit.

Every request the checker makes (a HEAD, a GET, each redirect hop, an FTP
session) first asks :meth:`Politeness.acquire` for a slot, tells the slot
when the request is sent (:meth:`Slot.sent`: written to its connection)
and gives it back when done. A slot is granted when

* fewer than ``concurrency`` requests are in progress in the whole server,
* fewer than ``per_host`` requests are in progress to that host, and
* at least the host's delay passed since the last request to it was sent
  (``per_host_delay``; longer while the host is paused), and none granted
  earlier is still on its way (resolving, connecting).

The delay is timed from the sending, not from the granting: a request
whose connection took long (a slow name server, a busy reactor) would
otherwise reach the host just before the next one.

A host answering 429, or 503 with ``Retry-After``, is paused for the time it
asks (capped by ``max_pause``); one that keeps doing so is paused ever
longer (the pause doubles up to the cap) and is back to normal once it
answers well again. With ``max_wait`` (the one-shot ``linksync check``,
which has nobody to come back later), a pause longer than that is not
waited for: the requests to that host fail at once with the reason "host
asked to wait N s".

Hosts wait in a round-robin ring, so one host with thousands of waiting
requests does not hold back the others. Time comes from the injected clock.
"""

import collections

from twisted.internet import defer

from linksync.server.checker import classify


class _Host:
    __slots__ = ('name', 'waiting', 'active', 'unsent', 'next_start',
                 'timer', 'in_ring', 'strikes', 'pause_end', 'asked')

    def __init__(self, name):
        self.name = name
        self.waiting = collections.deque()
        self.active = 0
        #: Slots granted whose request is not sent yet.
        self.unsent = 0
        self.next_start = 0.0
        self.timer = None
        self.in_ring = False
        self.strikes = 0
        #: When the host's latest pause ends, and the wait it asked for
        #: (None: none said).
        self.pause_end = 0.0
        self.asked = None


class Slot:
    """Permission for one request to a host; sent() when the request is
    written, release() when done."""

    __slots__ = ('_politeness', 'host', '_released', '_sent')

    def __init__(self, politeness, host):
        self._politeness = politeness
        self.host = host
        self._released = False
        self._sent = False

    def sent(self):
        """The request was written: the host's delay runs from now."""
        if not self._sent and not self._released:
            self._sent = True
            self._politeness._sent(self.host)

    def release(self):
        if not self._released:
            self._released = True
            self._politeness._release(self.host, self._sent)


class Politeness:
    """Grants request slots under the global and per-host limits."""

    #: A pause asked without a usable Retry-After (a bare 429) starts here.
    DEFAULT_PAUSE = 60.0

    def __init__(self, clock, concurrency=100, per_host=2,
                 per_host_delay=1.0, max_pause=3600.0, max_wait=None):
        self.clock = clock
        self.max_wait = max_wait
        self.concurrency = concurrency
        self.per_host = per_host
        self.per_host_delay = per_host_delay
        self.max_pause = max_pause
        self.active = 0
        self._hosts = {}
        self._ring = collections.deque()

    # -- asking for and giving back slots -----------------------------------

    def acquire(self, host):
        """A Deferred firing a Slot for a request to `host` (cancellable)."""
        h = self._hosts.get(host)
        if h is None:
            h = self._hosts[host] = _Host(host)
        d = defer.Deferred(lambda d: self._cancel(h, d))
        h.waiting.append(d)
        self._ready(h)
        self._pump()
        return d

    def _cancel(self, h, d):
        try:
            h.waiting.remove(d)
        except ValueError:
            pass
        self._forget(h)

    #: Idle hosts are forgotten every this many releases.
    SWEEP_EVERY = 10_000

    def _sent(self, host):
        h = self._hosts[host]
        h.unsent -= 1
        h.next_start = max(h.next_start,
                           self.clock.seconds() + self.per_host_delay)
        self._ready(h)
        self._pump()

    def _release(self, host, sent):
        h = self._hosts[host]
        h.active -= 1
        self.active -= 1
        if not sent:
            h.unsent -= 1
        self._ready(h)
        self._pump()
        self._releases = getattr(self, '_releases', 0) + 1
        if self._releases % self.SWEEP_EVERY == 0:
            for h in list(self._hosts.values()):
                self._forget(h)

    # -- what callers tell about hosts -----------------------------------------

    def pause(self, host, seconds=None):
        """The host asked to be left alone (429, or 503 with Retry-After).

        `seconds` is its Retry-After (None when it gave none). Returns the
        pause applied.
        """
        h = self._hosts.get(host)
        if h is None:
            h = self._hosts[host] = _Host(host)
        h.strikes += 1
        adaptive = self.DEFAULT_PAUSE * 2 ** (h.strikes - 1)
        if seconds is None:
            wanted = adaptive
        else:
            # Honour the host's figure; one that keeps refusing is given at
            # least the growing pause.
            wanted = max(seconds, adaptive if h.strikes > 1 else 0)
        wanted = max(0.0, min(wanted, self.max_pause))
        now = self.clock.seconds()
        h.next_start = max(h.next_start, now + wanted)
        h.pause_end = now + wanted
        h.asked = seconds
        if self._too_long(h, now):
            self._refuse(h)
        return wanted

    def answered(self, host):
        """The host answered normally: forget its earlier pauses."""
        h = self._hosts.get(host)
        if h is not None:
            h.strikes = 0

    def waiting(self, host):
        """Number of requests waiting for a slot to `host`."""
        h = self._hosts.get(host)
        return len(h.waiting) if h is not None else 0

    def paused_until(self, host):
        """Clock time before which no request to `host` starts (or 0)."""
        h = self._hosts.get(host)
        return h.next_start if h is not None else 0.0

    # -- granting ---------------------------------------------------------------

    def _ready(self, h):
        if h.waiting and not h.in_ring and h.timer is None:
            h.in_ring = True
            self._ring.append(h)

    def _forget(self, h):
        """Drop the state of an idle host (memory stays bounded)."""
        if not h.waiting and not h.active and h.timer is None \
                and not h.in_ring and not h.strikes \
                and h.next_start <= self.clock.seconds():
            self._hosts.pop(h.name, None)

    def _too_long(self, h, now):
        """True when `h` is paused for longer than max_wait."""
        return self.max_wait is not None and \
            h.pause_end - now > self.max_wait

    def _refuse(self, h):
        """Fail the requests waiting for `h`: it asked to wait too long."""
        if h.timer is not None:
            if h.timer.active():
                h.timer.cancel()
            h.timer = None
        left = h.pause_end - self.clock.seconds()
        if h.asked is not None:
            reason = 'host asked to wait %.0f s' % h.asked
        else:
            reason = 'host asked to wait (paused %.0f s)' % left
        while h.waiting:
            h.waiting.popleft().errback(classify.Temporary(reason))

    def _pump(self):
        ring = self._ring
        now = None
        while ring and self.active < self.concurrency:
            h = ring.popleft()
            h.in_ring = False
            if not h.waiting:
                self._forget(h)
                continue
            if h.active >= self.per_host:
                continue  # back in the ring when one of its slots is freed
            if h.unsent and self.per_host_delay:
                continue  # back in the ring when that request is sent
            if now is None:
                now = self.clock.seconds()
            if h.next_start > now:
                if self._too_long(h, now):
                    self._refuse(h)
                    continue
                h.timer = self.clock.callLater(
                    h.next_start - now, self._wake, h)
                continue
            d = h.waiting.popleft()
            h.active += 1
            h.unsent += 1
            self.active += 1
            # (Timed again when the request is sent.)
            h.next_start = now + self.per_host_delay
            self._ready(h)
            d.callback(Slot(self, h.name))
            # The callback may have released slots and pumped already.
            now = None

    def _wake(self, h):
        h.timer = None
        self._ready(h)
        self._pump()
