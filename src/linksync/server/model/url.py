"""The persistent data model: URLs, clients and their per-client state.

URLs and clients live in BTrees (see linksync.server.model.providers) so that millions of
URLs and thousands of clients scale. The client-to-URL index is kept both
ways: ``URL.clients`` names the clients of a URL, ``Client._urls`` maps the
client's normalised URLs to their URL objects.

Concurrent writers (the API, the checker, the syncer, several processes on
ZEO) touch the same objects. Where their changes are independent, the
objects resolve the ZODB conflict themselves (see :func:`merge_states`); the
rest is retried by linksync.server.database.
"""

import persistent
import zope.component
import zope.event
from ZODB.POSException import ConflictError
from zope.interface import implementer

from linksync.server import interfaces
from linksync.server.model import events


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
               'last_state_change', 'orphaned_since', 'failures', 'pending')
_URL_ATTRIBUTES = frozenset(('url', 'clients') + _URL_FIELDS)

#: Client sets shared by the URLs in memory that have the same clients.
#: A million URLs have few distinct client sets, and a frozenset of one
#: client id costs 216 bytes (and the id another 50 or more) in each URL
#: a connection's cache holds: bench/xmlrpc.py's ingest of a million URLs
#: peaked 297 MiB with a set per URL.
_CLIENT_SETS = {}
#: At most that many sets are remembered (then the table starts again).
_CLIENT_SETS_KEPT = 4096


def client_set(clients):
    """The frozenset of `clients`, shared with every other URL in memory
    whose clients are the same."""
    clients = frozenset(clients)
    try:
        return _CLIENT_SETS[clients]
    except KeyError:
        if len(_CLIENT_SETS) >= _CLIENT_SETS_KEPT:
            _CLIENT_SETS.clear()
        _CLIENT_SETS[clients] = clients
        return clients


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
    #: When the URL is due for a check (kept by linksync.server.model.due).
    next_check = None
    #: Temporary failures in a row, and the failing state awaiting its
    #: confirmation (kept by linksync.server.model.due, with the result:
    #: on the URL, which is written after every check anyway, rather than
    #: in indexes of their own, which all checker workers would write).
    failures = 0
    pending = None

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

    def set_result(self, state, reason, now, changes=None):
        """Store a check's outcome; True when the state changed. The
        URLStateChanged event is notified, or with `changes` (a list)
        appended to it, for the caller to notify with the others of its
        batch (events.notify_all)."""
        old_state = self.state
        changed = state != old_state
        if changed:
            self.state = state
            self.last_state_change = now
        if reason != self.reason:
            self.reason = reason
        self.last_check = now
        if changed:
            event = events.URLStateChanged(self, old_state, now)
            if changes is None:
                zope.event.notify(event)
            else:
                changes.append(event)
        return changed

    def set_schedule_fields(self, failures, pending):
        """Set `failures` and `pending`; at their defaults (0, None) they
        are left out of the stored record."""
        attributes = self.__dict__
        for name, value, default in (('failures', failures, 0),
                                     ('pending', pending, None)):
            if value != default:
                if attributes.get(name, default) != value:
                    setattr(self, name, value)
            elif name in attributes:
                delattr(self, name)

    def _add_client(self, client_id):
        if client_id not in self.clients:
            self.clients = client_set(self.clients | {client_id})
            if 'orphaned_since' in self.__dict__:
                # Back to the class default: one field less in the record.
                del self.orphaned_since

    def _remove_client(self, client_id, now):
        if client_id in self.clients:
            self.clients = client_set(self.clients - {client_id})
            if not self.clients:
                self.orphaned_since = now


def _url_attributes(state):
    """The attribute dict of a stored URL state (a tuple or a dict)."""
    if isinstance(state, dict):
        return state
    attributes = {'url': state[0], 'clients': client_set(state[1])}
    for name, value in zip(_URL_FIELDS, state[2:]):
        if value is not None:
            attributes[name] = value
    return attributes
