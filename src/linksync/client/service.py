"""ClientService: a client's link database, served and kept in sync.

What ``linksync client serve`` runs (a Twisted service):

1. takes the lock of the database file (:mod:`linksync.client.lockfile`)
   and opens it (a :class:`~linksync.client.linkdb.LinkDatabase`);
2. connects it to the server with a
   :class:`~linksync.client.deferred.TwistedLMSClient` (a Synchronizer
   retrying failed writes on the clock);
3. listens on its endpoint with the :class:`~linksync.client.resource.
   CallbackResource` (``POST /`` and ``/RPC2``) and a status page
   (``GET /``), and writes its URL into the lock file;
4. synchronises once (:meth:`LinkDatabase.sync`: registers what the
   server lacks, takes the states it knows, and asks for a forced
   synchronisation, which unregisters there what was removed here while
   the client was not running); tried again, later and later, until it
   works when the server cannot be reached.

``ready`` is a Deferred firing once the first synchronisation was tried.

The other ``linksync client`` commands reach a running service through
more XML-RPC methods on the same resource: ``client.add``,
``client.remove``, ``client.sync`` and ``client.pending``
(:class:`LocalMethods`). They authenticate with the client's own id and
password, or with the service's local key: a random key the service makes
when it starts and writes into the database's lock file (mode 0600), so
that whoever may read the database's lock may use the running kit
without knowing the client's password.
"""

import html
import secrets

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource

from linksync import urlnorm
from linksync.xmlrpc import site as web
from linksync.client.blocking import DEFAULT_RETRIES, LMSClient
from linksync.client.deferred import TwistedLMSClient
from linksync.client.linkdb import LinkDatabase
from linksync.client.lockfile import DatabaseLock
from linksync.client.methods import (Call, check_answer, protocol_method,
                                      url_list)
from linksync.client.resource import CallbackResource
from linksync.stores.errors import StoreError
from linksync.xmlrpc.faults import INVALID_PARAMS, UNAVAILABLE, Fault
from linksync.xmlrpc.resource import (DEFAULT_MAX_REQUEST_BYTES, MethodTable,
                                      Param)

log = Logger()

_CREDENTIALS = [Param('client_id', str), Param('password', str)]

local = MethodTable()


class LocalMethods:
    """What the command line asks a running ClientService."""

    def __init__(self, service):
        self.service = service

    @property
    def db(self):
        return self.service.db

    def _authenticate(self, call, client_id, password):
        key = self.service.local_key
        if key and client_id in ('', self.service.client_id) and \
                secrets.compare_digest(password.encode('utf-8'),
                                       key.encode('utf-8')):
            call.client_id = self.service.client_id
            return
        self.service.resource.callbacks.authenticate(call, client_id,
                                                     password)

    def _outcome(self, urls):
        def report(_):
            return {'urls': urls, 'pending': len(self.db.synchronizer.pending),
                    'error': (self.db.synchronizer.last_error or '')
                    if self.db.synchronizer.pending else ''}
        return self.db.synchronizer.settled().addCallback(report)

    @local.method('client.add', _CREDENTIALS + [Param('urls', list)], dict)
    def add(self, call, client_id, password, urls):
        """Add links; {urls: those that were new, pending: writes to the
        server not made yet, error: why}."""
        self._authenticate(call, client_id, password)
        try:
            return self._outcome(self.db.add(*urls))
        except (urlnorm.InvalidURL, TypeError) as e:
            raise Fault(INVALID_PARAMS, str(e)) from None

    @local.method('client.remove', _CREDENTIALS + [Param('urls', list)],
                  dict)
    def remove(self, call, client_id, password, urls):
        """Remove links; like client.add."""
        self._authenticate(call, client_id, password)
        return self._outcome(self.db.remove(*urls))

    @local.method('client.sync', _CREDENTIALS, str)
    def sync(self, call, client_id, password):
        """Synchronise with the server now (forced); what it did."""
        self._authenticate(call, client_id, password)
        d = defer.maybeDeferred(self.db.sync)

        def failed(failure):
            raise Fault(UNAVAILABLE, failure.getErrorMessage())
        return d.addCallbacks(repr, failed)

    @local.method('client.pending', _CREDENTIALS, list)
    def pending(self, call, client_id, password):
        """The writes to the server not made yet (one line each)."""
        self._authenticate(call, client_id, password)
        return [repr(op) for op in self.db.synchronizer.pending]


