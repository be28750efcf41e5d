"""Generations of the stored data: the steps that bring an old database up.

A database records the generation of its data (``LinkSync.generation``);
when a database of an earlier generation opens for writing,
:func:`evolve` runs the steps from its generation to :data:`GENERATION`,
each in transactions of its own, and records the new generation last. A
step is idempotent: should the server stop halfway, the next start runs it
again and it finds what is left to do. A new database starts at
:data:`GENERATION`; a read-only one is served as it is.

Generation 1: URLs are keyed by today's normal form
(linksync.urlnorm). Earlier versions kept dot segments (``/a/../b``), so
a database they wrote may hold a URL under a key no client's spelling
normalises to any more. Each such URL moves to its key of today: its
clients are registered under the new key with the spellings they used
(they get states reported under those spellings as before), it keeps its
state, reason, time of the last check and of the last state change, its
history and its place in the schedule; if the new key was registered
already (a client spelled the URL the other way), the two merge and the
URL that was checked under the new key keeps its results. To the change
track this is what it is: the old key unregistered, the new one
registered with its state. Keys that today's rules refuse outright (a
server URL without a host, ``http:///x``) have no new key: they stay,
the checker reports them 'unsupported protocol: no host in the URL', and
clients still find them by their spelling
(urlnorm.normalize_previous).

Generation 2: each URL keeps its temporary failures in a row and the
failing state awaiting its confirmation itself (``URL.failures``,
``URL.pending``). Earlier versions kept them in two trees of the schedule,
which every checker worker wrote to (results stored by two workers at
once conflicted when one of those trees split a bucket). The entries move
onto their URLs, a batch per transaction, each batch taken out of the old
trees in the transaction that moves it; an entry left under a key the
first generation moved (it did not carry them) finds its URL by the key
of today; the trees go when empty. And the counts of URLs per state get
a counter for every state: earlier versions made each at the first URL in
its state, and two checker workers making the same one at once conflicted.
Last, the URLs' histories move from one tree into one tree per shard of
the hosts (linksync.server.model.history), a batch per transaction: a
worker then inserts the history of a URL's first result into a tree only
it writes to; and so do the entries of the index of URLs in trouble
(linksync.server.model.problems), and every client gets its counters of
URLs in trouble up front.
"""

import logging
import time

import zope.event

from linksync import states, urlnorm
from linksync.server.model import events, registration

log = logging.getLogger(__name__)

#: The generation of the data this version writes.
GENERATION = 2

#: URLs moved per transaction (each move touches a few dozen objects).
RENAME_BATCH = 200

#: Keys read between two collections of the connection's cache, so that a
#: scan of millions of keys holds a few buckets in memory, not the index.
SCAN_GC_EVERY = 10_000


def evolve(session, now=None):
    """Bring the database of `session` to GENERATION; returns what each
    step did ({step name: count}, empty when nothing was to do)."""
    done = {}
    generation = session.read(lambda app: app.generation)
    if generation >= GENERATION:
        return done
    now = time.time() if now is None else now
    if generation < 1:
        done['rekey'] = rekey(session, now)
    if generation < 2:
        done['schedule fields'] = move_schedule_fields(session)
        done['state counters'] = session.run(add_state_counters)
        done['history shards'] = shard_history(session)
        done['problem shards'] = shard_problems(session)
    session.run(_set_generation, GENERATION)
    log.info('the database moved from generation %d to %d: %s',
             generation, GENERATION, done)
    return done


def _set_generation(app, generation):
    if app.generation < generation:
        app.generation = generation


def rekey(session, now):
    """Move every URL stored under a key that is not its normal form of
    today; returns how many moved."""
    pairs = session.read(outdated_keys)
    for start in range(0, len(pairs), RENAME_BATCH):
        session.run(_rename_all, pairs[start:start + RENAME_BATCH], now)
    if pairs:
        log.info('%d URLs moved to their keys of today', len(pairs))
    return len(pairs)


#: Entries of the old schedule trees moved per transaction.
MOVE_BATCH = 1000


def _in_batches(session, step):
    """Run step(app), a transaction each, until it does nothing (returns
    0 or None); returns the sum of what it returned."""
    done = 0
    while True:
        count = session.run(step)
        if not count:
            return done
        done += count


