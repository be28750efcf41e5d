"""The server's recent past in numbers: what the status pages draw.

Bounded counters, sampled by the API process once a minute
(linksync.server.reports), each a :class:`Series` of fixed-step samples
that forgets what is older than it keeps:

* the URLs per state (:data:`STATE_ORDER`), every 5 minutes, kept 8 days:
  the overview's stacked areas over 24 hours and 7 days;
* the total of checks stored, every minute, kept 25 hours: the overview's
  checks per minute (the difference of two samples). The total is a
  conflict-free counter (BTrees.Length) that the checkers add to in the
  transaction storing their results, so several checker workers on one
  database count together;
* per client, every hour (and at once when it is added) and kept 31 days:
  the time, its problems per state and its number of URLs: the client's problem count over 30 days and its uptime.

A client's uptime over a window is the time-weighted share of its URLs not
in a problem state (a URL not checked yet counts as fine), from those
hourly samples and its figures of the moment (each sample tells the time
since the one before it).

>>> s = Series(step=60, keep=180)
>>> [s.put(t, (t,)) for t in (0, 30, 60, 125, 300)]
[True, False, True, True, True]
>>> list(s.items(0, 400))                 # one sample per step, the first
[(120, (125,)), (300, (300,))]
>>> s.put(330, (1,)), s.last()           # a step keeps its first sample
(False, (300, (300,)))
>>> uptime([(0, (1, 0, 0, 10)), (50, (0, 0, 0, 10))], 0, 100, (1, 0, 0, 10))
0.95
>>> uptime([], 0, 100) is None
True
"""

import persistent
from BTrees.IOBTree import IOBTree
from BTrees.Length import Length
from BTrees.OOBTree import OOBTree, OOTreeSet
from zope.interface import implementer

from linksync import states
from linksync.server import interfaces
from linksync.server.model.history import WINDOWS
from linksync.server.model.problems import PROBLEM_STATES

#: The order of the counts in a state sample.
STATE_ORDER = (states.OK, states.UNAVAILABLE, states.TEMPORARY,
               states.UNSUPPORTED, states.UNKNOWN)
#: Steps and how long each series keeps its samples (seconds).
STATE_STEP, STATE_KEEP = 300, 8 * 86400
CHECK_STEP, CHECK_KEEP = 60, 25 * 3600
CLIENT_STEP, CLIENT_KEEP = 3600, 31 * 86400
#: Old samples dropped per sample added, at most (a series catches up on a
#: long pause a step at a time, without one big transaction).
PRUNE_BATCH = 100


class Series(persistent.Persistent):
    """Samples (tuples of numbers) at a fixed step, for a bounded time.

    Stored in an IOBTree keyed by the start of each step: adding a sample
    writes one bucket, whatever the length of the series.
    """

    def __init__(self, step, keep):
        self.step = int(step)
        self.keep = int(keep)
        self._samples = IOBTree()

    def slot(self, when):
        return int(when) // self.step * self.step

    def put(self, when, values, replace=False):
        """Store `values` for the step of `when` unless that step has a
        sample (or, with `replace`, has other values); forget samples older
        than `keep`. True when stored."""
        slot = self.slot(when)
        values = tuple(values)
        old = self._samples.get(slot)
        if old is not None and (not replace or old == values):
            return False
        self._samples[slot] = values
        old = list(self._samples.keys(
            max=slot - self.keep, excludemax=True))[:PRUNE_BATCH]
        for key in old:
            del self._samples[key]
        return True

    def items(self, start, end):
        """(time, values) of the samples from `start` to `end`, in order."""
        return list(self._samples.items(self.slot(start), int(end)))

    def last(self):
        """The newest (time, values), None when there is none."""
        if not self._samples:
            return None
        key = self._samples.maxKey()
        return key, self._samples[key]

    def __len__(self):
        return len(self._samples)


def uptime(samples, start, end, current=None):
    """The time-weighted share of URLs not in trouble from `start` to `end`,
    from client samples ``(time, (unavailable, temporary, unsupported,
    urls))``, each telling the time since the sample before it, and the
    `current` figures telling the time since the last sample; None when
    nothing is known of that time."""
    points = list(samples)
    if current is not None:
        points.append((end, tuple(current)))
    weight = fine = 0.0
    for (before, _), (time, values) in zip(points, points[1:]):
        lo, hi = max(before, start), min(time, end)
        urls = values[-1]
        if hi <= lo or not urls:
            continue
        problems = sum(values[:-1])
        weight += hi - lo
        fine += (hi - lo) * max(urls - problems, 0) / urls
    return fine / weight if weight else None


def client_figures(client, problems):
    """A client's figures now: (unavailable, temporary, unsupported, urls),
    from the problem index `problems` (None: no problems known)."""
    counts = problems.client_counts(client.id) if problems is not None \
        else {}
    return tuple(counts.get(s, 0) for s in PROBLEM_STATES) + (
        client.url_count,)


