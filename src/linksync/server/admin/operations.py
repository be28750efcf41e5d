"""Administrative operations: one definition, two ways to run them.

An operation is a function ``func(context, *args)`` declared with
:func:`operation`. It runs

* inside the server, as the XML-RPC method ``admin.NAME(secret, *args)``
  (protected by the management secret), or
* in the command-line process, on a database the command opens itself.

``linksync`` subcommands call :func:`run`, which picks the way: a command
cannot open a FileStorage that a running server holds (it is locked), so it
then asks that server, reading the secret from the same data directory;
with ZEO or RelStorage, or with no server running, it opens the database
itself. Either way the operation runs in one unit of work (committed
completely or not at all) and its result comes back the same.

The ``context`` an operation receives has ``app`` (the application root,
current site set), ``session`` (the linksync.server.database.Session), ``clock``
(has ``seconds()``), ``reactor``, ``server`` (the LinkSyncService when
running inside the server, else None), ``settings`` (the command's settings
when running in the command-line process, else None) and ``secret`` (the
server's management secret). An operation may return a Deferred (for work
that talks to the network); it then runs outside the unit of work and
manages its own sessions.
"""

import os
import time
import xmlrpc.client

import zope.component
from twisted.internet import defer, threads
from zope.interface import implementer

from linksync.server import database, storage
from linksync.server.interfaces import IHistory, IOperation
from linksync.server.model import purge
from linksync.server.model.history import KEEP_DAYS
from linksync.server.secret import load_secret
from linksync.xmlrpc.faults import INVALID_PARAMS, Fault
from linksync.xmlrpc.resource import Method, Param


class OperationError(Exception):
    """An operation cannot be carried out; the message says why.

    Over XML-RPC it becomes a Fault with the same text (code 400).
    """


@implementer(IOperation)
class Operation:
    def __init__(self, name, func, params, returns, transactional):
        self.name = name
        self.func = func
        self.params = params
        self.returns = returns
        self.transactional = transactional
        self.help = (func.__doc__ or '').strip()


class Context:
    """What an operation works with (see the module docstring)."""

    def __init__(self, session, clock, reactor, server=None, settings=None):
        self.session = session
        self.clock = clock
        self.reactor = reactor
        self.server = server
        #: The command's settings when running in the command's process.
        self.settings = settings
        self.app = None

    @property
    def secret(self):
        """The management secret of the server whose data this is."""
        if self.server is not None:
            return self.server.secret
        if self.settings is None:
            raise OperationError('no management secret is known here')
        return load_secret(self.settings, announce=lambda text: None)


def operation(name, params=(), returns=bool, transactional=True):
    """Mark a function as an administrative operation (a decorator).

    `params` are linksync.xmlrpc.resource.Param declarations of the
    arguments after the context. With `transactional` (the default) the
    function runs inside one unit of work and must not return a Deferred.

    The mark registers nothing: linksync.server.configure registers the
    operations of the modules it names (:func:`marked_in`).
    """
    def decorate(func):
        func.linksync_operation = Operation(
            name, func, list(params), returns, transactional)
        return func
    return decorate


def marked_in(module):
    """The operations marked in `module`, in the order they are defined."""
    found = [getattr(value, 'linksync_operation', None)
             for value in vars(module).values()]
    return [op for op in found if isinstance(op, Operation)]


def registered():
    """The registered operations, by name (sorted)."""
    return sorted(zope.component.getUtilitiesFor(IOperation))


def lookup(name):
    """The registered operation `name`; LookupError when none is."""
    op = zope.component.queryUtility(IOperation, name)
    if op is None:
        raise LookupError('no admin operation %r is registered' % (name,))
    return op


def execute(op, context, args):
    """Run an operation in `context`; result or Deferred."""
    if not op.transactional:
        return defer.maybeDeferred(op.func, context, *args)

    def work(app):
        context.app = app
        return op.func(context, *args)
    try:
        return context.session.run(work)
    finally:
        context.app = None


def install(api, table, server=None):
    """Publish every operation as ``admin.NAME`` in an API method table."""
    for _, op in registered():
        table.add(Method('admin.' + op.name, _remote(api, op, server),
                         [Param('secret', str)] + op.params, op.returns,
                         op.help))


def _remote(api, op, server):
    def method(call, secret, *args):
        api.check_secret(secret, call.peer)
        call.client_id = 'admin'
        context = Context(api.session, api.clock,
                          getattr(server, 'reactor', None), server)
        d = defer.maybeDeferred(execute, op, context, args)
        d.addErrback(_as_fault)
        return d
    return method


def _as_fault(failure):
    failure.trap(OperationError)
    raise Fault(400, str(failure.value))


# -- the command-line side ------------------------------------------------------

def server_url(settings):
    """The XML-RPC URL of the server a command's settings describe."""
    url = getattr(settings, 'server', None)
    if url:
        return url
    listen = getattr(settings, 'listen', None) or 'tcp:8080'
    parts = listen.split(':')
    port = next((p for p in parts[1:] if p.isdigit()), '8080')
    host = '127.0.0.1'
    for part in parts[1:]:
        if part.startswith('interface='):
            host = part.split('=', 1)[1] or host
    if host in ('0.0.0.0', '::'):
        host = '127.0.0.1'
    if ':' in host:
        host = '[%s]' % host
    return 'http://%s:%s/RPC2' % (host, port)