def move_schedule_fields(session):
    """Move the schedule's trees of failures and pending confirmations
    onto the URLs; returns how many entries moved."""
    return _in_batches(session, _move_batch)


def _move_batch(app):
    """Move the next MOVE_BATCH entries; None when nothing is left (the
    trees are gone then)."""
    schedule = app.schedule
    schedule._p_activate()
    trees = [(name, schedule.__dict__[name])
             for name in ('_failures', '_pending')
             if name in schedule.__dict__]
    if not trees:
        return None
    provider = app.urls
    count = 0
    for name, tree in trees:
        while count < MOVE_BATCH and tree:
            key = tree.minKey()
            value = tree.pop(key)
            count += 1
            url = provider.get_normalized(key)
            if url is None:
                try:
                    url = provider.get_normalized(urlnorm.normalize(key))
                except urlnorm.InvalidURL:
                    url = None
            if url is None:
                continue        # the URL is gone: so is what it kept
            # What a URL's state makes meaningless is dropped: failures
            # in a row of one not temporarily unavailable, a confirmation
            # awaited by one not ok (a merged URL kept the other's).
            if name == '_failures':
                if url.state == states.TEMPORARY:
                    url.set_schedule_fields(max(url.failures, value),
                                            url.pending)
            elif url.pending is None and url.state == states.OK:
                url.set_schedule_fields(url.failures, value)
    for name, tree in trees:
        if not tree:
            delattr(schedule, name)
    return count


#: Entries (histories, URLs in trouble) moved into their shards per
#: transaction (each move writes two buckets; a history itself stays as
#: it is).
SHARD_BATCH = 10_000


def shard_history(session):
    """Move the histories of the one tree of an older History into the
    trees of their shards; returns how many moved."""
    return _in_batches(
        session, lambda app: app.history.move_to_shards(SHARD_BATCH))


def shard_problems(session):
    """Move the entries of the two trees of an older problem index into
    the trees of their shards, and make every client's counters; returns
    how many entries moved."""
    moved = _in_batches(
        session, lambda app: app.problems.move_to_shards(SHARD_BATCH))

    def counters(app):
        for client in app.clients:
            app.problems.prepare_client(client.id)
    session.run(counters)
    return moved


def add_state_counters(app):
    """Give the counts of URLs per state a counter for every state (earlier
    versions made one at its state's first URL); returns how many were
    added."""
    return app.state_counts.add_missing_counters()


def outdated_keys(app):
    """[(stored key, key of today)] of the URLs stored under a key that
    today's rules normalise to another one."""
    pairs = []
    jar = app._p_jar
    normalize = urlnorm.normalize
    for count, key in enumerate(app.urls.keys(), 1):
        try:
            norm = normalize(key)
        except urlnorm.InvalidURL:
            continue        # no key of today; found by normalize_previous
        if norm != key:
            pairs.append((key, norm))
        if count % SCAN_GC_EVERY == 0 and jar is not None:
            jar.cacheGC()
    return pairs


def _rename_all(app, pairs, now):
    for old, new in pairs:
        rename(app, old, new, now)


def rename(app, old, new, now):
    """Move the URL stored under the key `old` to the key `new`."""
    provider = app.urls
    url = provider.get_normalized(old)
    if url is None:
        return None         # moved already
    target = provider.get_normalized(new)
    fresh = target is None
    due = url.next_check
    registrations = []
    for client_id in sorted(url.clients):
        client = app.clients.get(client_id)
        if client is None:
            url._remove_client(client_id, now)   # a dangling entry
            continue
        registrations.append((client, list(client.spellings(old))))
        client.unregister_urls([url], now)
    provider.remove(old)
    if fresh:
        target = provider.add_normalized(new, now)
    for client, spellings in registrations:
        registration.register_normalized(client, {new: spellings}, now,
                                         add_spellings=True)
    app.history.rename(old, new)
    if fresh:
        if url.state is not None:
            target.state = url.state
            target.reason = url.reason
            target.last_check = url.last_check
            target.last_state_change = url.last_state_change
            zope.event.notify(events.URLStateChanged(
                target, None, now, renamed_from=old))
            target.set_schedule_fields(url.failures, url.pending)
        if due is not None and target.clients:
            app.schedule.reschedule(target, due)
    return target
