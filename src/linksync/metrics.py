"""Prometheus metrics of a server (``GET /metrics``).

Each server has its own registry (several servers can run in one process,
as they do in the tests). The parts of the server record into the
:class:`Metrics` object of their server (``server.metrics``); values that
already live elsewhere (counts per state, queue lengths) are read when the
metrics are scraped.
"""

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry,
                               Counter, Gauge, Histogram, generate_latest)
from prometheus_client.core import GaugeMetricFamily
from twisted.web import resource

#: Check and sync durations are seconds; these buckets span 10 ms to 10 min.
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                    60, 120, 300, 600)


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
        self._gauges = []
        registry.register(_Callbacks(self._gauges))

    def gauge(self, name, documentation, read, labels=()):
        """Expose a value read at scrape time.

        `read()` returns a number, or with `labels` a dict {label values
        tuple: number}.
        """
        self._gauges.append((name, documentation, read, tuple(labels)))

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
        for name, documentation, read, labels in self.gauges:
            try:
                value = read()
            except Exception:
                continue  # a part that is not running has nothing to say
            family = GaugeMetricFamily(name, documentation,
                                       labels=list(labels) or None)
            if labels:
                for key, number in sorted(value.items()):
                    family.add_metric(list(key), number)
            else:
                family.add_metric([], value)
            yield family


class MetricsResource(resource.Resource):
    """GET /metrics: the server's metrics for Prometheus."""

    isLeaf = True

    def __init__(self, metrics):
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request):
        request.setHeader(b'content-type', CONTENT_TYPE_LATEST.encode())
        return self.metrics.exposition()
