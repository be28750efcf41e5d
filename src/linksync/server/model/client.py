"""The persistent client: its credentials, URLs and per-client state."""

import persistent
import zope.component
import zope.event
from BTrees.Length import Length
from BTrees.OOBTree import OOBTree, OOTreeSet
from zope.interface import implementer

from linksync.server import interfaces
from linksync.server.model import credentials, events, passwords
from linksync.server.model.url import merge_states


@implementer(interfaces.ISynchronization)
class Synchronization(persistent.Persistent):
    """The synchronisation state of one client (its ISynchronization)."""

    last = None
    force = False
    retry_after = None
    last_error = ''

    def __init__(self, client):
        self.__parent__ = client

    def is_due(self, now, interval):
        if self.force:
            return True
        if self.retry_after is not None and now < self.retry_after:
            return False
        return self.last is None or now - self.last >= interval

    def sync(self):
        return sync_client(self.__parent__)

    def _p_resolveConflict(self, old, committed, new):
        return merge_states(old, committed, new)


@implementer(interfaces.INotifications)
class Notifications(persistent.Persistent):
    """The notification state of one client (its INotifications)."""

    enabled = True
    last = None
    failed = 0

    def __init__(self, client):
        self.__parent__ = client

    def _p_resolveConflict(self, old, committed, new):
        return merge_states(old, committed, new, counters=('failed',))


@implementer(interfaces.IClient)
class Client(persistent.Persistent):
    """A client application: its credentials, contact and URLs."""

    contact_name = ''
    contact_email = ''
    callback_url = ''
    password_hash = None
    created = None
    #: The callback credential, sealed (see linksync.server.model.credentials); None
    #: for clients stored before it was kept.
    callback_password_sealed = None

    def __init__(self, id, callback_url='', contact_name='',
                 contact_email='', password=None):
        self.id = id
        self.callback_url = callback_url
        self.contact_name = contact_name
        self.contact_email = contact_email
        if password is not None:
            self.set_password(password)
        # The client's normalised URLs (strings, not references: a bucket of
        # strings pickles at half the cost, and registration rewrites one
        # bucket per URL).
        self._urls = OOTreeSet()
        self._url_count = Length()
        # Only the spellings that differ from the normalised URL are kept:
        # {normalised: tuple of the client's spellings}.
        self._spellings = OOBTree()
        self.synchronization = Synchronization(self)
        self.notifications = Notifications(self)

    def __repr__(self):
        return '<Client %r>' % self.id

    # -- credentials -------------------------------------------------------

    def set_password(self, password):
        self.password_hash = passwords.hash_password(password)

    def check_password(self, password):
        if self.password_hash is None or not isinstance(password, str):
            return False
        return passwords.verify_password(password, self.password_hash)

    def set_callback_password(self, password, secret):
        """Keep `password` as the credential presented to the callback.

        It is stored sealed with the server's management secret `secret`,
        never in clear (see linksync.server.model.credentials).
        """
        self.callback_password_sealed = credentials.seal(password, secret)

    def callback_credentials(self, secret):
        """``(client id, password)``: what the server sends as the first
        two arguments of every call to this client's callback.

        `secret` is the server's management secret. Raises
        linksync.server.model.credentials.CredentialError, naming the client and the
        remedy, when no credential is stored or it cannot be read.
        """
        if self.callback_password_sealed is None:
            raise credentials.CredentialError(
                'no callback credential is stored for client %r; set it '
                'with: linksync credential %s' % (self.id, self.id))
        try:
            password = credentials.unseal(self.callback_password_sealed,
                                          secret)
        except credentials.CredentialError as e:
            raise credentials.CredentialError(
                'client %r: %s; set it again with: linksync credential %s'
                % (self.id, e, self.id)) from None
        return self.id, password

    # -- URLs ----------------------------------------------------------------

    @property
    def urls(self):
        provider = zope.component.getUtility(interfaces.IURLProvider)
        return (provider.get_normalized(url) for url in self._urls)

    @property
    def url_count(self):
        return self._url_count()

    def has_url(self, url):
        """True when the client registered the normalised `url`."""
        return url in self._urls

    def get_url(self, url, default=None):
        """The URL object of the normalised `url` if the client has it."""
        if url not in self._urls:
            return default
        provider = zope.component.getUtility(interfaces.IURLProvider)
        return provider.get_normalized(url)

    def url_keys(self, min=None, max=None, excludemin=False):
        """The client's normalised URLs in order (a lazy BTree range)."""
        return self._urls.keys(min, max, excludemin=excludemin)

    def register_urls(self, urls, now=None):
        added = []
        insert = self._urls.insert
        for url in urls:
            if insert(url.url):
                url._add_client(self.id)
                added.append(url)
        if added:
            self._url_count.change(len(added))
            events.notify_all([events.URLRegistered(url, self, now)
                               for url in added])
        return added

    def unregister_urls(self, urls, now=None):
        removed = []
        for url in urls:
            if url.url not in self._urls:
                continue
            self._urls.remove(url.url)
            self._spellings.pop(url.url, None)
            url._remove_client(self.id, now)
            removed.append(url)
        if removed:
            self._url_count.change(-len(removed))
            events.notify_all([events.URLUnregistered(url, self, now)
                               for url in removed])
        return removed

    # -- spellings -------------------------------------------------------------

    def spellings(self, url):
        if url not in self._urls:
            return ()
        return self._spellings.get(url, (url,))

    def add_spellings(self, url, spellings):
        """Remember further spellings the client uses for the normalised url."""
        current = set(self._spellings.get(url, (url,))) \
            if url in self._urls else set()
        self.set_spellings(url, current | set(spellings))

    def set_spellings(self, url, spellings):
        """Replace the spellings the client uses for the normalised url."""
        spellings = tuple(sorted(set(spellings)))
        if spellings in ((url,), ()):
            self._spellings.pop(url, None)
        elif self._spellings.get(url) != spellings:
            self._spellings[url] = spellings

    def remove_spelling(self, url, spelling):
        """Forget one spelling; returns True when none is left."""
        remaining = set(self.spellings(url)) - {spelling}
        self.set_spellings(url, remaining)
        return not remaining


#: The syncer running on each database (ZODB.DB -> ISyncer): the syncer
#: service adds itself while it runs. The data model does not depend on
#: the syncer's Twisted machinery, only on this entry.
RUNNING_SYNCERS = {}


def sync_client(client):
    """Synchronise `client` now, with the syncer running on its database.

    This is ISynchronization(client).sync(). Returns a Deferred firing with
    the ISyncResult. Raises LookupError when no syncer runs there.
    """
    jar = getattr(client, '_p_jar', None)
    syncer = RUNNING_SYNCERS.get(jar.db()) if jar is not None else None
    if syncer is None:
        raise LookupError('no syncer runs on the database of %r' % (client,))
    d = syncer.sync_clients([client.id])
    d.addCallback(lambda results: results[0])
    return d
