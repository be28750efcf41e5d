"""The server process: one Twisted service tree over one database.

:class:`LinkSyncService` opens the storage, and starts the parts of the
server as child services, each with its own database session:

* ``api``: the XML-RPC API and the web pages, on ``--listen``;

and the parts listed in :data:`PARTS` by the modules that provide them.
``linksync serve`` and the twist plugin both run this service.
"""

import gc
import os
import secrets as secrets_module

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from linksync.server import database, mail, storage
from linksync.xmlrpc import site as web
from linksync.server.api import LinkSyncAPI
from linksync.server.web.metrics import Metrics, MetricsResource, MetricsService
from linksync.server.web.access import ALERTS_LIFETIME, Access
from linksync.server.web.resources import WebUI

log = Logger()

SECRET_FILE = 'secret'


def load_secret(settings, announce=print):
    """The management secret: --secret, $LINKSYNC_SECRET, or DIR/secret.

    When none exists, one is generated, stored in DIR/secret (mode 0600)
    and announced once.
    """
    if settings.secret:
        return settings.secret
    path = os.path.join(settings.data or 'var', SECRET_FILE)
    try:
        with open(path, encoding='utf-8') as f:
            secret = f.read().strip()
        if secret:
            return secret
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    secret = secrets_module.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        f.write(secret + '\n')
    announce('linksync: generated the management secret (kept in %s): %s'
             % (path, secret))
    return secret


def make_mailer(settings, reactor):
    if settings.smtp:
        host, port = settings.smtp
        return mail.SMTPMailer(host, port, settings.mail_from,
                               reactor=reactor)
    return mail.NoMailer()


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
        self.session = server.database.session()
        # -- web status UI (issue 8): one access policy for the pages and
        # the links getInfoFrameURL hands out.
        access = Access(server.secret, server.clock, alerts_lifetime=getattr(
            server.settings, 'alerts_link_lifetime', ALERTS_LIFETIME))
        self.api = LinkSyncAPI(self.session, server.secret, server.clock,
                               server.mailer, server.settings.public_url,
                               web_access=access)
        pages = WebUI(self.session, access, self.api, server.clock,
                      server.metrics)
        root = web.Root(
            self.api.resource(server.settings.max_request_bytes, server,
                              server.metrics),
            pages.overview)
        pages.install(root)
        # -- end of web status UI
        root.putChild(b'metrics', MetricsResource(server.metrics))
        server.metrics.gauge(
            'linksync_urls', 'Monitored URLs by state',
            lambda: {(state,): n for state, n in self.session.read(
                lambda app: app.state_counts.counts()).items()},
            labels=('state',))
        server.metrics.gauge(
            'linksync_clients', 'Registered clients',
            lambda: self.session.read(lambda app: len(app.clients)))
        self.site = web.LinkSyncSite(root, server.settings.max_request_bytes,
                                     reactor=server.reactor)
        self.root = root
        self.listen(server.reactor, server.settings.listen, self.site)

    @defer.inlineCallbacks
    def stopService(self):
        yield super().stopService()
        self.session.close()


def _checker_service(server):
    """The checker and scheduler (issue 3)."""
    from linksync.server.checker.service import CheckerService
    return CheckerService(server)


#: Parts of the server: (role, factory(server) -> IService). `--role`
#: selects among them; all run by default.
PARTS = [
    ('api', APIService),
    ('checker', _checker_service),
]

# -- the syncer (issue 5) --------------------------------------------------------
from linksync.server.syncer import SyncerService  # noqa: E402 (kept with its entry)

PARTS.append(('syncer', SyncerService))
# -- end of the syncer ---------------------------------------------------------------


def _agent_service(server):
    # The change track's agents: client notifications and exports.
    from linksync.server.notifier import AgentService
    return AgentService(server)


PARTS += [
    ('agents', _agent_service),
]

# -- scale-out (issue 8): roles --------------------------------------------------
#: The role names, in the order the parts start (``--role``).
ROLES = tuple(dict.fromkeys(role for role, _ in PARTS))

#: Roles that need the management secret: the API checks it, the agents
#: unseal the clients' callback credentials with it.
SECRET_ROLES = frozenset({'api', 'agents'})


def check_roles(settings):
    """Raise ConfigError when --role, --worker and the storage do not fit
    together (one line naming the problem)."""
    from linksync.server.options import ConfigError
    roles = getattr(settings, 'role', None)
    worker = getattr(settings, 'worker', None)
    if worker is None:
        return
    if roles is not None and 'checker' not in roles:
        raise ConfigError('--worker %s needs the checker role (--role %s '
                          'has none)' % (worker, ','.join(roles)))
    if worker.count > 1 and not (settings.zeo or settings.storage):
        raise ConfigError('--worker %s shares the work with other processes:'
                          ' they need a shared database (--zeo HOST:PORT or '
                          '--storage DSN)' % worker)


def secret_for(settings, roles=None, announce=print):
    """The management secret of a process running `roles` (see
    load_secret); '' for a process whose roles have no use for it, so a
    checker worker never generates one."""
    if roles is not None and not SECRET_ROLES.intersection(roles):
        return ''
    return load_secret(settings, announce)


def describe_roles(roles, worker=None):
    """'api, checker (worker 1/2)': what a process runs, for its log."""
    names = ROLES if roles is None else roles
    text = ', '.join(names)
    if worker is not None and 'checker' in names:
        text += ' (worker %s)' % worker
    return text
# -- end of scale-out -------------------------------------------------------------


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
        return database.Database(storage.open_storage(
            self.settings.data, self.settings.zeo, self.settings.storage))

    def startService(self):
        threshold = gc.get_threshold()
        if threshold[0] < self.GC_THRESHOLD:
            self._gc_before = threshold
            gc.set_threshold(self.GC_THRESHOLD, *threshold[1:])
        self.database = self.open_database()
        for role, factory in PARTS:
            if self.roles is None or role in self.roles:
                factory(self).setServiceParent(self)
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
