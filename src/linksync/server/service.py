"""The server process: one Twisted service tree over one database.

:class:`LinkSyncService` opens the database and one session on it, and
starts the parts of the server as child services, which all work through
that session: one service for each role of ``--role``
(linksync.server.options.ROLES), made by the IServerPart factory
linksync.server.configure registered for it:

* ``api``: the XML-RPC API and the web pages, on ``--listen``
  (:class:`APIService`);
* ``checker``: the schedule and the checker
  (linksync.server.checker.service);
* ``syncer``: the daily and forced syncs (linksync.server.syncer);
* ``agents``: the change track's agents, client notifications and exports
  (linksync.server.notifier).

``linksync serve`` and the twist plugin both run this service.
"""

import gc

import zope.component
from twisted.application import internet, service
from twisted.internet import defer
from twisted.logger import Logger

from linksync.server import database
from linksync.server.admin import operations
from linksync.server.api import LinkSyncAPI
from linksync.server.interfaces import IServerPart
from linksync.server.mail import make_mailer
from linksync.server.options import ROLES, ConfigError
from linksync.server.reports import Reports
from linksync.server.secret import secret_for
from linksync.server.web.access import ALERTS_LIFETIME, Access
from linksync.server.web.metrics import (
    Metrics, MetricsResource, MetricsService)
from linksync.server.web.resources import WebUI
from linksync.xmlrpc import site as web
from linksync.xmlrpc.resource import DEFAULT_MAX_ANSWER_BYTES, XMLRPCResource

log = Logger()

#: How often the sessions of the server's parts catch up with the commits
#: of the others (Database.catch_up).
CATCH_UP_SECONDS = 1.0


class APIService(web.ListeningService):
    """Serves the XML-RPC API and the web pages on an endpoint."""

    name = 'api'
    announcement = ('linksync listening on http://{host}:{port}/ (XML-RPC at '
                    '/ and /RPC2)')

    def __init__(self, server):
        super().__init__()
        self.server = server

    def startService(self):
        super().startService()
        server = self.server
        self.session = server.session
        # One access policy for the pages and the links getInfoFrameURL
        # hands out.
        public_url = server.settings.public_url or ''
        access = Access(server.secret, server.clock, alerts_lifetime=getattr(
            server.settings, 'alerts_link_lifetime', ALERTS_LIFETIME),
            secure_cookies=public_url.lower().startswith('https:'))
        self.api = LinkSyncAPI(self.session, server.secret, server.clock,
                               server.mailer, server.settings.public_url,
                               web_access=access, reactor=server.reactor,
                               registration_cc=getattr(
                                   server.settings, 'registration_cc', ()))
        self.api.on_due = self._checker_wake
        pages = WebUI(self.session, access, self.api, server.clock,
                      server.metrics)
        # The protocol methods, and the admin operations as admin.NAME.
        table = self.api.methods.bind(self.api)
        operations.install(self.api, table, server)
        root = web.Root(
            XMLRPCResource(table, server.settings.max_request_bytes,
                           server.metrics, max_answer_bytes=getattr(
                               server.settings, 'max_answer_bytes',
                               DEFAULT_MAX_ANSWER_BYTES),
                           reactor=server.reactor),
            pages.overview)
        pages.install(root)
        root.putChild(b'metrics', MetricsResource(
            server.metrics, access, getattr(server.settings,
                                            'metrics_access', 'loopback')))
        server.metrics.gauge(
            'linksync_urls', 'Monitored URLs by state',
            lambda: {(state,): n for state, n in self.session.read(
                lambda app: app.state_counts.counts()).items()},
            labels=('state',))
        server.metrics.gauge(
            'linksync_clients', 'Registered clients',
            lambda: self.session.read(lambda app: len(app.clients)))
        settings = server.settings
        self.site = web.LinkSyncSite(
            root, settings.max_request_bytes, reactor=server.reactor,
            request_deadline=getattr(settings, 'request_deadline',
                                     web.DEFAULT_REQUEST_DEADLINE))
        self.root = root
        self.listen(server.reactor, settings.listen, self.site,
                    per_peer=getattr(settings, 'max_connections_per_peer',
                                     web.DEFAULT_MAX_CONNECTIONS_PER_PEER),
                    total=getattr(settings, 'max_connections',
                                  web.DEFAULT_MAX_CONNECTIONS))
        # The trends the pages draw, and the daily digests.
        self.reports = Reports(
            self.session, server.clock, server.secret, server.mailer,
            public_url=settings.public_url,
            digest_hour=getattr(settings, 'digest_hour', None),
            alerts_token=access.alerts_token)
        self.reports.start()

    @defer.inlineCallbacks
    def stopService(self):
        yield super().stopService()
        yield self.reports.stop()
        self.api.close()

    def _checker_wake(self):
        """Tell the checker of this process, if it runs one, that URLs
        are due (checker workers of other processes find them at their
        next tick)."""
        parent = self.parent
        try:
            checker = parent.getServiceNamed('checker') if parent else None
        except KeyError:
            return
        scheduler = getattr(checker, 'scheduler', None)
        if scheduler is not None:
            scheduler.wake()


