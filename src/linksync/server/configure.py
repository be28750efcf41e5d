"""Every component registration of linksync, in one place.

* Global registrations (adapters, event subscribers) are made by
  :func:`configure`, once per process; linksync.server.database calls it.
* Persistent parts of the application root, and the local utilities among
  them, are listed in :data:`PARTS` and installed by :func:`install_parts`
  when a database is opened (new parts appear in old databases that way).
"""

import zope.component
# Importing zope.component.event makes zope.event.notify() dispatch to the
# handlers registered with the component registry.
import zope.component.event  # noqa: F401
import zope.component.hooks

from linksync.agents.interfaces import ISyncManager
from linksync.server import interfaces

_configured = False


def client_synchronization(client):
    """The ISynchronization adapter of a client: state kept on the client."""
    return client.synchronization


def client_notifications(client):
    """The INotifications adapter of a client: state kept on the client."""
    return client.notifications


def _url_provider():
    from linksync.server.model.providers import URLProvider
    return URLProvider()


def _client_provider():
    from linksync.server.model.providers import ClientProvider
    return ClientProvider()


def _state_counts():
    from linksync.server.model.statecounts import StateCounts
    return StateCounts()


def _sync_manager():
    # The change track and its agents (issue 4).
    from linksync.agents.manager import SyncManager
    return SyncManager()


def _schedule():
    from linksync.server.model.due import Schedule
    return Schedule()


#: The persistent parts of the application root:
#: (attribute name, factory, interface it is registered as a utility for, or
#: None).
PARTS = [
    ('urls', _url_provider, interfaces.IURLProvider),
    ('clients', _client_provider, interfaces.IClientProvider),
    ('state_counts', _state_counts, interfaces.IStateCounts),
    # -- the change track and its agents
    ('sync', _sync_manager, ISyncManager),
    # -- checker and scheduler (issue 3)
    ('schedule', _schedule, interfaces.ISchedule),
]


# -- web status UI (issue 8): the index of URLs in trouble, for alerts pages
def _problem_index():
    from linksync.server.model.problems import ProblemIndex
    return ProblemIndex()


PARTS.append(('problems', _problem_index, interfaces.IProblemIndex))
# -- end of web status UI


def configure():
    """Make the global registrations (idempotent)."""
    global _configured
    if _configured:
        return
    zope.component.hooks.setHooks()
    gsm = zope.component.getGlobalSiteManager()
    gsm.registerAdapter(client_synchronization, (interfaces.IClient,),
                        interfaces.ISynchronization)
    gsm.registerAdapter(client_notifications, (interfaces.IClient,),
                        interfaces.INotifications)
    from linksync.server.model import statecounts
    gsm.registerHandler(statecounts.url_added, (interfaces.IURLAddedEvent,))
    gsm.registerHandler(statecounts.url_removed,
                        (interfaces.IURLRemovedEvent,))
    gsm.registerHandler(statecounts.state_changed,
                        (interfaces.IURLStateChangedEvent,))
    _configure_track(gsm)
    # -- checker and scheduler (issue 3): the schedule follows the URLs.
    from linksync.server.model import due as schedule
    gsm.registerHandler(schedule.url_registered,
                        (interfaces.IURLRegisteredEvent,))
    gsm.registerHandler(schedule.url_unregistered,
                        (interfaces.IURLUnregisteredEvent,))
    gsm.registerHandler(schedule.url_removed, (interfaces.IURLRemovedEvent,))
    # -- end of checker and scheduler
    _configure_problems(gsm)
    _configured = True


def _configure_problems(gsm):
    """Web status UI (issue 8): the problem index follows the URLs."""
    from linksync.server.model import problems
    gsm.registerHandler(problems.state_changed,
                        (interfaces.IURLStateChangedEvent,))
    gsm.registerHandler(problems.registered,
                        (interfaces.IURLRegisteredEvent,))
    gsm.registerHandler(problems.unregistered,
                        (interfaces.IURLUnregisteredEvent,))
    gsm.registerHandler(problems.url_removed, (interfaces.IURLRemovedEvent,))
    gsm.registerHandler(problems.client_removed,
                        (interfaces.IClientRemovedEvent,))


def _configure_track(gsm):
    """The change track: URL changes are recorded in it, every client has
    a notifier agent, and the agent kinds and operations are known."""
    from linksync.server import exporters, notifier
    from linksync.server.admin import agents as agentops
    from linksync.server.model import records as changes  # noqa: F401
    gsm.registerHandler(changes.state_changed,
                        (interfaces.IURLStateChangedEvent,))
    gsm.registerHandler(changes.registered, (interfaces.IURLRegisteredEvent,))
    gsm.registerHandler(changes.unregistered,
                        (interfaces.IURLUnregisteredEvent,))
    gsm.registerHandler(notifier.client_added,
                        (interfaces.IClientAddedEvent,))
    gsm.registerHandler(notifier.client_removed,
                        (interfaces.IClientRemovedEvent,))


def install_parts(app):
    """Create the parts `app` lacks and register its local utilities."""
    sm = app.getSiteManager()
    for name, factory, provided in PARTS:
        part = getattr(app, name, None)
        if part is None:
            part = factory()
            setattr(app, name, part)
            if provided is not None:
                sm.registerUtility(part, provided)
            # A part added to an existing database may need to learn what
            # the database already holds.
            initialize = getattr(part, 'initialize', None)
            if initialize is not None:
                initialize(app)
    return app
