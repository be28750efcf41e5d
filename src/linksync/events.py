"""Events fired by the data model (see linksync.interfaces).

Subscribers (registered in linksync.configure) run inside the transaction of
the change that fired them, so whatever they record commits or aborts with
it.
"""

import zope.component
import zope.event
from zope.component.event import dispatch
from zope.interface import implementer, providedBy
from zope.interface.interfaces import ObjectEvent

from linksync import interfaces


@implementer(interfaces.IURLAddedEvent)
class URLAdded(ObjectEvent):
    """A URL was added to the URL provider."""


@implementer(interfaces.IURLRemovedEvent)
class URLRemoved(ObjectEvent):
    """A URL was removed from the URL provider."""


@implementer(interfaces.IURLRegisteredEvent)
class URLRegistered(ObjectEvent):
    """A client registered a URL."""

    def __init__(self, url, client, now=None):
        super().__init__(url)
        self.client = client
        self.now = now


@implementer(interfaces.IURLUnregisteredEvent)
class URLUnregistered(ObjectEvent):
    """A client unregistered a URL."""

    def __init__(self, url, client, now=None):
        super().__init__(url)
        self.client = client
        self.now = now


@implementer(interfaces.IURLStateChangedEvent)
class URLStateChanged(ObjectEvent):
    """The state of a URL changed after a check."""

    def __init__(self, url, old_state, now):
        super().__init__(url)
        self.old_state = old_state
        self.now = now


# -- Client events (fired by linksync.providers.ClientProvider) ---------------

@implementer(interfaces.IClientAddedEvent)
class ClientAdded(ObjectEvent):
    """A client was added to the client provider."""

    def __init__(self, client, now=None):
        super().__init__(client)
        self.now = now


@implementer(interfaces.IClientRemovedEvent)
class ClientRemoved(ObjectEvent):
    """A client was removed from the client provider (its URLs were
    unregistered first)."""

    def __init__(self, client, now=None):
        super().__init__(client)
        self.now = now


# -- notifying many events at once ---------------------------------------------

def notify_all(events):
    """Notify each of `events` in turn, exactly like ``zope.event.notify``.

    Registering a thousand URLs fires thousands of events; looking up the
    component handlers of each event costs as much as a handler itself.
    Here they are looked up once per kind of event (per provided
    interfaces) and called for each event of that kind. The handlers are
    those registered when the call begins.
    """
    if not events:
        return
    found = {}
    registry = zope.component.getSiteManager().adapters
    for event in events:
        for subscriber in zope.event.subscribers:
            if subscriber is not dispatch:
                subscriber(event)
                continue
            provided = providedBy(event)
            handlers = found.get(provided)
            if handlers is None:
                handlers = found[provided] = registry.subscriptions(
                    [provided], None)
            for handler in handlers:
                handler(event)
