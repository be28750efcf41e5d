"""Prometheus metrics of a server (``GET /metrics``).

Each server has its own registry (several servers can run in one process,
as they do in the tests). The parts of the server record into the
:class:`Metrics` object of their server (``server.metrics``), handed to
them explicitly; values that already live elsewhere (counts per state,
queue lengths, agents' lag) are read when the metrics are scraped, by the
``gauge`` each part declares when it starts.

What records what:

* the XML-RPC resource: ``linksync_xmlrpc_calls`` (method, outcome) and
  the call durations;
* the checker (linksync.server.checker.check), per check, through
  :meth:`Metrics.record_check`: ``linksync_checks`` (state) and
  ``linksync_check_duration_seconds``;
* the scheduler (linksync.server.checker.service), gauges: ``linksync_check_queue``
  and ``linksync_check_backlog_seconds``;
* the syncer (linksync.server.syncer), per client: ``linksync_syncs`` (outcome)
  and ``linksync_sync_duration_seconds``;
* the agents service (linksync.server.notifier): ``linksync_notifications_sent``
  and the gauge ``linksync_agent_lag_seconds`` (agent);
* the API part, gauges: ``linksync_urls`` (state), ``linksync_clients``;
* the server, whatever its roles: ``linksync_database_transactions``
  (outcome: ``committed``, or ``conflict`` for those a conflict with
  another writer aborted and the part retried), its sessions' counts.

A process without the ``api`` role serves its metrics with
:class:`MetricsService` on ``--metrics-listen``.

Who may read them is ``--metrics-access`` (:func:`metrics_allowed`):
``open`` (anybody), ``loopback`` (the default: a request from the machine
itself; from elsewhere, the management secret as the password of HTTP
Basic credentials, ``basic_auth`` in Prometheus' scrape configuration,
or a login session) or ``secret`` (the management secret, from anywhere).
The secret is checked by the web pages' access rules
(linksync.server.web.access), throttled as they are.

The status page (linksync.server.web) shows some of the same numbers: it reads
them here (:meth:`Metrics.read`, :meth:`Metrics.checks_per_minute`), so a
part that does not run in this process is simply absent from both.
"""

import collections
import ipaddress

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry,
                               Counter, Gauge, Histogram, generate_latest)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from twisted.logger import Logger
from twisted.web import pages, resource, server

from linksync.server.web.access import Access
from linksync.xmlrpc.site import ListeningService

log = Logger()

#: Check and sync durations are seconds; these buckets span 10 ms to 10 min.
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                    60, 120, 300, 600)

#: The check rate is counted in slots of this many seconds ...
RATE_SLOT = 10
#: ... over this window (seconds).
RATE_WINDOW = 300


