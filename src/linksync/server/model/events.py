"""Events fired by the data model (see linksync.interfaces).

Subscribers (registered in linksync.server.configure) run inside the transaction of
the change that fired them, so whatever they record commits or aborts with
it.
"""

import zope.component
import zope.event
from zope.interface import implementer, providedBy
from zope.interface.interfaces import ObjectEvent

from linksync.server import interfaces


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

    def __init__(self, url, old_state, now, renamed_from=None):
        super().__init__(url)
        self.old_state = old_state
        self.now = now
        #: The key the URL had, when its state moved with it to a new key
        #: (linksync.server.model.generations): no check changed it.
        self.renamed_from = renamed_from


# -- Client events (fired by linksync.server.model.providers.ClientProvider) ---------------

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

def handles_many(many):
    """Give an event handler a form for a batch of events.

    ``@handles_many(f)`` on a handler: :func:`notify_all` calls ``f(events)``
    once with a run of events of the handler's kind instead of the handler
    once per event. `f` must do what calling the handler on each event in
    turn would do.
    """
    def decorate(handler):
        handler.many = many
        return handler
    return decorate


def notify_all(events):
    """Notify `events` like ``zope.event.notify`` does each of them.

    Registering a thousand URLs fires thousands of events. Here the
    component handlers are looked up once per kind of event (per provided
    interfaces), and a handler with a batch form (:func:`handles_many`) is
    called once per run of consecutive events of its kind. The handlers
    are those registered when the call begins. Within a run, each handler
    sees all its events before the next handler sees any: the handlers of
    one event must not depend on each other (they keep separate indexes).
    """
    if not events:
        return
    found = {}
    # Imported here: importing zope.component.event subscribes its
    # dispatcher to zope.event, which is the composition root's to do.
    from zope.component.event import dispatch
    registry = zope.component.getSiteManager().adapters
    for provided, run in _runs(events):
        for subscriber in zope.event.subscribers:
            if subscriber is not dispatch:
                for event in run:
                    subscriber(event)
                continue
            handlers = found.get(provided)
            if handlers is None:
                handlers = found[provided] = registry.subscriptions(
                    [provided], None)
            for handler in handlers:
                many = getattr(handler, 'many', None)
                if many is not None:
                    many(run)
                else:
                    for event in run:
                        handler(event)


def _runs(events):
    """(provided interfaces, [events]) for each run of consecutive events
    that provide the same."""
    runs = []
    last = None
    for event in events:
        provided = providedBy(event)
        if runs and provided is last:
            runs[-1][1].append(event)
        else:
            runs.append((provided, [event]))
            last = provided
    return runs
