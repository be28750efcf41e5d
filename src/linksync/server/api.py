"""The XML-RPC API of the server: the methods of PROTOCOL.md.

Every client method authenticates ``client_id, password`` first (HTTP 401
when unknown or wrong) and runs as one unit of work of the API's database
session: it commits completely or not at all, and is retried on a conflict
with another writer.

Verifying a password means a deliberately slow scrypt hash; a client calls
many times a day with the same password, so the API remembers, in memory
only, a keyed digest of the passwords it has verified: BLAKE2b in its keyed
(MAC) mode under a random key made at start and never stored, so neither a password nor an
unkeyed hash of one (which a dictionary attack reverses fast) is ever kept.
The memory is bounded, per process, and a remembered password counts only
as long as the client's stored hash is the one it was verified against:
changing the password, or removing the client (and registering the id
again), forgets it.

A password that must be hashed is hashed in a small pool of threads, never
in the reactor thread, so a flood of wrong passwords cannot stall the other
clients; an unknown client id is checked against a dummy hash, so that it
takes as long as a wrong password. Failures are throttled per client id and
per source address (linksync.server.model.passwords.Throttle): while
throttled, a call is answered 401 at once, without hashing. A password
remembered as verified is never throttled, so a client keeps working while
somebody guesses at its id.
"""

import collections
import functools
import hashlib
import hmac
import itertools
import re
import secrets
import unicodedata
import urllib.parse

import zope.component
from twisted.internet import defer, task, threads
from twisted.python.threadpool import ThreadPool
from twisted.logger import Logger

from linksync import PROTOCOL_VERSION, states, urlnorm
from linksync.states import iso8601
from linksync.server.model import passwords, registration
from linksync.server.interfaces import (IClientProvider, INotifications,
                                        ISynchronization, IURLProvider)
from linksync.server.mail import NoMailer
from linksync.server.model.client import Client
from linksync.server.web.access import Access, alerts_path
from linksync.xmlrpc.faults import CONFLICT, INVALID_PARAMS, UNAVAILABLE, Fault
from linksync.xmlrpc.resource import MethodTable, Param, Unauthorized

log = Logger()

methods = MethodTable()

#: Verified credentials remembered per process.
AUTH_CACHE_SIZE = 10_000
#: Threads hashing passwords at once (each scrypt takes ~64 MiB).
HASH_THREADS = 2
#: URLs per unit of work of a call given a long list of them
#: (registerURLs, unregisterURLs, getURLStates): a list no longer is done
#: in one unit, as before; a longer one in units of this many (distinct,
#: normalised) URLs, the reactor serving the other clients between them.
#: A 100,000-URL registerURLs blocked every other client for 6 to 7.6 s
#: when it was one unit. In sorted slices, its longest reactor stall (a
#: 5 ms heartbeat in the server's reactor, real clock, API only) was
#: 93-105 ms with 2,000 URLs a slice (3.3 s in all), 67 ms with 1,000
#: (3.5 s) and 50 ms with 500 (3.8 s), on 2026-12-03: 1,000 keeps it under
#: 100 ms at 6% more time.
SLICE_URLS = 1000

_CLIENT_ID = re.compile(r'[^\x00-\x1f\x7f]{1,200}')
_EMAIL = re.compile(r'[^@\s]+@[^@\s]+')


def _look_alike(client_id):
    """What makes `client_id` pass for another id ('' when nothing): an
    invisible or format character (zero-width space, bidi marks), a space
    other than U+0020, or a compatibility form that NFKC folds (fullwidth
    letters, ligatures)."""
    for char in client_id:
        category = unicodedata.category(char)
        if category.startswith('C') or (category == 'Zs' and char != ' ') \
                or category in ('Zl', 'Zp'):
            return 'the invisible or format character U+%04X' % ord(char)
    if unicodedata.normalize('NFKC', client_id) != client_id:
        return 'characters that Unicode NFKC folds into others (give %r)' \
            % unicodedata.normalize('NFKC', client_id)
    return ''