@implementer(interfaces.ITrends)
class Trends(persistent.Persistent):
    """The series of the status pages (see the module docstring)."""

    def __init__(self):
        self.checks = Length()
        self.states = Series(STATE_STEP, STATE_KEEP)
        self.check_totals = Series(CHECK_STEP, CHECK_KEEP)
        self._clients = OOBTree()
        #: Clients added since the last sample (sampled at the next one).
        self._new = OOTreeSet()
        #: The client the hourly sampling goes on after (None: from the
        #: first), and the hour it samples.
        self.client_cursor = None
        self.client_slot = None

    # -- writing --------------------------------------------------------------

    def count_checks(self, n):
        """`n` more check results were stored (conflict-free)."""
        self.checks.change(n)

    def sample(self, now, counts):
        """Sample the checks total and the URLs per state (`counts`, a
        dict by state)."""
        self.check_totals.put(now, (self.checks(),))
        # The latest figures of the step (a bucket written a minute).
        self.states.put(now, tuple(counts.get(s, 0) for s in STATE_ORDER),
                        replace=True)

    def note_client(self, client_id):
        """A client was added: sample it at the next minute."""
        self._new.insert(client_id)

    def sample_new_clients(self, now, clients, problems, batch=500):
        """Sample up to `batch` clients added since the last sample."""
        ids = list(self._new)[:batch]
        for client_id in ids:
            self._new.remove(client_id)
            client = clients.get(client_id)
            if client is not None:
                self._sample_client(now, client, problems)
        return len(ids) == batch

    def _sample_client(self, now, client, problems):
        series = self.client_series(client.id, create=True)
        # The time itself first: the step's start is not the sample's.
        values = (int(now),) + client_figures(client, problems)
        # Sampled once an hour by the round, and at once when added: the
        # newest figures of the hour are kept.
        series.put(now, values, replace=True)

    def sample_clients(self, now, clients, problems, batch=500):
        """Sample up to `batch` clients of the current hour's round (from
        the client provider `clients` and the problem index `problems`);
        True while some are left."""
        slot = self._client_series_slot(now)
        if self.client_slot != slot:
            self.client_slot, self.client_cursor = slot, None
        elif self.client_cursor == '':
            return False        # this hour's round is done
        after = self.client_cursor
        ids = list(clients.keys(after, excludemin=after is not None))[:batch]
        for client_id in ids:
            self._sample_client(now, clients.get(client_id), problems)
        if len(ids) < batch:
            self.client_cursor = ''
            return False
        self.client_cursor = ids[-1]
        return True

    def _client_series_slot(self, now):
        return int(now) // CLIENT_STEP * CLIENT_STEP

    def client_series(self, client_id, create=False):
        series = self._clients.get(client_id)
        if series is None and create:
            series = self._clients[client_id] = Series(CLIENT_STEP,
                                                       CLIENT_KEEP)
        return series

    def forget_client(self, client_id):
        self._clients.pop(client_id, None)

    # -- reading --------------------------------------------------------------

    def checks_per_minute(self, start, end):
        """[(time, checks in the minute from time)] from the totals."""
        totals = self.check_totals.items(start - CHECK_STEP, end)
        return [(t2, max(v2[0] - v1[0], 0) * 60.0 / (t2 - t1))
                for (t1, v1), (t2, v2) in zip(totals, totals[1:])
                if t2 >= start]

    def state_samples(self, start, end):
        """[(time, {state: count})] of the URLs per state."""
        return [(t, dict(zip(STATE_ORDER, values)))
                for t, values in self.states.items(start, end)]

    def client_samples(self, client_id, start, end):
        """[(time, (unavailable, temporary, unsupported, urls))]; the last
        sample before `start` comes first (it held at `start`)."""
        series = self.client_series(client_id)
        if series is None:
            return []
        return [(values[0], values[1:]) for _, values in
                series.items(start - CLIENT_STEP, end)]

    def client_uptime(self, client_id, now, window, current=None):
        """The client's uptime over the last `window` seconds; `current`
        are its figures now (unavailable, temporary, unsupported, urls)."""
        return uptime(self.client_samples(client_id, now - window, now),
                      now - window, now, current)

    def client_uptimes(self, client, problems, now):
        """[(label, uptime)] of the client over each window of
        WINDOWS, its figures of the moment
        read from the problem index `problems`."""
        current = client_figures(client, problems)
        return [(label, self.client_uptime(client.id, now, seconds, current))
                for label, seconds in WINDOWS]


# -- subscribers (registered in linksync.server.configure) -------------------

def client_added(event):
    import zope.component
    trends = zope.component.queryUtility(interfaces.ITrends)
    if trends is not None:
        trends.note_client(event.object.id)


def client_removed(event):
    import zope.component
    trends = zope.component.queryUtility(interfaces.ITrends)
    if trends is not None:
        trends.forget_client(event.object.id)
