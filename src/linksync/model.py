"""The persistent data model: URLs, clients and their per-client state.

URLs and clients live in BTrees (see linksync.providers) so that millions of
URLs and thousands of clients scale. The client-to-URL index is kept both
ways: ``URL.clients`` names the clients of a URL, ``Client._urls`` maps the
client's normalised URLs to their URL objects.

Concurrent writers (the API, the checker, the syncer, several processes on
ZEO) touch the same objects. Where their changes are independent, the
objects resolve the ZODB conflict themselves (see :func:`merge_states`); the
rest is retried by linksync.database.
"""

import persistent
import zope.component
import zope.event
from BTrees.Length import Length
from BTrees.OOBTree import OOBTree, OOTreeSet
from ZODB.POSException import ConflictError
from zope.interface import implementer

from linksync import credentials, events, interfaces, passwords


_MISSING = object()


def merge_states(old, committed, new, sets=(), counters=()):
    """Three-way merge of two concurrent changes of a persistent object.

    Attributes changed on one side only take that side's value; attributes
    named in `sets` (frozensets) merge additions and removals of both sides;
    attributes named in `counters` add up both sides' increments (a reset to
    0 on either side wins). Anything else changed on both sides differently
    is a real conflict.
    """
    result = dict(committed)
    for key in set(old) | set(committed) | set(new):
        o = old.get(key, _MISSING)
        c = committed.get(key, _MISSING)
        n = new.get(key, _MISSING)
        if c == n or n == o:
            value = c
        elif c == o:
            value = n
        elif key in sets:
            o, c, n = (frozenset() if v is _MISSING else v for v in (o, c, n))
            value = (o | (c - o) | (n - o)) - (o - c) - (o - n)
        elif key in counters and _MISSING not in (o, c, n):
            value = 0 if 0 in (c, n) else c + n - o
        else:
            raise ConflictError('conflicting changes of %r' % key)
        if value is _MISSING:
            result.pop(key, None)
        else:
            result[key] = value
    return result


#: The attributes of a URL after ``url`` and ``clients``, in the order of
#: its stored state (see URL.__getstate__); None stands for the default.
_URL_FIELDS = ('next_check', 'state', 'reason', 'last_check',
               'last_state_change', 'orphaned_since')
_URL_ATTRIBUTES = frozenset(('url', 'clients') + _URL_FIELDS)


@implementer(interfaces.IURL)
class URL(persistent.Persistent):
    """A monitored URL and the outcome of its last check.

    A million URLs are a million stored objects, each written when it is
    registered and after every check; so a URL is stored as a tuple
    ``(url, clients, next_check, state, reason, last_check,
    last_state_change, orphaned_since)`` without its trailing defaults,
    rather than the attribute dict: half the bytes, and half the time to
    write. A dict state (a URL stored before, or one with an attribute
    this list does not name) is read and written as such.
    """

    state = None
    reason = ''
    last_check = None
    last_state_change = None
    #: Epoch seconds since the URL has had no client (None while it has).
    orphaned_since = None
    #: When the URL is due for a check (kept by linksync.schedule).
    next_check = None

    def __init__(self, url):
        self.url = url
        self.clients = frozenset()

    def __repr__(self):
        return '<URL %r>' % self.url

    def __getstate__(self):
        attributes = self.__dict__
        if 'url' not in attributes or \
                not _URL_ATTRIBUTES.issuperset(attributes):
            # Volatile (_v_) attributes are left out there.
            attributes = persistent.Persistent.__getstate__(self)
            if 'url' not in attributes or \
                    not _URL_ATTRIBUTES.issuperset(attributes):
                return attributes
        get = attributes.get
        clients = get('clients', ())
        state = [attributes['url'],
                 tuple(sorted(clients)) if len(clients) > 1 else
                 tuple(clients)]
        state += map(get, _URL_FIELDS)
        while state[-1] is None:
            state.pop()
        return tuple(state)

    def __setstate__(self, state):
        persistent.Persistent.__setstate__(self, _url_attributes(state))

    def _p_resolveConflict(self, old, committed, new):
        # The checker storing a result and a client registering the URL at
        # the same time is normal; only same-field disagreements conflict.
        return merge_states(_url_attributes(old), _url_attributes(committed),
                            _url_attributes(new), sets=('clients',))

    def set_result(self, state, reason, now):
        old_state = self.state
        changed = state != old_state
        if changed:
            self.state = state
            self.last_state_change = now
        if reason != self.reason:
            self.reason = reason
        self.last_check = now
        if changed:
            zope.event.notify(events.URLStateChanged(self, old_state, now))
        return changed

    def _add_client(self, client_id):
        if client_id not in self.clients:
            self.clients = self.clients | {client_id}
            if 'orphaned_since' in self.__dict__:
                # Back to the class default: one field less in the record.
                del self.orphaned_since

    def _remove_client(self, client_id, now):
        if client_id in self.clients:
            self.clients = self.clients - {client_id}
            if not self.clients:
                self.orphaned_since = now


def _url_attributes(state):
    """The attribute dict of a stored URL state (a tuple or a dict)."""
    if isinstance(state, dict):
        return state
    attributes = {'url': state[0], 'clients': frozenset(state[1])}
    for name, value in zip(_URL_FIELDS, state[2:]):
        if value is not None:
            attributes[name] = value
    return attributes


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
        # The syncer is looked up here rather than imported at module level:
        # the data model must not depend on the Twisted machinery.
        from linksync.syncer import sync_client
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
    #: The callback credential, sealed (see linksync.credentials); None
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
        never in clear (see linksync.credentials).
        """
        self.callback_password_sealed = credentials.seal(password, secret)

    def callback_credentials(self, secret):
        """``(client id, password)``: what the server sends as the first
        two arguments of every call to this client's callback.

        `secret` is the server's management secret. Raises
        linksync.credentials.CredentialError, naming the client and the
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
