"""The database and the units of work done on it.

The parts of a server (the XML-RPC API, the checker, the syncer, the
agents) work through one :class:`Session`: a ZODB connection with its own
transaction manager, used from the reactor thread only
(linksync.server.service). Other sessions (a synchronisation's, a command's,
a test's) see its commits at their next transaction. A unit of work is a
function run by :meth:`Session.run`: it begins a fresh transaction, makes the
application root the current site (so zope.component finds the utilities of
this connection), commits, and retries on a conflict, so that concurrent
writers never lose an update. Nothing is committed when the function raises.
"""

import contextlib
import logging
import weakref

import transaction
import ZODB
import ZODB.interfaces
import zope.component.hooks
from transaction.interfaces import TransientError

from linksync.server import migration, storage
from linksync.server.model import generations, root as app_module

log = logging.getLogger(__name__)

#: Objects kept in each connection's cache, and the byte budget of the cache.
DEFAULT_CACHE_SIZE = 100_000
DEFAULT_CACHE_BYTES = 256 * 1024 * 1024
#: Connections open at once before ZODB logs a warning: a session per part
#: of the server, and one per client the syncer synchronises at once
#: (--sync-concurrency).
DEFAULT_POOL_SIZE = 16


def open_database(settings, read_only=False, create=None):
    """The Database the settings name (--data, --zeo or --storage): the
    one place that opens the server's database from settings.

    A read-only database is not created when it holds no data yet.
    """
    return Database(storage.open_storage(
        settings.data, settings.zeo, settings.storage, read_only=read_only),
        cache_size=getattr(settings, 'cache_objects', None) or
        DEFAULT_CACHE_SIZE,
        cache_size_bytes=(getattr(settings, 'cache_mib', None) or
                          DEFAULT_CACHE_BYTES // 2 ** 20) * 2 ** 20,
        create=not read_only if create is None else create)


class _DB(ZODB.DB):
    """A ZODB database that finds the classes of old records where they
    moved (see linksync.server.migration)."""

    def classFactory(self, connection, modulename, globalname):
        return migration.class_factory(connection, modulename, globalname)


class Database:
    """A ZODB database holding a linksync application."""

    def __init__(self, storage, cache_size=DEFAULT_CACHE_SIZE,
                 cache_size_bytes=DEFAULT_CACHE_BYTES, create=True):
        self.db = _DB(storage, cache_size=cache_size,
                          cache_size_bytes=cache_size_bytes,
                          large_record_size=1 << 26,
                          pool_size=DEFAULT_POOL_SIZE)
        self.read_only = storage.isReadOnly()
        # Scale-out: a storage that learns of other processes'
        # commits only when a transaction begins (RelStorage polls then)
        # never moves lastTransaction() by itself: reads must begin one.
        self.polls = ZODB.interfaces.IMVCCStorage.providedBy(storage)
        self._kept_current = weakref.WeakSet()
        #: Transactions of this process's sessions so far, by outcome:
        #: ``committed`` (those that changed something) and ``conflict``
        #: (aborted by a conflict with another writer, or another
        #: transient error; :meth:`Session.run` retries them). Served as
        #: ``linksync_database_transactions_total`` in /metrics.
        self.transactions = {'committed': 0, 'conflict': 0}
        if create and not self.read_only:
            session = self.session()
            try:
                session.run(lambda app: None)
                # The data of earlier versions is brought up to this one's.
                generations.evolve(session)
            finally:
                session.close()

    def session(self, kept_current=False):
        """A new Session (connection and transaction manager); one
        `kept_current` is brought up to date by :meth:`catch_up`."""
        session = Session(self)
        if kept_current:
            self._kept_current.add(session)
        return session

    def catch_up(self):
        """Bring every session made `kept_current` up to the last commit.

        Until a connection begins a transaction, ZODB remembers for it the
        id of every object other connections commit: a server part that
        waits (the syncer ticks once a minute) while another writes a
        million URLs holds a set of millions of ids. Measured: ingesting
        1,000,000 URLs through registerURLs, the server grew to 378 MiB,
        against 207 MiB with only the API running, a part idle during
        the ingest adding up to 100 MiB. The server calls this every
        second for the sessions of its parts, which it uses from the
        reactor thread only (a session in use by a thread must not be
        given); a session that saw the last commit costs nothing.
        """
        if self.polls:
            # RelStorage: nothing accumulates; a connection polls when
            # its next transaction begins.
            return
        for session in list(self._kept_current):
            session.catch_up()

    def close(self):
        self.db.close()


class Session:
    """One connection to the database, with its own transactions."""

    #: The open LongTransaction of this session, if any.
    long_transaction_open = None
    #: True while a transaction of this session runs its block.
    _in_transaction = False

    def __init__(self, database):
        self.database = database
        self.tm = transaction.TransactionManager()
        self.connection = database.db.open(transaction_manager=self.tm)
        # The last committed transaction when read() last began one.
        self._fresh_at = None

    def _check_free(self):
        # Beginning a transaction would silently abort the long one, or
        # the unit of work under way (parts sharing the session must not
        # start one from inside another's).
        if self.long_transaction_open is not None:
            raise RuntimeError('a long transaction is open on this session')
        if self._in_transaction:
            raise RuntimeError('a unit of work of this session is under '
                               'way: another cannot begin inside it')

    def _app(self):
        if self.database.read_only:
            app = app_module.get_app(self.connection)
            if app is None:
                raise LookupError('the database holds no linksync data')
            return app
        return app_module.ensure_app(self.connection)

    @contextlib.contextmanager
    def transaction(self):
        """One transaction, yielding the application (no retry).

        Commits at the end of the block, aborts when it raises.
        """
        self._check_free()
        self.tm.begin()
        self._fresh_at = None
        old_site = zope.component.hooks.getSite()
        self._in_transaction = True
        try:
            app = self._app()
            zope.component.hooks.setSite(app)
            yield app
            if self.database.read_only:
                self.tm.abort()
            else:
                # ZODB keeps no public count of the objects a connection
                # changed; a transaction that changed none writes no
                # record and is not counted.
                changed = bool(self.connection._registered_objects)
                self.tm.commit()
                if changed:
                    self.database.transactions['committed'] += 1
        except TransientError:
            self.tm.abort()
            self._fresh_at = None
            self.database.transactions['conflict'] += 1
            raise
        except BaseException:
            self.tm.abort()
            self._fresh_at = None
            raise
        finally:
            self._in_transaction = False
            zope.component.hooks.setSite(old_site)

    def run(self, func, *args, attempts=5, **kw):
        """Run func(app, *args, **kw) in a transaction; return its result.

        A conflict (or another transient error) aborts and runs the function
        again, up to `attempts` times in all.
        """
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction() as app:
                    return func(app, *args, **kw)
            except TransientError as e:
                if attempt == attempts:
                    raise
                log.debug('retrying %s after %s (attempt %d)',
                          getattr(func, '__name__', func), e, attempt)

    def read(self, func, *args, **kw):
        """Run func(app, ...) on a fresh view of the data; never commits.

        The transaction is left open after a successful read (the next unit
        of work begins a new one, which aborts it), and a read begins a new
        transaction only when something was committed since the last one:
        the view it has is then still the newest (on a storage that
        only polls for other processes' commits, RelStorage, every read
        begins one: that is when it polls). Reads are the most
        frequent work of the API, and beginning and ending transactions
        cost as much as the rest of a call.
        """
        self._check_free()
        last = self.database.db.lastTransaction()
        if last != self._fresh_at or self.database.polls:
            self.tm.begin()
            self._fresh_at = last
        old_site = zope.component.hooks.getSite()
        try:
            app = app_module.get_app(self.connection)
            if app is None:
                raise LookupError('the database holds no linksync data')
            zope.component.hooks.setSite(app)
            return func(app, *args, **kw)
        except BaseException:
            self.tm.abort()
            self._fresh_at = None
            raise
        finally:
            zope.component.hooks.setSite(old_site)

    def catch_up(self):
        """Begin a transaction when something was committed since this
        session's last one began, unless a long transaction is open
        (see Database.catch_up)."""
        if self.long_transaction_open is not None or self._in_transaction:
            return
        last = self.database.db.lastTransaction()
        if last != self._fresh_at:
            self.tm.begin()
            self._fresh_at = last

    def savepoint(self):
        """A savepoint of the current transaction (frees memory)."""
        return self.tm.savepoint(optimistic=True)

    def close(self):
        if self.long_transaction_open is not None:
            self.long_transaction_open.abort()
        self.tm.abort()
        self.connection.close()

    def long_transaction(self):
        """Begin a LongTransaction on this session."""
        return LongTransaction(self)


class LongTransaction:
    """One transaction cut into units of work, for jobs too big for one.

    The transaction stays open while the reactor does other work between
    the units (other sessions keep committing meanwhile; this one sees the
    data as it was when it began). :meth:`unit` runs one unit with the
    application as the current site; :meth:`savepoint` writes the changes
    made so far to a temporary file and drops every unchanged object from
    memory, so that a transaction changing hundreds of thousands of objects
    holds about one unit's worth at a time (:meth:`free` only drops the
    unchanged objects). :meth:`commit` (which raises a ConflictError when
    another writer's changes cannot be merged) or :meth:`abort` ends it;
    nothing is committed before. Committing a big transaction takes
    seconds: :meth:`commit_in_thread` does it without stopping the reactor.

    The session does no other work while it is open.
    """

    committing = False

    def __init__(self, session):
        session._check_free()
        self.session = session
        session.tm.begin()
        try:
            self.app = session._app()
        except BaseException:
            session.tm.abort()
            raise
        session.long_transaction_open = self

    @contextlib.contextmanager
    def _site(self):
        old_site = zope.component.hooks.getSite()
        zope.component.hooks.setSite(self.app)
        try:
            yield self.app
        finally:
            zope.component.hooks.setSite(old_site)

    def _check_usable(self):
        if self.committing:
            raise RuntimeError('the long transaction is being committed')

    def unit(self, func, *args, **kw):
        """Run func(app, *args, **kw) inside the transaction."""
        self._check_usable()
        if self.session.long_transaction_open is not self:
            raise RuntimeError('the long transaction has ended')
        with self._site() as app:
            return func(app, *args, **kw)

    def savepoint(self):
        """Keep the changes so far aside and free the memory they used."""
        self.session.tm.savepoint(optimistic=True)
        self.session.connection.cacheMinimize()

    def free(self):
        """Drop the objects that were not changed from memory."""
        self.session.connection.cacheMinimize()

    def commit_in_thread(self, reactor):
        """Commit in a thread of the reactor's pool; returns a Deferred.

        The reactor keeps running meanwhile (other writers wait for the
        storage's commit lock, readers do not). Until the Deferred fires,
        nothing may use the session, and the Deferred must not be
        cancelled: the commit cannot be stopped half-way.
        """
        from twisted.internet import threads
        self._check_usable()
        self.committing = True

        def done(result):
            self.committing = False
            return result
        d = threads.deferToThreadPool(reactor, reactor.getThreadPool(),
                                      self._commit)
        return d.addBoth(done)

    def commit(self):
        """Commit in this thread."""
        self._check_usable()
        self._commit()

    def _commit(self):
        try:
            with self._site():
                self.session.tm.commit()
        except TransientError:
            self._abort()
            self.session.database.transactions['conflict'] += 1
            raise
        except BaseException:
            self._abort()
            raise
        self.session.database.transactions['committed'] += 1
        self.session.long_transaction_open = None

    def abort(self):
        self._check_usable()
        self._abort()

    def _abort(self):
        if self.session.long_transaction_open is self:
            self.session.long_transaction_open = None
            self.session.tm.abort()
