"""The changes of the link database, as records of the change track.

Subscribers (registered by linksync.server.configure) record, in the transaction of
the change itself:

* a URL state change: the URL, flag ``state_changed``, keyed
  ``('URL', url)`` (the changes of a batch of check results as one
  family, at the time of its last check);
* a registration / unregistration: the URL and the client (as context),
  flag ``registered`` / ``unregistered``, keyed
  ``('Registration', client id, url)``: per client, so that one client
  registering a URL and another dropping it do not cancel out.

:func:`describe` turns a reduced change into plain data for the exporting
agents, and :func:`snapshot` lists every live object as created, for a full
export.
"""

import zope.component

from linksync import states
from linksync.states import iso8601
from linksync.server.model import events
from linksync.agents.reduction import CREATED
from linksync.agents.interfaces import ISyncManager
from linksync.server.interfaces import IClientProvider, IURLProvider
from linksync.track.records import ActionWrapper

STATE_CHANGED = 'state_changed'
REGISTERED = 'registered'
UNREGISTERED = 'unregistered'

#: Objects per unit of work of a full export.
SNAPSHOT_CHUNK = 1000


def url_key(url):
    return ('URL', url.url)


def registration_prefix(client_id):
    """The key of a registration record is this + (the URL,)."""
    return ('Registration', client_id)


def _when(manager, now):
    # Events without a time are recorded at the start of the open bucket,
    # so that no agent misses them.
    return manager.open_timestamp() if now is None else now


def record(obj, flag, now, key, context=None):
    """Add a record to the track of the current site (when it has one)."""
    manager = zope.component.queryUtility(ISyncManager)
    if manager is None:
        # No database site: the object is not stored, there is no track.
        return False
    now = _when(manager, now)
    return manager.add(now, ActionWrapper(obj, flag, now, key=key,
                                          context=context))


# -- the subscribers ------------------------------------------------------------

def state_changed_many(events_):
    """The records of state change events notified together (a batch of
    check results): one family (see linksync.track.RecordGroups), recorded
    at the time of the last check among them, so that the track gains an
    entry or two per batch rather than one per URL. (Checker workers
    storing their batches at once then rarely change the same BTree
    bucket of the track; each record still carries the time of its own
    check as the URL's ``last_check``.)"""
    manager = zope.component.queryUtility(ISyncManager)
    if manager is None:
        return
    times = [event.now for event in events_ if event.now is not None]
    now = _when(manager, max(times) if times else None)
    if len(events_) == 1:
        url = events_[0].object
        record(url, STATE_CHANGED, now, url_key(url))
        return
    manager.add_family(now, STATE_CHANGED, ('URL',), None,
                       [(event.object.url, event.object)
                        for event in events_])


@events.handles_many(state_changed_many)
def state_changed(event):
    state_changed_many([event])


def _record_registrations(events_, flag):
    """The records of (un)registration events, a family per client and
    time (see linksync.track.RecordGroups)."""
    manager = zope.component.queryUtility(ISyncManager)
    if manager is None:
        return
    families = {}
    for event in events_:
        client = event.client
        family = families.get((event.now, client.id))
        if family is None:
            family = families[event.now, client.id] = (client, [])
        url = event.object
        family[1].append((url.url, url))
    for (now, client_id), (client, items) in families.items():
        manager.add_family(_when(manager, now), flag,
                           registration_prefix(client_id), client, items)


def registered_many(events_):
    _record_registrations(events_, REGISTERED)


def unregistered_many(events_):
    _record_registrations(events_, UNREGISTERED)


@events.handles_many(registered_many)
def registered(event):
    registered_many([event])


@events.handles_many(unregistered_many)
def unregistered(event):
    unregistered_many([event])


# -- plain data for consumers ----------------------------------------------------

def url_item(url, action, flags, timestamp):
    return {
        'object': 'url', 'url': url.url, 'action': action,
        'flags': list(flags), 'timestamp': timestamp,
        'state': states.wire_state(url.state), 'reason': url.reason or '',
        'last_check': iso8601(url.last_check),
    }


def registration_item(url, client_id, action, flags, timestamp):
    return {
        'object': 'registration', 'url': url.url, 'client': client_id,
        'action': action, 'flags': list(flags), 'timestamp': timestamp,
    }


def describe(change):
    """A reduced change (linksync.agents.Change) as plain data (no None
    anywhere: it travels over XML-RPC too)."""
    if change.key and change.key[0] == 'Registration':
        return registration_item(change.obj, change.key[1], change.action,
                                 change.flags, change.timestamp)
    if change.key and change.key[0] == 'URL':
        return url_item(change.obj, change.action, change.flags,
                        change.timestamp)
    return {'object': str(change.key[0]), 'key': [str(k) for k in change.key],
            'action': change.action, 'flags': list(change.flags),
            'timestamp': change.timestamp}


def _page(keys, after, chunk, items_of):
    """Items of the `chunk` keys after `after` (from keys(min, excludemin)):
    (items, the last key of the page, or None when it was the last page)."""
    items = []
    last = None
    for count, key in enumerate(keys(after, excludemin=after is not None)):
        if count == chunk:
            return items, last
        items.extend(items_of(key))
        last = key
    return items, None


def snapshot_page(after, now, chunk=SNAPSHOT_CHUNK):
    """One page of a full export: the live URLs after the URL `after`
    (None: from the first) as created, each followed by its registrations.

    Returns (items, last URL of the page, or None when it was the last
    page). Each page is read in a unit of work of its own: changes made
    meanwhile are in the track, after the bucket the export started from.
    """
    provider = zope.component.getUtility(IURLProvider)

    def items_of(key):
        url = provider.get(key)
        return [url_item(url, CREATED, (), now)] + [
            registration_item(url, client_id, CREATED, (), now)
            for client_id in sorted(url.clients)]
    return _page(provider.keys, after, chunk, items_of)


def client_rows_page(client, after, chunk=SNAPSHOT_CHUNK):
    """[spelling, state, reason] of the checked URLs of `client` after the
    URL `after`: (rows, last URL, or None on the last page)."""
    def rows_of(key):
        url = client.get_url(key)
        if url.state is None:
            return []
        return [[spelling, url.state, url.reason or '']
                for spelling in client.spellings(key)]
    return _page(client.url_keys, after, chunk, rows_of)


def get_client(client_id):
    return zope.component.getUtility(IClientProvider).get(client_id)