def _client_method(name, params=(), returns=bool, write=False,
                   sliced=None):
    """Declare a method taking ``client_id, password`` first.

    The decorated function is called as func(api, call, app, client, *args)
    inside a unit of work, after the credentials were verified.

    With `sliced` (the name of a LinkSyncAPI method), a call whose last
    argument, a list of URLs, is longer than the API's ``slice_urls`` is
    given to that method instead, as sliced(call, client_id, password,
    *args): it does the work in several units (see LinkSyncAPI._in_slices).
    """
    declared = [Param('client_id', str), Param('password', str)]
    declared += list(params)

    def decorate(func):
        @functools.wraps(func)
        def method(self, call, client_id, password, *args):
            def work(app):
                client = self.verified_client(client_id, password)
                call.client_id = client_id
                return func(self, call, app, client, *args)

            def run(_=None):
                if sliced is not None and len(args[-1]) > self.slice_urls:
                    return getattr(self, sliced)(call, client_id, password,
                                                 *args)
                if write:
                    return self.session.run(work)
                return self.session.read(work)
            verifying = self.verify(client_id, password, call.peer)
            if verifying is None:
                return run()
            return verifying.addCallback(run)
        methods.method(name, declared, returns)(method)
        return method
    return decorate


class LinkSyncAPI:
    """The server methods, bound to a database session and a clock."""

    methods = methods

    def __init__(self, session, secret, clock, mailer=None, public_url=None,
                 web_access=None, registration_cc=(), reactor=None,
                 verify_password=passwords.verify_password):
        self.session = session
        #: The operators' addresses told of each registration.
        self.registration_cc = tuple(registration_cc or ())
        self.secret = secret
        self.clock = clock
        self.mailer = mailer or NoMailer()
        self.public_url = public_url
        #: Signs the links to alerts pages (linksync.server.web.access).
        self.web_access = web_access if web_access is not None else \
            Access(secret, clock)
        self._verified = collections.OrderedDict()
        # The key of the remembered digests: this process's only.
        self._verified_key = secrets.token_bytes(32)
        self.reactor = reactor
        #: The slow check of a password against a stored hash.
        self.verify_password = verify_password
        # One count of failures for the pages and the API.
        self.throttle = self.web_access.throttle
        self._pool = None
        #: Called when a registration made URLs due (the server's checker
        #: scheduler looks for them at once when it runs in this process).
        self.on_due = None
        #: The most URLs one unit of work of a call handles (SLICE_URLS).
        self.slice_urls = SLICE_URLS

    def close(self):
        """Stop the hashing threads (waits for a running hash)."""
        if self._pool is not None:
            self._pool.stop()
            self._pool = None

    def _hash_in_thread(self, password, stored):
        """A Deferred firing with verify_password(password, stored), run in
        the hashing pool (in this thread when there is no reactor)."""
        if self.reactor is None:
            return defer.maybeDeferred(self.verify_password, password, stored)
        if self._pool is None:
            self._pool = ThreadPool(0, HASH_THREADS, 'linksync-passwords')
            self._pool.start()
        return threads.deferToThreadPool(self.reactor, self._pool,
                                         self.verify_password, password,
                                         stored)

    # -- credentials -------------------------------------------------------------

    def _remembered(self, client_id, password, password_hash):
        cached = self._verified.get(client_id)
        if cached is not None and cached[0] == password_hash and \
                hmac.compare_digest(cached[1], self._digest(password)):
            self._verified.move_to_end(client_id)
            return True
        return False

    def verify(self, client_id, password, peer):
        """None when these credentials were verified already; otherwise a
        Deferred firing once the password was hashed (in a thread) and
        found right, failing with Unauthorized when it is wrong. Raises
        Unauthorized at once while the id or the peer is throttled."""
        if not isinstance(client_id, str) or not isinstance(password, str):
            raise Unauthorized()
        stored = self.session.read(self._stored_hash, client_id)
        if stored is not None and self._remembered(client_id, password,
                                                   stored):
            return None
        if self.throttle.blocked(client_id, peer):
            self.throttle.refuse()
            raise Unauthorized()

        def checked(right):
            if not right or stored is None:
                self.throttle.failed(client_id, peer)
                raise Unauthorized()
            self.throttle.succeeded(client_id)
            self._remember(client_id, stored, password)
        return self._hash_in_thread(
            password, stored if stored is not None else
            passwords.dummy_hash()).addCallback(checked)

    @staticmethod
    def _stored_hash(app, client_id):
        client = zope.component.getUtility(IClientProvider).get(client_id)
        return None if client is None else client.password_hash

    def verified_client(self, client_id, password):
        """The client with these credentials, verified already by verify();
        Unauthorized otherwise (the password changed meanwhile)."""
        client = zope.component.getUtility(IClientProvider).get(client_id)
        if client is None or not isinstance(password, str) or \
                not self._remembered(client_id, password,
                                     client.password_hash):
            raise Unauthorized()
        return client

    def _digest(self, password):
        """The keyed digest remembered for `password`."""
        return hashlib.blake2b(password.encode('utf-8', 'surrogatepass'),
                               key=self._verified_key,
                               digest_size=32).digest()

    def _remember(self, client_id, password_hash, password):
        """Remember that `password` matches `password_hash`."""
        self._verified[client_id] = (password_hash, self._digest(password))
        self._verified.move_to_end(client_id)
        if len(self._verified) > AUTH_CACHE_SIZE:
            self._verified.popitem(last=False)

    def check_secret(self, secret, peer='-'):
        """Unauthorized unless `secret` is the management secret; wrong
        guesses are throttled per source address like wrong passwords."""
        key = ('secret', peer)
        if self.throttle.blocked(key):
            self.throttle.refuse()
            raise Unauthorized()
        if not isinstance(secret, str) or not self.secret or \
                not hmac.compare_digest(secret.encode('utf-8'),
                                        self.secret.encode('utf-8')):
            self.throttle.failed(key)
            raise Unauthorized()

    # -- registration of clients ---------------------------------------------

    @methods.method('registerClient', [
        Param('secret', str), Param('client_id', str),
        Param('callback_url', str), Param('contact_name', str),
        Param('contact_email', str), Param('password', str, optional=True)],
        bool)
    def registerClient(self, call, secret, client_id, callback_url,
                       contact_name, contact_email, password=None):
        """Register a new client (needs the server's management secret).

        Without a password the server generates one and mails it to the
        contact. Returns True.
        """
        self.check_secret(secret, call.peer)
        callback_url = self._check_client_fields(
            client_id, callback_url, contact_email, password)
        call.client_id = client_id
        if password is not None:
            self._add_client(client_id, callback_url, contact_name,
                             contact_email, password)
            return self._tell_operators(
                client_id, callback_url, contact_name, contact_email,
                generated=False).addCallback(lambda _: True)
        if not self.mailer.configured:
            raise Fault(UNAVAILABLE, 'this server cannot mail a generated '
                        'password (no mail delivery configured): give the '
                        'password as the sixth argument')
        password = passwords.generate_password()
        self._add_client(client_id, callback_url, contact_name,
                         contact_email, password)
        d = self.mailer.send(contact_email, 'Your linksync password',
                             self._password_mail(client_id, contact_name,
                                                 password))

        def undo(failure):
            log.error('mailing the password of {client} to {to} failed: '
                      '{error}; the registration is undone',
                      client=client_id, to=contact_email,
                      error=failure.getErrorMessage())
            self.session.run(self._remove_client, client_id)
            raise Fault(UNAVAILABLE, 'the password could not be mailed to %s'
                        ' (%s); nothing was registered' % (
                            contact_email, failure.getErrorMessage()))

        def mailed(_):
            return self._tell_operators(
                client_id, callback_url, contact_name, contact_email,
                generated=True).addCallback(lambda _: True)
        d.addCallbacks(mailed, undo)
        return d

    def _tell_operators(self, client_id, callback_url, contact_name,
                        contact_email, generated):
        """Mail the operators (--registration-cc) of a registration: the
        mail the contact got, the password left out. A Deferred firing
        when the mail was handed over; a failure is logged, and the
        registration stands."""
        if not self.registration_cc or not self.mailer.configured:
            return defer.succeed(None)
        body = (
            'The client %r is now registered with the linksync server%s.\n\n'
            '    contact:  %s <%s>\n    callback: %s\n    password: %s\n' % (
                client_id,
                ' at ' + self.public_url if self.public_url else '',
                contact_name, contact_email, callback_url,
                'generated and mailed to the contact (not copied here)'
                if generated else 'given by the client (not copied here)'))
        sent = []
        for address in self.registration_cc:
            d = self.mailer.send(address, 'linksync: client %r registered'
                                 % client_id, body)
            d.addErrback(lambda failure, address=address: log.error(
                'telling {to} of the registration of {client} failed: '
                '{error}', to=address, client=client_id,
                error=failure.getErrorMessage()))
            sent.append(d)
        return defer.gatherResults(sent)

    def _check_client_fields(self, client_id, callback_url, contact_email,
                             password):
        if not _CLIENT_ID.fullmatch(client_id) or \
                client_id != client_id.strip():
            raise Fault(INVALID_PARAMS, 'registerClient: the client id must '
                        'be 1 to 200 printable characters without leading '
                        'or trailing space')
        look_alike = _look_alike(client_id)
        if look_alike:
            raise Fault(INVALID_PARAMS, 'registerClient: the client id must '
                        'not contain %s' % look_alike)
        try:
            normalized = urlnorm.normalize(callback_url)
        except urlnorm.InvalidURL as e:
            raise Fault(INVALID_PARAMS, 'registerClient: bad callback URL: '
                        '%s' % e) from None
        parts = urllib.parse.urlsplit(normalized)
        if parts.scheme not in ('http', 'https') or not parts.hostname:
            raise Fault(INVALID_PARAMS, 'registerClient: the callback URL '
                        'must be an http or https URL with a host')
        if not _EMAIL.fullmatch(contact_email):
            raise Fault(INVALID_PARAMS, 'registerClient: bad contact e-mail '
                        'address %r' % contact_email)
        if password is not None and not password:
            raise Fault(INVALID_PARAMS, 'registerClient: empty password')
        return callback_url.strip()

    def _add_client(self, client_id, callback_url, contact_name,
                    contact_email, password):
        # Hash outside the transaction: it is slow and needs no data.
        client = Client(client_id, callback_url, contact_name,
                        contact_email, password)
        client.created = self.clock.seconds()
        # The server calls the callback with the client's own password
        # (PROTOCOL.md); it keeps it sealed, never in clear.
        client.set_callback_password(password, self.secret)

        def add(app):
            clients = zope.component.getUtility(IClientProvider)
            if client_id in clients:
                raise Fault(CONFLICT, 'a client %r is registered already'
                            % client_id)
            clients.add(client)
        self.session.run(add)
        # The password was just hashed here: it needs no verifying (a
        # deliberately slow hash) at the client's first call.
        self._remember(client_id, client.password_hash, password)

    def _remove_client(self, app, client_id):
        clients = zope.component.getUtility(IClientProvider)
        if client_id in clients:
            clients.remove(client_id, self.clock.seconds())

    def _password_mail(self, client_id, contact_name, password):
        return (
            'Hello %s,\n\n'
            'the client %r is now registered with the linksync server%s.\n'
            'Its password is:\n\n    %s\n\n'
            'Configure it in the client application; it is not stored in '
            'clear on the server\nand cannot be mailed again.\n' % (
                contact_name or 'there', client_id,
                ' at ' + self.public_url if self.public_url else '',
                password))

    # -- client methods ---------------------------------------------------------

    @_client_method('checkConnection', returns=int)
    def checkConnection(self, call, app, client):
        """Check the credentials; returns the protocol version (2)."""
        return PROTOCOL_VERSION

    @_client_method('registerURLs', [Param('urls', list)], list, write=True,
                    sliced='_register_in_slices')
    def registerURLs(self, call, app, client, urls):
        """Register URLs for the client.

        Returns [url, state, reason] for each given URL whose state is
        known already; new URLs are registered and left out. Invalid URLs
        are skipped.
        """
        rows = self._register(app, client, urlnorm.normalize_many(urls),
                              self.clock.seconds())
        self._due()
        return rows

    def _due(self):
        """URLs were registered in this unit of work: tell on_due."""
        if self.on_due is not None:
            self.on_due()

    @staticmethod
    def _register(app, client, normalized, now):
        """Register `normalized` ({URL: spellings}, as from
        urlnorm.normalize_many) for `client`; the rows of registerURLs's
        answer for them, in order."""
        rows = LinkSyncAPI._register_rows(app, client, normalized, now)
        return [row for norm in normalized for row in rows.get(norm, ())]

    @staticmethod
    def _register_rows(app, client, normalized, now):
        """Register `normalized` for `client`; {URL: its rows of the
        answer} for the URLs whose state is known."""
        objects = registration.register_normalized(client, normalized, now,
                                                   add_spellings=True)
        return {norm: [[spelling, url.state, url.reason]
                       for spelling in spellings]
                for (norm, spellings), url in zip(normalized.items(), objects)
                if url.state is not None}

    def _register_in_slices(self, call, client_id, password, urls):
        now = self.clock.seconds()

        def unit(app, client, normalized):
            rows = self._register_rows(app, client, normalized, now)
            self._due()
            return rows
        return self._in_slices(call, client_id, password, urls, unit=unit,
                               write=True, stored=False)

    @_client_method('unregisterURLs', [Param('urls', list)], bool, write=True,
                    sliced='_unregister_in_slices')
    def unregisterURLs(self, call, app, client, urls):
        """Unregister URLs of the client (unknown ones are ignored)."""
        registration.unregister(client, urls, self.clock.seconds())
        return True

    def _unregister_in_slices(self, call, client_id, password, urls):
        now = self.clock.seconds()

        def unit(app, client, normalized):
            # Every spelling given of a URL is in the same unit, so the
            # URL is unregistered, or only spellings forgotten, as when
            # the whole list is one unit.
            registration.unregister(client, list(
                itertools.chain.from_iterable(normalized.values())), now)
            return {}
        d = self._in_slices(call, client_id, password, urls, write=True,
                            unit=unit)
        return d.addCallback(lambda _: True)

    @defer.inlineCallbacks
    def _in_slices(self, call, client_id, password, urls, unit, write,
                   stored=True):
        """Do a call given a long list of URLs in slices; a Deferred firing
        with the rows of its answer.

        The URLs are normalised (urlnorm.normalize_many, finding the
        keys of earlier versions with `stored`) a slice at a time; then the normalised URLs, sorted, are cut into slices of
        ``slice_urls``, and unit(app, client, slice) runs on each in a
        unit of work of its own (a write commits), returning {URL: its
        rows of the answer}. The reactor serves other calls between the
        slices. Every spelling of a URL lands in the slice of that URL,
        and every slice fires its events together (events.notify_all), so
        the outcome is that of the whole list done in one unit; the
        answer is made of the rows in the order the URLs were given, as
        it is then.

        The slices are sorted because the server's indexes are sorted by
        URL: a slice of neighbouring URLs changes a few of their buckets,
        where a slice of URLs of all over the index changes nearly all of
        them, and every commit writes each changed bucket whole
        (registering 100,000 URLs of 1,000 hosts: 17 s in slices as
        given, against 4 s in one unit).

        The call is answered only once every slice committed. Should the
        server stop between slices, the first slices stay done and the
        client gets no answer: it sends the call again, and registering
        or unregistering URLs twice is harmless (both are idempotent).
        """
        size = self.slice_urls
        normalized = {}
        for start in range(0, len(urls), size):
            for norm, spellings in urlnorm.normalize_many(
                    urls[start:start + size], stored=stored).items():
                known = normalized.get(norm)
                if known is None:
                    normalized[norm] = spellings
                else:
                    known.extend(s for s in spellings if s not in known)
            yield self.pause()
        keys = sorted(normalized)
        yield self.pause()

        def work(app, chunk):
            client = self.verified_client(client_id, password)
            call.client_id = client_id
            return unit(app, client, chunk)
        run = self.session.run if write else self.session.read
        rows = {}
        start = 0
        while True:
            chunk = {norm: normalized[norm]
                     for norm in keys[start:start + size]}
            rows.update(run(work, chunk))
            start += size
            if start >= len(keys):
                break
            yield self.pause()
        return [row for norm in normalized for row in rows.get(norm, ())]

    def pause(self):
        """A Deferred firing once the reactor did the work waiting (at
        once, without a reactor): what a call done in slices waits for
        between them."""
        if self.reactor is None:
            return defer.succeed(None)
        return task.deferLater(self.reactor, 0, lambda: None)

    @_client_method('registerLink', [Param('url', str)], list, write=True)
    def registerLink(self, call, app, client, url):
        """Register one URL: [url, state, reason] when known, else []."""
        result = self.registerURLs.__wrapped__(self, call, app, client, [url])
        return result[0] if result else []

    @_client_method('getStatus', [Param('url', str)], list)
    def getStatus(self, call, app, client, url):
        """The [url, state, reason] of one of the client's URLs.

        The state is 'unknown' while the URL was not checked, and for a URL
        the client did not register.
        """
        try:
            norm = urlnorm.normalize(url)
        except urlnorm.NoHost as e:
            # An earlier version may have stored it.
            norm = urlnorm.normalize_previous(url)
            if not client.has_url(norm):
                return [url, states.UNKNOWN, 'invalid URL: %s' % e]
        except urlnorm.InvalidURL as e:
            return [url, states.UNKNOWN, 'invalid URL: %s' % e]
        obj = client.get_url(norm)
        if obj is None:
            return [url, states.UNKNOWN, 'not registered by this client']
        if obj.state is None:
            return [url, states.UNKNOWN, 'not checked yet']
        return [url, obj.state, obj.reason]

    @_client_method('getURLStates', [Param('urls', list)], list,
                    sliced='_states_in_slices')
    def getURLStates(self, call, app, client, urls):
        """[url, state, reason, last check (ISO 8601 or '')] for each of
        the given URLs that the client registered."""
        return self._states(app, client,
                            urlnorm.normalize_many(urls, stored=True))

    @staticmethod
    def _states(app, client, normalized):
        rows = LinkSyncAPI._state_rows(app, client, normalized)
        return [row for norm in normalized for row in rows.get(norm, ())]

    @staticmethod
    def _state_rows(app, client, normalized):
        """{URL: its rows of getURLStates's answer} for the URLs of
        `normalized` the client registered."""
        rows = {}
        for norm, spellings in normalized.items():
            obj = client.get_url(norm)
            if obj is None:
                continue
            row = [states.wire_state(obj.state), obj.reason,
                   iso8601(obj.last_check)]
            rows[norm] = [[spelling] + row for spelling in spellings]
        return rows

    def _states_in_slices(self, call, client_id, password, urls):
        return self._in_slices(call, client_id, password, urls, write=False,
                               unit=self._state_rows)

    @_client_method('getClientNotifications', returns=bool)
    def getClientNotifications(self, call, app, client):
        """True when the client receives state-change notifications."""
        return bool(INotifications(client).enabled)

    @_client_method('setClientNotifications', [Param('enabled', bool)], bool,
                    write=True)
    def setClientNotifications(self, call, app, client, enabled):
        """Switch the client's notifications on or off; returns True."""
        notifications = INotifications(client)
        if enabled and not notifications.enabled:
            notifications.failed = 0
        if notifications.enabled != enabled:
            notifications.enabled = enabled
        return True

    @_client_method('forceSynchronization', write=True)
    def forceSynchronization(self, call, app, client):
        """Ask for a synchronisation of the client at the syncer's next
        tick; returns True."""
        sync = ISynchronization(client)
        if not sync.force:
            sync.force = True
        return True

    @_client_method('getInfoFrameURL', returns=str)
    def getInfoFrameURL(self, call, app, client):
        """The absolute URL of the client's alerts page on the server.

        It carries a signed token opening that page, and only it, until
        ``--alerts-link-lifetime`` has passed (linksync.server.web.access): the
        page is meant for an iframe, where no password can be asked.
        """
        token = self.web_access.alerts_token(client.id, self.clock.seconds())
        return '%s%s?token=%s' % (self.base_url(call.request),
                                  alerts_path(client.id), token)

    def base_url(self, request):
        """The server's public base URL (no trailing slash).

        Without ``--public-url`` it is the address the request arrived
        on, never the Host header: a client names that header itself and
        could make the server hand out links to any site.
        """
        if self.public_url:
            return self.public_url.rstrip('/')
        address = request.getHost() if request is not None else None
        host = getattr(address, 'host', None)
        if host is None:
            host = 'localhost'
        else:
            if ':' in host:
                host = '[%s]' % host
            host = '%s:%d' % (host, address.port)
        scheme = 'https' if request is not None and request.isSecure() \
            else 'http'
        return '%s://%s' % (scheme, host)