class Metrics:
    """The metrics of one server."""

    def __init__(self):
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.xmlrpc_calls = Counter(
            'linksync_xmlrpc_calls', 'XML-RPC calls by method and outcome',
            ['method', 'outcome'], registry=registry)
        self.xmlrpc_seconds = Histogram(
            'linksync_xmlrpc_call_duration_seconds',
            'Time to answer an XML-RPC call', registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                     0.25, 0.5, 1, 2.5, 5))
        self.checks = Counter(
            'linksync_checks', 'URL checks by outcome (the state found)',
            ['state'], registry=registry)
        self.check_seconds = Histogram(
            'linksync_check_duration_seconds', 'Time one URL check took',
            registry=registry, buckets=DURATION_BUCKETS)
        self.syncs = Counter(
            'linksync_syncs', 'Client synchronisations by outcome',
            ['outcome'], registry=registry)
        self.sync_seconds = Histogram(
            'linksync_sync_duration_seconds',
            'Time one client synchronisation took', registry=registry,
            buckets=DURATION_BUCKETS)
        self.notifications = Counter(
            'linksync_notifications_sent',
            'URL states delivered to clients by the notifier',
            registry=registry)
        self._gauges = {}
        registry.register(_Callbacks(self._gauges))
        #: Checks finished per RATE_SLOT: {slot number: count}, the last
        #: RATE_WINDOW seconds' worth.
        self._check_slots = collections.OrderedDict()

    def gauge(self, name, documentation, read, labels=()):
        """Expose a value read at scrape time.

        `read()` returns a number, or with `labels` a dict {label values
        tuple: number}. Declaring a gauge again (a part restarted) replaces
        it.
        """
        self._gauges[name] = (documentation, read, tuple(labels),
                              GaugeMetricFamily)

    def counter(self, name, documentation, read, labels=()):
        """Expose a count kept elsewhere, read at scrape time (as
        :meth:`gauge`; served as the counter ``NAME_total``)."""
        self._gauges[name] = (documentation, read, tuple(labels),
                              CounterMetricFamily)

    def read(self, name):
        """The current value of gauge `name` (as its `read()` gives it), or
        None when no part declared it or it cannot be read now."""
        gauge = self._gauges.get(name)
        if gauge is None:
            return None
        try:
            return gauge[1]()
        except Exception:
            return None

    def record_check(self, state, seconds, now):
        """One check ended in `state` after `seconds`, at `now` (the
        checker's clock)."""
        self.checks.labels(state).inc()
        self.check_seconds.observe(max(seconds, 0.0))
        slots = self._check_slots
        slot = int(now // RATE_SLOT)
        slots[slot] = slots.get(slot, 0) + 1
        oldest = slot - RATE_WINDOW // RATE_SLOT
        while slots and next(iter(slots)) <= oldest:
            slots.popitem(last=False)

    def checks_per_minute(self, now):
        """Checks finished per minute over the last RATE_WINDOW seconds
        (by this process's checker)."""
        slot = int(now // RATE_SLOT)
        oldest = slot - RATE_WINDOW // RATE_SLOT
        done = sum(n for s, n in self._check_slots.items()
                   if oldest < s <= slot)
        return done * 60.0 / RATE_WINDOW

    def exposition(self):
        """The metrics in Prometheus' text format (bytes)."""
        return generate_latest(self.registry)


class _Callbacks:
    """A collector yielding the gauges read at scrape time."""

    def __init__(self, gauges):
        self.gauges = gauges

    def describe(self):
        return []

    def collect(self):
        for name, gauge in list(self.gauges.items()):
            documentation, read, labels, kind = gauge
            try:
                value = read()
            except Exception:
                continue  # a part that is not running has nothing to say
            family = kind(name, documentation, labels=list(labels) or None)
            if labels:
                for key, number in sorted(value.items()):
                    family.add_metric(list(key), number)
            else:
                family.add_metric([], value)
            yield family


#: The values of --metrics-access.
METRICS_ACCESS = ('open', 'loopback', 'secret')


def is_loopback(host):
    """True when the peer address `host` (text) is the machine itself.

    >>> [is_loopback(h) for h in ('127.0.0.1', '127.8.0.1', '::1',
    ...                           '::ffff:127.0.0.1', '192.0.2.2', '-')]
    [True, True, True, True, False, False]
    """
    try:
        ip = ipaddress.ip_address(str(host).split('%', 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, 'ipv4_mapped', None)
    return (mapped or ip).is_loopback


def metrics_allowed(mode, host, is_manager):
    """Whether a request from `host` may read the metrics under
    --metrics-access `mode`; `is_manager()` tells whether it carries the
    management secret (asked only when that decides).

    >>> def manager(): return False
    >>> [metrics_allowed(m, '192.0.2.2', manager) for m in METRICS_ACCESS]
    [True, False, False]
    >>> [metrics_allowed(m, '127.0.0.1', manager) for m in METRICS_ACCESS]
    [True, True, False]
    >>> metrics_allowed('secret', '192.0.2.2', lambda: True)
    True
    """
    if mode == 'open' or mode == 'loopback' and is_loopback(host):
        return True
    return bool(is_manager())


class MetricsResource(resource.Resource):
    """GET /metrics: the server's metrics for Prometheus, for those that
    `mode` (--metrics-access) lets in; `access` is the IWebAccess that
    knows the management secret."""

    isLeaf = True

    def __init__(self, metrics, access=None, mode='open'):
        super().__init__()
        if mode not in METRICS_ACCESS:
            raise ValueError('--metrics-access is one of %s, not %r'
                             % (', '.join(METRICS_ACCESS), mode))
        if mode != 'open' and access is None:
            raise ValueError('--metrics-access %s needs the access rules '
                             'of the server' % mode)
        self.metrics = metrics
        self.access = access
        self.mode = mode

    def render_GET(self, request):
        host = getattr(request.getClientAddress(), 'host', '-')
        if not metrics_allowed(self.mode, host,
                               lambda: self.access.is_manager(request)):
            request.setResponseCode(401)
            request.setHeader(b'www-authenticate',
                              b'Basic realm="linksync", charset="UTF-8"')
            request.setHeader(b'content-type', b'text/plain; charset=utf-8')
            request.setHeader(b'cache-control', b'no-store')
            text = b'/metrics needs the management secret here (as the ' \
                b'password of HTTP Basic credentials, any user name): ' \
                b'--metrics-access %s\n' % self.mode.encode('ascii')
            if not self.access.secret:
                text += b'This process has no management secret: give it ' \
                    b'one with --secret or $LINKSYNC_SECRET, or choose ' \
                    b'--metrics-access open.\n'
            return text
        request.setHeader(b'content-type', CONTENT_TYPE_LATEST.encode())
        return self.metrics.exposition()


class MetricsService(ListeningService):
    """Serves this process's ``GET /metrics``, and nothing else, on the
    endpoint ``--metrics-listen``.

    A process without the ``api`` role (a checker worker, the agents or
    the syncer run apart) has no web server of its own, yet the metrics of
    the checks, notifications and syncs it runs exist only in it: this is
    where Prometheus scrapes them.
    """

    name = 'metrics'
    announcement = 'linksync metrics on http://{host}:{port}/metrics'

    def __init__(self, server):
        super().__init__()
        self.server = server

    def startService(self):
        super().startService()
        server_ = self.server
        access = Access(server_.secret, server_.clock)
        mode = getattr(server_.settings, 'metrics_access', 'loopback')
        if mode != 'open' and not server_.secret:
            log.warn('--metrics-access {mode}: this process has no '
                     'management secret (its roles need none), so its '
                     '/metrics open {who}; give it --secret or '
                     '$LINKSYNC_SECRET for others', mode=mode,
                     who='to nobody' if mode == 'secret'
                     else 'only to this machine')
        root = _MetricsOnly(MetricsResource(server_.metrics, access, mode))
        self.listen(self.server.reactor, self.server.settings.metrics_listen,
                    server.Site(root))


class _MetricsOnly(resource.Resource):
    """The root of --metrics-listen: /metrics, and "not found" else."""

    def __init__(self, metrics_resource):
        super().__init__()
        self.putChild(b'metrics', metrics_resource)

    def getChild(self, path, request):
        return pages.notFound('Not found', 'Only /metrics is served here.')
