"""Every component registration of linksync, in one place.

* Global registrations (adapters, event subscribers) are made by
  :func:`configure`, once per process; linksync.database calls it.
* Persistent parts of the application root, and the local utilities among
  them, are listed in :data:`PARTS` and installed by :func:`install_parts`
  when a database is opened (new parts appear in old databases that way).
"""

import zope.component
# Importing zope.component.event makes zope.event.notify() dispatch to the
# handlers registered with the component registry.
import zope.component.event  # noqa: F401
import zope.component.hooks

from linksync import interfaces

_configured = False


def client_synchronization(client):
    """The ISynchronization adapter of a client: state kept on the client."""
    return client.synchronization


def client_notifications(client):
    """The INotifications adapter of a client: state kept on the client."""
    return client.notifications


def _url_provider():
    from linksync.providers import URLProvider
    return URLProvider()


def _client_provider():
    from linksync.providers import ClientProvider
    return ClientProvider()


def _state_counts():
    from linksync.statecounts import StateCounts
    return StateCounts()


#: The persistent parts of the application root:
#: (attribute name, factory, interface it is registered as a utility for, or
#: None).
PARTS = [
    ('urls', _url_provider, interfaces.IURLProvider),
    ('clients', _client_provider, interfaces.IClientProvider),
    ('state_counts', _state_counts, interfaces.IStateCounts),
]


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
    from linksync import statecounts
    gsm.registerHandler(statecounts.url_added, (interfaces.IURLAddedEvent,))
    gsm.registerHandler(statecounts.url_removed,
                        (interfaces.IURLRemovedEvent,))
    gsm.registerHandler(statecounts.state_changed,
                        (interfaces.IURLStateChangedEvent,))
    _configured = True


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
