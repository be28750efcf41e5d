"""The two utilities of the server: all URLs and all clients.

Both are persistent and live in the application root (linksync.server.model.root); they
are registered as local utilities of that site by linksync.server.configure, so
that ``zope.component.getUtility(IURLProvider)`` finds them.
"""

import persistent
import zope.event
from BTrees.Length import Length
from BTrees.OOBTree import OOBTree
from zope.interface import implementer

from linksync import urlnorm
from linksync.server import interfaces
from linksync.server.model import events
from linksync.server.model.url import URL


@implementer(interfaces.IURLProvider)
class URLProvider(persistent.Persistent):
    """All monitored URLs, keyed by their normalised form."""

    def __init__(self):
        self._urls = OOBTree()
        self._count = Length()

    def add(self, url, now=None):
        return self.add_normalized(urlnorm.normalize(url), now)

    def add_normalized(self, norm, now=None):
        """Like add(), for a URL that went through urlnorm.normalize."""
        return self.add_many_normalized([norm], now)[0]

    def add_many_normalized(self, norms, now=None):
        """The URL objects of the normalised URLs `norms`, in order; the
        missing ones are added (URLAdded events fire after all were
        added)."""
        result = []
        added = []
        get = self._urls.get
        for norm in norms:
            obj = get(norm)
            if obj is None:
                obj = self._urls[norm] = URL(norm)
                if now is not None:
                    obj.orphaned_since = now
                added.append(obj)
            result.append(obj)
        if added:
            self._count.change(len(added))
            events.notify_all([events.URLAdded(obj) for obj in added])
        return result

    def get_normalized(self, norm, default=None):
        """Like get(), for a URL that went through urlnorm.normalize."""
        return self._urls.get(norm, default)

    def get(self, url, default=None):
        obj = self._urls.get(url)
        if obj is not None:
            return obj
        try:
            norm = urlnorm.normalize(url)
        except urlnorm.InvalidURL:
            return default
        return self._urls.get(norm, default)

    def remove(self, url):
        obj = self.get(url)
        if obj is None:
            raise KeyError(url)
        if obj.clients:
            raise ValueError('%r is still registered by %s' % (
                obj.url, ', '.join(sorted(obj.clients))))
        del self._urls[obj.url]
        self._count.change(-1)
        zope.event.notify(events.URLRemoved(obj))

    def __contains__(self, url):
        return self.get(url) is not None

    def __len__(self):
        return self._count()

    def __iter__(self):
        return iter(self._urls.values())

    def keys(self, min=None, max=None, excludemin=False):
        """The normalised URLs in order (a lazy BTree range)."""
        return self._urls.keys(min, max, excludemin=excludemin)


@implementer(interfaces.IClientProvider)
class ClientProvider(persistent.Persistent):
    """All registered clients, keyed by id."""

    def __init__(self):
        self._clients = OOBTree()
        self._count = Length()

    def add(self, client):
        if client.id in self._clients:
            raise KeyError('client %r exists already' % client.id)
        self._clients[client.id] = client
        self._count.change(1)
        zope.event.notify(events.ClientAdded(client, client.created))
        return client

    def get(self, client_id, default=None):
        if not isinstance(client_id, str):
            return default
        return self._clients.get(client_id, default)

    def remove(self, client_id, now=None):
        client = self._clients[client_id]
        client.unregister_urls(list(client.urls), now)
        del self._clients[client_id]
        self._count.change(-1)
        zope.event.notify(events.ClientRemoved(client, now))

    def __contains__(self, client_id):
        return self.get(client_id) is not None

    def __len__(self):
        return self._count()

    def __iter__(self):
        return iter(self._clients.values())

    def keys(self, min=None, max=None, excludemin=False):
        """The client ids in order (a lazy BTree range)."""
        return self._clients.keys(min, max, excludemin=excludemin)
