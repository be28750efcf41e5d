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


def _existence(group):
    """The first and the last create/delete of a group, in time order:
    each 'c', 'd' or None. A record carrying both flags is read as a
    create followed by a delete (an object that came and went at once)."""
    first = last = None
    for record in group:
        actions = set(record.actions)
        steps = []
        if actions & CREATE_FLAGS:
            steps.append('c')
        if actions & DELETE_FLAGS:
            steps.append('d')
        for step in steps:
            if first is None:
                first = step
            last = step
    return first, last


def reduce_records(records):
    """Reduce change records to one :class:`Change` per object.

    The records of an object are read in time order, and its latest create
    or delete decides, the first one telling whether the object existed
    before the window:

    * latest a create: created (a restore after a delete is a creation
      too: the consumer may have dropped the object);
    * latest a delete: deleted, unless the window began by creating the
      object: then it came and went within the window, nothing to say;
    * neither: modified.

    Records of one object at the very same time are read in their track
    order (by flags: a create before a delete). Whatever order the records
    come in, the result is the same. The other flags are gathered;
    changes come back ordered by (timestamp, key).

    >>> from linksync.track.records import ActionWrapper
    >>> def r(flags, ts=1):
    ...     return ActionWrapper('http://x.example/', flags, ts)
    >>> [c.action for c in reduce_records([r('created'), r('deleted', 2)])]
    []
    >>> [c.action for c in reduce_records(
    ...     [r('created'), r('deleted', 2), r('created', 3)])]
    ['created']
    >>> [c.action for c in reduce_records(
    ...     [r('deleted'), r('created', 2), r('deleted', 3)])]
    ['deleted']
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
        group.sort()
        first, last = _existence(group)
        if last == 'c':
            action = CREATED
        elif last == 'd':
            if first == 'c':
                continue
            action = DELETED
        else:
            action = MODIFIED
        flags = set()
        for record in group:
            flags.update(record.actions)
        latest = group[-1]
        changes.append(Change(
            action, latest.key, latest.obj, latest.context,
            tuple(sorted(flags - CREATE_FLAGS - DELETE_FLAGS)),
            latest.timestamp))
    changes.sort(key=lambda c: (c.timestamp, c.key))
    return changes
