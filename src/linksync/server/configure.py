"""The composition root: every registration of linksync, in one place.

Importing a linksync module registers nothing. :func:`configure` makes
every registration, once per process, and the entry points call it: the
``linksync`` command (linksync.cli), the twist plugin
(linksync.server.twist) and the test set-up (tests/conftest.py). What it
registers, in the global component registry:

* the adapters of a client (ISynchronization, INotifications);
* the event handlers that keep the indexes, the change track and the
  client notifiers in step with the data model (:data:`HANDLERS`);
* the persistent parts of the application root (:data:`ROOT_PARTS`), and
  the local utilities among them, installed by :class:`RootParts` when a
  database is opened (a part added later appears in old databases that
  way);
* the kinds of agents (:data:`AGENT_KINDS`), by kind name;
* the administrative operations marked with
  linksync.server.admin.operations.operation in :data:`OPERATION_MODULES`;
* the parts of the server process, one service factory for each role of
  linksync.server.options.ROLES (:data:`SERVER_PARTS`).

The options of the commands are declared, not registered: they are the
lists of linksync.server.options.
"""

import zope.component
from zope.component.hooks import setHooks
from zope.interface import implementer

from linksync.agents.interfaces import IAgentKind, ISyncManager
from linksync.agents.manager import SyncManager
from linksync.server import exporters, interfaces, notifier, syncer
from linksync.server.admin import agents as agent_operations
from linksync.server.admin import operations
from linksync.server.checker.service import CheckerService
from linksync.server.model import (digests, due, problems, records,
                                   statecounts, trends)
from linksync.server.model.digests import Digests
from linksync.server.model.due import Schedule
from linksync.server.model.history import History
from linksync.server.model.problems import ProblemIndex
from linksync.server.model.providers import ClientProvider, URLProvider
from linksync.server.model.statecounts import StateCounts
from linksync.server.model.trends import Trends
from linksync.server.options import ROLES
from linksync.server.service import APIService

_configured = False


def client_synchronization(client):
    """The ISynchronization adapter of a client: state kept on the client."""
    return client.synchronization


def client_notifications(client):
    """The INotifications adapter of a client: state kept on the client."""
    return client.notifications


#: The persistent parts of the application root: (attribute name, factory,
#: interface it is registered as a local utility for, or None).
ROOT_PARTS = [
    ('urls', URLProvider, interfaces.IURLProvider),
    ('clients', ClientProvider, interfaces.IClientProvider),
    ('state_counts', StateCounts, interfaces.IStateCounts),
    # The change track and its agents.
    ('sync', SyncManager, ISyncManager),
    # When each URL is due: the checker's schedule.
    ('schedule', Schedule, interfaces.ISchedule),
    # The index of URLs in trouble, for the alerts pages.
    ('problems', ProblemIndex, interfaces.IProblemIndex),
    # What happened to each URL: recent results and state changes.
    ('history', History, interfaces.IHistory),
    # The series the status pages draw.
    ('trends', Trends, interfaces.ITrends),
    # The changes each client's daily digest e-mail tells.
    ('digests', Digests, interfaces.IDigests),
]

#: (handler, event interface): subscribers run inside the transaction of
#: the change that fired the event.
HANDLERS = [
    # How many URLs are in each state.
    (statecounts.url_added, interfaces.IURLAddedEvent),
    (statecounts.url_removed, interfaces.IURLRemovedEvent),
    (statecounts.state_changed, interfaces.IURLStateChangedEvent),
    # The change track records the changes of the link database.
    (records.state_changed, interfaces.IURLStateChangedEvent),
    (records.registered, interfaces.IURLRegisteredEvent),
    (records.unregistered, interfaces.IURLUnregisteredEvent),
    # Every client has a notifier agent.
    (notifier.client_added, interfaces.IClientAddedEvent),
    (notifier.client_removed, interfaces.IClientRemovedEvent),
    # The schedule follows the URLs.
    (due.url_registered, interfaces.IURLRegisteredEvent),
    (due.url_unregistered, interfaces.IURLUnregisteredEvent),
    (due.url_removed, interfaces.IURLRemovedEvent),
    # The problem index follows the URLs.
    (problems.state_changed, interfaces.IURLStateChangedEvent),
    (problems.registered, interfaces.IURLRegisteredEvent),
    (problems.unregistered, interfaces.IURLUnregisteredEvent),
    (problems.url_removed, interfaces.IURLRemovedEvent),
    (problems.client_removed, interfaces.IClientRemovedEvent),
    # The trends and digests forget removed clients; digests note changes.
    (trends.client_added, interfaces.IClientAddedEvent),
    (trends.client_removed, interfaces.IClientRemovedEvent),
    (digests.state_changed, interfaces.IURLStateChangedEvent),
    (digests.client_removed, interfaces.IClientRemovedEvent),
]

#: The kinds of agents `linksync agent add` knows (and the notifiers,
#: which come and go with their client).
AGENT_KINDS = [
    notifier.ClientNotifierAgent,
    exporters.JSONLinesAgent,
    exporters.XMLRPCPushAgent,
]

#: The modules whose marked functions are the administrative operations.
OPERATION_MODULES = [operations, agent_operations, syncer]

#: role -> factory(server) -> IService: the parts of a server process.
SERVER_PARTS = {
    'api': APIService,
    'checker': CheckerService,
    'syncer': syncer.SyncerService,
    'agents': notifier.AgentService,
}


@implementer(interfaces.IRootParts)
class RootParts:
    """Installs the persistent parts of the application root."""

    def __init__(self, parts):
        self.parts = list(parts)

    def install(self, app):
        """Create the parts `app` lacks and register its local utilities."""
        sm = app.getSiteManager()
        for name, factory, provided in self.parts:
            part = getattr(app, name, None)
            if part is None:
                part = factory()
                setattr(app, name, part)
                if provided is not None:
                    sm.registerUtility(part, provided)
                # A part added to an existing database may need to learn
                # what the database already holds.
                initialize = getattr(part, 'initialize', None)
                if initialize is not None:
                    initialize(app)
        return app


def configure():
    """Make every registration (idempotent)."""
    global _configured
    if _configured:
        return
    # zope.event.notify() dispatches to the handlers registered with the
    # component registry once zope.component.event is imported.
    import zope.component.event  # noqa: F401
    setHooks()
    gsm = zope.component.getGlobalSiteManager()
    gsm.registerAdapter(client_synchronization, (interfaces.IClient,),
                        interfaces.ISynchronization)
    gsm.registerAdapter(client_notifications, (interfaces.IClient,),
                        interfaces.INotifications)
    for handler, event in HANDLERS:
        gsm.registerHandler(handler, (event,))
    gsm.registerUtility(RootParts(ROOT_PARTS), interfaces.IRootParts)
    for cls in AGENT_KINDS:
        gsm.registerUtility(cls, IAgentKind, cls.kind)
    for module in OPERATION_MODULES:
        for op in operations.marked_in(module):
            gsm.registerUtility(op, interfaces.IOperation, op.name)
    assert set(SERVER_PARTS) == set(ROLES), 'a role without a server part'
    for role, factory in SERVER_PARTS.items():
        gsm.registerUtility(factory, interfaces.IServerPart, role)
    _configured = True

