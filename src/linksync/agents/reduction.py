"""Reducing a window's records to one change per object."""

import collections
import logging



log = logging.getLogger(__name__)

# The reduced actions.
CREATED = 'created'
MODIFIED = 'modified'
DELETED = 'deleted'

#: Action flags that make an object exist for a consumer / stop existing.
CREATE_FLAGS = frozenset({'created', 'registered'})
DELETE_FLAGS = frozenset({'deleted', 'unregistered'})


# -- reduction ------------------------------------------------------------------

Change = collections.namedtuple(
    'Change', 'action key obj context flags timestamp')
Change.__doc__ = """One object's reduced changes over a window.

`action` is created, modified or deleted; `flags` the union of the other
action flags; `timestamp` the latest record's.
"""


def _identity(record):
    # Records of one key may name different objects (a URL removed and a new
    # one added under the same address): those are reduced apart.
    oid = getattr(record.obj, '_p_oid', None)
    return (record.key, oid)


def reduce_records(records):
    """Reduce change records to one :class:`Change` per object.

    The rules (the result depends on the set of records only, never on
    their order): created and deleted both: nothing; deleted: deleted;
    created: created; anything else: modified. Changes come back ordered by
    (timestamp, key).

    >>> from linksync.track.records import ActionWrapper
    >>> def r(flags, ts=1):
    ...     return ActionWrapper('http://x.example/', flags, ts)
    >>> [c.action for c in reduce_records([r('created'), r('deleted', 2)])]
    []
    >>> reduce_records([r('state_changed'), r('deleted', 2)])[0].action
    'deleted'
    >>> c = reduce_records([r('state_changed', 2), r('created')])[0]
    >>> c.action, c.flags, c.timestamp
    ('created', ('state_changed',), 2)
    """
    groups = {}
    for record in records:
        groups.setdefault(_identity(record), []).append(record)
    changes = []
    for group in groups.values():
        flags = set()
        for record in group:
            flags.update(record.actions)
        created = bool(flags & CREATE_FLAGS)
        deleted = bool(flags & DELETE_FLAGS)
        if created and deleted:
            continue
        action = DELETED if deleted else CREATED if created else MODIFIED
        latest = max(group)
        changes.append(Change(
            action, latest.key, latest.obj, latest.context,
            tuple(sorted(flags - CREATE_FLAGS - DELETE_FLAGS)),
            latest.timestamp))
    changes.sort(key=lambda c: (c.timestamp, c.key))
    return changes