class ClientService(web.ListeningService):
    """Serves the link database at `db_path` to the server at
    `server_url` for `client_id` (see the module docstring)."""

    name = 'client'
    announcement = 'linksync client: callbacks on http://{host}:{port}/RPC2'

    def __init__(self, db_path, server_url, client_id, password,
                 listen='tcp:8081:interface=127.0.0.1', reactor=None,
                 clock=None, timeout=60, retries=DEFAULT_RETRIES,
                 on_states=None,
                 max_request_bytes=DEFAULT_MAX_REQUEST_BYTES,
                 retry_delay=1.0, max_retry_delay=3600.0):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        self.db_path = db_path
        self.server_url = server_url
        self.client_id = client_id
        self.password = password
        self.listen_on = listen
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.timeout = timeout
        self.retries = retries
        self.on_states = on_states
        self.max_request_bytes = max_request_bytes
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.db = None
        self.client = None
        self.resource = None
        self.url = None
        #: The key of the command line (see the module docstring).
        self.local_key = None
        self.ready = defer.Deferred()
        #: Why the last synchronisation failed ('' after a success).
        self.sync_error = None
        self._lock = DatabaseLock(db_path)
        self._retry = None
        self._syncing = None
        self._failures = 0

    def startService(self):
        if not self._lock.acquire():
            holder = self._lock.read()
            raise StoreError('%s is served already (process %s, %s)' % (
                self.db_path, holder.get('pid', '?'),
                holder.get('url', '?')))
        try:
            self.db = LinkDatabase(self.db_path, clock=self.clock,
                                   on_states=self.on_states)
        except BaseException:
            self._lock.release()
            raise
        super().startService()
        self.client = TwistedLMSClient(
            self.server_url, self.client_id, self.password, self.reactor,
            self.clock, timeout=self.timeout, retries=self.retries)
        self.db.connect(self.client, clock=self.clock)
        self.db.synchronizer.retry_delay = self.retry_delay
        self.db.synchronizer.max_retry_delay = self.max_retry_delay
        self.resource = CallbackResource(self.db, self.client_id,
                                         self.password,
                                         self.max_request_bytes)
        self.resource.add_methods(local.bind(LocalMethods(self)))
        site = web.LinkSyncSite(web.Root(self.resource, _StatusPage(self)),
                                self.max_request_bytes)
        self.listen(self.reactor, self.listen_on, site)

        def serving(port):
            self.sync().addCallback(lambda _: self.ready.callback(self))
            return port
        self.listening.addCallbacks(serving, self.ready.errback)

    def _listening(self, port):
        # The URL first: `listening` fires in super()._listening.
        address = port.getHost()
        host = address.host if address.host not in ('0.0.0.0', '::', '') \
            else '127.0.0.1'
        self.url = 'http://%s:%d/RPC2' % (host, address.port)
        self.local_key = secrets.token_urlsafe(32)
        self._lock.write(url=self.url, id=self.client_id, key=self.local_key)
        log.info('linksync client {client}: {db} ({n} links) served on '
                 '{url} for {server}', client=self.client_id,
                 db=self.db_path, n=len(self.db), url=self.url,
                 server=self.server_url)
        super()._listening(port)

    def sync(self):
        """Synchronise with the server now; tried again later and later
        while it fails. A Deferred firing after this attempt."""
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        d = defer.maybeDeferred(self.db.sync)
        d.addCallbacks(self._synced, self._sync_failed)
        self._syncing = d
        return d

    def idle(self):
        """A Deferred firing when no synchronisation and no write to the
        server is under way."""
        d = defer.succeed(None)
        if self._syncing is not None and not self._syncing.called:
            waiting = defer.Deferred()
            self._syncing.addBoth(lambda result: (waiting.callback(None),
                                                  result)[1])
            d = waiting
        return d.addCallback(lambda _: self.db.synchronizer.settled())

    def _synced(self, report):
        self.sync_error = ''
        self._failures = 0
        log.info('linksync client {client}: synchronised with {server}: '
                 '{report}', client=self.client_id, server=self.server_url,
                 report=report)

    def _sync_failed(self, failure):
        self.sync_error = failure.getErrorMessage()
        self._failures += 1
        delay = min(self.retry_delay * 2 ** (self._failures - 1),
                    self.max_retry_delay)
        log.error('linksync client {client}: cannot synchronise with '
                  '{server}: {error}; trying again in {delay} s',
                  client=self.client_id, server=self.server_url,
                  error=failure.getErrorMessage(), delay=delay)
        if self.running:
            self._retry = self.clock.callLater(delay, self.sync)

    @defer.inlineCallbacks
    def stopService(self):
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        yield super().stopService()     # no callback comes in any more
        self.port = None
        if self.client is not None:
            yield self.client.close()
        if self.db is not None:
            self.db.close()
        self._lock.release()


class _StatusPage(resource.Resource):
    """GET /: what this client holds."""

    isLeaf = True

    def __init__(self, service):
        super().__init__()
        self.service = service

    def render_GET(self, request):
        service = self.service
        request.setHeader(b'content-type', b'text/html; charset=utf-8')
        return ('<!DOCTYPE html><html><head><meta charset="utf-8">'
                '<title>linksync client</title></head><body>'
                '<h1>linksync client %s</h1><p>%d links in %s, kept in sync '
                'with %s; %d change(s) not sent yet.</p></body></html>' % (
                    html.escape(service.client_id), len(service.db),
                    html.escape(service.db_path),
                    html.escape(service.server_url),
                    len(service.db.synchronizer.pending))).encode('utf-8')


class LocalClient(LMSClient):
    """The command line's client of a running ClientService (its URL is
    in the database's lock file)."""

    @protocol_method
    def add(self, urls):
        """client.add: {urls, pending, error}."""
        answer = yield Call('client.add', *self._auth(),
                            url_list(urls, 'client.add'))
        return check_answer(answer, dict, 'client.add')

    @protocol_method
    def remove(self, urls):
        """client.remove: {urls, pending, error}."""
        answer = yield Call('client.remove', *self._auth(),
                            url_list(urls, 'client.remove'))
        return check_answer(answer, dict, 'client.remove')

    @protocol_method
    def sync(self):
        """client.sync: what the synchronisation did."""
        answer = yield Call('client.sync', *self._auth(), retry='refused')
        return check_answer(answer, str, 'client.sync')

    @protocol_method
    def pending(self):
        """client.pending: the writes to the server not made yet."""
        answer = yield Call('client.pending', *self._auth())
        return check_answer(answer, list, 'client.pending')