def _filestorage_in_use(settings):
    """True when a running process holds the FileStorage of `settings`."""
    if settings.zeo or settings.storage:
        return False
    lock = os.path.join(settings.data or 'var',
                        storage.FILESTORAGE_NAME + '.lock')
    if not os.path.exists(lock):
        return False
    import zc.lockfile
    try:
        zc.lockfile.LockFile(lock).close()
    except zc.lockfile.LockError:
        return True
    return False


def run(settings, name, *args, reactor=None):
    """Run operation `name` for a command; returns its result.

    Raises OperationError with a one-line message on failure.
    """
    op = lookup(name)
    if _filestorage_in_use(settings):
        return _run_remote(settings, op, args)
    return _run_local(settings, op, args, reactor)


def _run_remote(settings, op, args):
    url = server_url(settings)
    secret = load_secret(settings, announce=lambda text: None)
    proxy = xmlrpc.client.ServerProxy(url, allow_none=False)
    try:
        return getattr(proxy, 'admin.' + op.name)(secret, *args)
    except Fault as f:
        if f.faultCode in (INVALID_PARAMS, 400):
            raise OperationError(f.faultString) from None
        raise OperationError('the server at %s answered: %s' % (
            url, f.faultString)) from None
    except xmlrpc.client.ProtocolError as e:
        if e.errcode == 401:
            raise OperationError(
                'the server at %s refused the secret in %s/secret' % (
                    url, settings.data)) from None
        raise OperationError('the server at %s answered HTTP %d' % (
            url, e.errcode)) from None
    except OSError as e:
        raise OperationError(
            'the database in %s is in use, and the server at %s cannot be '
            'reached (%s); give its address with --server' % (
                settings.data, url, e.strerror or e)) from None


def _run_local(settings, op, args, reactor):
    db = database.open_database(settings)
    session = db.session()
    try:
        if op.transactional:
            context = Context(session, _WallClock(), reactor,
                              settings=settings)
            return execute(op, context, args)
        return _react(op, session, args, settings)
    finally:
        session.close()
        db.close()


def _react(op, session, args, settings=None):
    """Run a non-transactional operation under a reactor of its own."""
    from twisted.internet import reactor
    outcome = {}

    def go():
        context = Context(session, reactor, reactor, settings=settings)
        d = execute(op, context, args)
        d.addCallbacks(lambda r: outcome.setdefault('result', r),
                       lambda f: outcome.setdefault('failure', f))
        d.addBoth(lambda _: reactor.stop())
    reactor.callWhenRunning(go)
    reactor.run(installSignalHandlers=True)
    if 'failure' in outcome:
        outcome['failure'].raiseException()
    return outcome.get('result')


class _WallClock:
    def seconds(self):
        return time.time()


# -- operations of the core -------------------------------------------------------

@operation('stats', returns=dict)
def stats(context):
    """Counts of what the database holds: {'urls': n, 'clients': n}."""
    return {'urls': len(context.app.urls), 'clients': len(context.app.clients)}


#: At most this many removed URLs are named in purge's answer.
PURGE_LISTED = 100


@operation('purge', [Param('grace_seconds', float),
                     Param('dry_run', bool, optional=True)], returns=dict)
def purge_orphans(context, grace_seconds, dry_run=False):
    """Remove the URLs no client has referenced for `grace_seconds`.

    Returns {'purged': n, 'urls': the first ones, oldest orphan first}.
    With `dry_run`, only says what would go. (The checker removes orphans
    older than --orphan-grace by itself, as it goes.)
    """
    if not (0 <= grace_seconds < float('inf')):
        raise OperationError('the grace period is a number of seconds >= 0, '
                             'not %r' % (grace_seconds,))
    before = context.clock.seconds() - grace_seconds
    orphans = list(purge.expired_orphans(before))
    if dry_run:
        urls = [url for _, url in orphans
                if not getattr(context.app.urls.get(url), 'clients', ())]
    else:
        urls = purge.remove_orphans(orphans)
    return {'purged': len(urls), 'urls': urls[:PURGE_LISTED]}


#: The longest history admin.pack keeps (about 100 years).
MAX_PACK_DAYS = 36_500


@operation('pack', [Param('days', float),
                    Param('history_days', float, optional=True)],
           returns=str, transactional=False)
def pack(context, days, history_days=None):
    """Forget the URLs' history older than `history_days` days (90 by
    default), then pack the database, keeping the revisions of the last
    `days` days.

    The history is pruned a batch of URLs per transaction; in a running
    server the pack itself runs in a thread: ZODB packs while transactions
    go on.
    """
    # Also refuses NaN, and cut-offs before the epoch (1e308 days).
    if not 0 <= days <= MAX_PACK_DAYS:
        raise OperationError('days must be a number from 0 to %d'
                             % MAX_PACK_DAYS)
    if history_days is None:
        history_days = KEEP_DAYS
    if not 0 <= history_days <= MAX_PACK_DAYS:
        raise OperationError('history_days must be a number from 0 to %d'
                             % MAX_PACK_DAYS)
    prune_before = context.clock.seconds() - history_days * 86400

    def prune(app, after):
        return zope.component.getUtility(IHistory).prune(prune_before, after)
    after = context.session.run(prune, None)
    while after is not None:
        after = context.session.run(prune, after)
    db = context.session.database.db
    before = db.getSize()
    cutoff = time.time() - days * 86400

    def work():
        db.pack(t=cutoff)
        return '%d bytes before, %d after' % (before, db.getSize())
    if context.server is not None:
        return threads.deferToThreadPool(
            context.reactor, context.reactor.getThreadPool(), work)
    return work()
