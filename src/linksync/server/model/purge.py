"""Removing the URLs no client has any more.

A URL whose last client unregistered it becomes an *orphan* (the schedule
indexes orphans by the time they were orphaned, linksync.server.model.due).
The checker removes orphans older than ``--orphan-grace`` as it goes;
:func:`remove_orphans` is that removal, and the ``purge`` operation
(``admin.purge``, ``linksync purge``) runs it at once with a grace of the
operator's choosing.
"""

import itertools

import zope.component

from linksync.server.interfaces import ISchedule, IURLProvider


def expired_orphans(before, owns=None, limit=None):
    """(orphaned since, url) of the orphans orphaned before `before`,
    oldest first; with `owns(url)`, only those it accepts; at most
    `limit`."""
    orphans = zope.component.getUtility(ISchedule).orphans(before)
    if owns is not None:
        orphans = (o for o in orphans if owns(o[1]))
    return itertools.islice(orphans, limit)


def remove_orphans(orphans):
    """Remove the URLs of `orphans` ((since, url) pairs) that still have no
    client; a URL registered again meanwhile is adopted back. Returns the
    URLs removed."""
    schedule = zope.component.getUtility(ISchedule)
    provider = zope.component.getUtility(IURLProvider)
    removed = []
    for since, url in list(orphans):
        obj = provider.get(url)
        if obj is None or obj.clients:
            schedule.adopt(url)         # a stale entry
        else:
            provider.remove(url)        # URLRemoved forgets it everywhere
            removed.append(url)
    return removed