def check_roles(settings):
    """Raise ConfigError when --role, --worker and the storage do not fit
    together (one line naming the problem)."""
    roles = getattr(settings, 'role', None)
    worker = getattr(settings, 'worker', None)
    if getattr(settings, 'digest_hour', None) is not None:
        missing = [name for name, value in (
            ('--smtp', settings.smtp), ('--public-url', settings.public_url))
            if not value]
        if missing:
            raise ConfigError('--digest-hour mails links to this server: '
                              'it needs %s' % ' and '.join(missing))
        if roles is not None and 'api' not in roles:
            raise ConfigError('--digest-hour is the api role\'s to do '
                              '(--role %s has none)' % ','.join(roles))
    if worker is None:
        return
    if roles is not None and 'checker' not in roles:
        raise ConfigError('--worker %s needs the checker role (--role %s '
                          'has none)' % (worker, ','.join(roles)))
    if worker.count > 1 and not (settings.zeo or settings.storage):
        raise ConfigError('--worker %s shares the work with other processes:'
                          ' they need a shared database (--zeo HOST:PORT or '
                          '--storage DSN)' % worker)


def describe_roles(roles, worker=None):
    """'api, checker (worker 1/2)': what a process runs, for its log."""
    names = ROLES if roles is None else roles
    text = ', '.join(names)
    if worker is not None and 'checker' in names:
        text += ' (worker %s)' % worker
    return text


class LinkSyncService(service.MultiService):
    """The whole server: storage, database and the parts' services.

    While it runs, the collector's first generation is collected every
    ``GC_THRESHOLD`` allocations instead of Python's default 700: checks
    and registrations allocate many short-lived objects, and each young
    collection also pays for the large ZODB caches of the process
    (measured: a fifth of the checker's CPU time at the default, and an
    eighth of a registration's).
    """

    GC_THRESHOLD = 50_000
    _gc_before = None
    #: The database session of the parts of this process (see
    #: startService); None while the server is stopped.
    session = None

    def __init__(self, settings, reactor=None, clock=None, secret=None,
                 mailer=None, roles=None):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        self.settings = settings
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        if roles is None:
            roles = getattr(settings, 'role', None)
        self.secret = secret if secret is not None else secret_for(
            settings, roles, announce=lambda text: log.warn(text))
        self.mailer = mailer if mailer is not None else make_mailer(
            settings, reactor)
        self.roles = roles
        self.database = None
        self.metrics = Metrics()

    def open_database(self):
        return database.open_database(self.settings)

    def parts(self):
        """(role, factory) of the parts this process runs, in start order."""
        for role in ROLES:
            if self.roles is None or role in self.roles:
                factory = zope.component.queryUtility(IServerPart, role)
                if factory is None:
                    raise LookupError(
                        'no server part is registered for the role %r: '
                        'call linksync.server.configure.configure() first'
                        % role)
                yield role, factory

    def startService(self):
        threshold = gc.get_threshold()
        if threshold[0] < self.GC_THRESHOLD:
            self._gc_before = threshold
            gc.set_threshold(self.GC_THRESHOLD, *threshold[1:])
        parts = list(self.parts())
        self.database = self.open_database()
        # The parts share one session. They all run in the reactor thread,
        # so their units of work come one after another anyway; in one
        # connection's cache, each finds the objects the others wrote
        # instead of loading them again from the storage: the checker the
        # URLs the API registered, the agents the records of the checker's
        # results. Measured (bench/checker.py, five alternating runs):
        # 2.25-2.69 s of CPU for 10,000 URLs registered, checked and
        # stored, against 2.82-3.58 s with a session for each part. The
        # syncer's synchronisations, which are long transactions, have
        # sessions of their own.
        self.session = self.database.session(kept_current=True)
        for role, factory in parts:
            factory(self).setServiceParent(self)
        # The parts' session sees the commits of other sessions (a
        # synchronisation's, a command's, another process's) every second,
        # idle or not (see Database.catch_up).
        catch_up = internet.TimerService(CATCH_UP_SECONDS,
                                         self.database.catch_up)
        catch_up.clock = self.clock
        catch_up.setServiceParent(self)
        self.metrics.counter(
            'linksync_database_transactions',
            'Transactions of this process, by outcome (committed, or '
            'aborted by a conflict and retried)',
            lambda: {(outcome,): n for outcome, n in
                     self.database.transactions.items()},
            labels=('outcome',))
        if getattr(self.settings, 'metrics_listen', None):
            MetricsService(self).setServiceParent(self)
        super().startService()
        log.info('linksync running: {roles}', roles=describe_roles(
            self.roles, getattr(self.settings, 'worker', None)))

    @defer.inlineCallbacks
    def stopService(self):
        yield super().stopService()
        for child in list(self):
            yield defer.maybeDeferred(child.disownServiceParent)
        if self.session is not None:
            self.session.close()
            self.session = None
        if self.database is not None:
            self.database.close()
            self.database = None
        if self._gc_before is not None:
            gc.set_threshold(*self._gc_before)
            self._gc_before = None
        log.info('linksync stopped; the database is closed')

    @property
    def api(self):
        return self.getServiceNamed('api')
