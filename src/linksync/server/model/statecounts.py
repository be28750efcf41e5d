"""How many URLs are in each state, kept up to date as states change.

The status page and the metrics show counts per state; counting a million
URLs on every request is out of the question, so the counts are kept by
subscribers of the URL events (see linksync.server.configure), in conflict-free
counters (BTrees.Length): concurrent writers never conflict on them.
"""

import collections

import persistent
from BTrees.Length import Length
from BTrees.OOBTree import OOBTree

from linksync import states
from linksync.server.model.events import handles_many

#: The key under which URLs never checked are counted.
UNCHECKED = states.UNKNOWN


class StateCounts(persistent.Persistent):
    """Counters of URLs per state (UNCHECKED for never-checked URLs)."""

    def __init__(self):
        # A counter for every state from the start: two writers (checker
        # workers) creating the same state's counter at once is a
        # conflict no merge resolves; changes of one counter add up.
        self._counts = OOBTree()
        self.add_missing_counters()

    def add_missing_counters(self):
        """Make the counter of every state that has none (earlier versions
        made each at its state's first URL); returns how many were made."""
        missing = [key for key in states.STATES + (UNCHECKED,)
                   if key not in self._counts]
        for key in missing:
            self._counts[key] = Length()
        return len(missing)

    def change(self, state, delta):
        key = UNCHECKED if state is None else state
        counter = self._counts.get(key)
        if counter is None:
            counter = self._counts[key] = Length()
        counter.change(delta)

    def counts(self):
        """{state: count} for every state, zeros included."""
        result = dict.fromkeys(states.STATES + (UNCHECKED,), 0)
        for key, counter in self._counts.items():
            result[key] = counter()
        return result

    def initialize(self, app):
        """Count the URLs of a database that had no counts yet."""
        for url in app.urls:
            self.change(url.state, 1)


# -- subscribers (registered in linksync.server.configure) -------------------------

def _counts():
    import zope.component

    from linksync.server.interfaces import IStateCounts
    return zope.component.queryUtility(IStateCounts)


def url_added_many(events):
    counts = _counts()
    if counts is not None:
        added = collections.Counter(event.object.state for event in events)
        for state, n in added.items():
            counts.change(state, n)


@handles_many(url_added_many)
def url_added(event):
    url_added_many([event])


def url_removed(event):
    counts = _counts()
    if counts is not None:
        counts.change(event.object.state, -1)


def state_changed_many(events):
    # A batch of results changes each state's counter once.
    counts = _counts()
    if counts is not None:
        deltas = collections.Counter()
        for event in events:
            deltas[event.old_state] -= 1
            deltas[event.object.state] += 1
        for state, delta in deltas.items():
            if delta:
                counts.change(state, delta)


@handles_many(state_changed_many)
def state_changed(event):
    state_changed_many([event])
