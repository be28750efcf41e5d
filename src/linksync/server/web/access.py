"""Who may see which page of the web status UI.

The global pages (overview, URL search, clients, agents) need the server's
management secret, given either way:

* HTTP Basic credentials, any user name, the secret as the password (for
  scripts: ``curl -u :SECRET http://HOST/``);
* the session cookie that the login form (``POST /login`` with the secret)
  sets: ``linksync_session=ID``, a random id of a session the server keeps
  (in memory: a restart logs everybody out) for :data:`SESSION_LIFETIME`,
  ``HttpOnly``, ``SameSite=Strict``, ``Secure`` over HTTPS or when the
  server's public URL is https. ``POST /logout`` ends the session on the
  server (a copy of the cookie no longer opens anything) and removes the
  cookie from the browser.

Forms that change something (log out, check a URL now) carry a token
(:class:`FormGuard`) bound to the login and the form's subject, and a POST
whose ``Origin`` names another site is refused; the login form is refused
from another site's ``Origin`` too.

A client's alerts page (``/alerts/CLIENT_ID``) opens with the management
secret too, and also with

* the client's own credentials as HTTP Basic (user name: the client id),
  checked as XML-RPC logins are (LinkSyncAPI.verify: a password not
  remembered is hashed in the API's hashing threads, never in the reactor
  thread, and wrong ones are throttled per id and address);
* ``?token=EXPIRES.SIGNATURE``: the link ``getInfoFrameURL`` hands out.
  Clients embed the page in an iframe, where a password prompt is out of
  place and browsers withhold third-party cookies; the token opens that one
  client's page and nothing else, until it expires
  (``--alerts-link-lifetime``, one day by default).

Signatures are HMAC-SHA256 with keys derived from the management secret,
one per purpose (:func:`derive_key`), so a form token is no alerts token
and the other way round, and changing the secret invalidates every link.
Alerts links are stateless: a copied link stays valid until it expires.

>>> from twisted.internet import task
>>> access = Access('s3cret', task.Clock(), alerts_lifetime=60)
>>> token = access.alerts_token('fred', now=1000)
>>> token.split('.')[0]
'1060'
>>> access.check_alerts_token('fred', token, now=1059)
True
>>> access.check_alerts_token('fred', token, now=1060)
False
>>> access.check_alerts_token('ann', token, now=1000)
False
>>> Access('other', task.Clock()).check_alerts_token('fred', token, 1000)
False
"""

import base64
import binascii
import collections
import hashlib
import hmac
import secrets
import urllib.parse
import re

from zope.interface import implementer

from linksync.server.interfaces import IWebAccess
from linksync.server.model import passwords

SESSION_COOKIE = b'linksync_session'
#: Seconds a login lasts.
SESSION_LIFETIME = 12 * 3600
#: Seconds an alerts link lasts unless configured.
ALERTS_LIFETIME = 24 * 3600
#: Sessions kept at most; past it, logging in ends the oldest one.
MAX_SESSIONS = 1000

_TOKEN = re.compile(r'([0-9]{1,12})\.([A-Za-z0-9_-]{43})')


def derive_key(secret, purpose):
    """The signing key of `purpose`, derived from the management secret."""
    return hmac.new(secret.encode('utf-8', 'surrogatepass'),
                    b'linksync web: ' + purpose.encode('ascii'),
                    hashlib.sha256).digest()


class Signer:
    """Signs and checks ``EXPIRES.SIGNATURE`` tokens about a subject."""

    def __init__(self, key):
        self.key = key

    def _signature(self, subject, expires):
        message = b'%d\0' % expires + subject.encode('utf-8',
                                                     'surrogatepass')
        digest = hmac.new(self.key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b'=').decode('ascii')

    def sign(self, subject, expires):
        expires = int(expires)
        return '%d.%s' % (expires, self._signature(subject, expires))

    def verify(self, subject, token, now):
        """True when `token` was signed for `subject` and is not expired."""
        if not isinstance(token, str):
            return False
        match = _TOKEN.fullmatch(token)
        if match is None:
            return False
        expires = int(match.group(1))
        expected = self._signature(subject, expires)
        return hmac.compare_digest(expected, match.group(2)) and now < expires


def basic_credentials(request):
    """(user, password) of the request's HTTP Basic credentials; None
    without an Authorization header; ('', None) when it is not readable
    Basic credentials."""
    header = request.getHeader(b'authorization')
    if header is None:
        return None
    scheme, _, encoded = header.strip().partition(b' ')
    if scheme.lower() != b'basic':
        return '', None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
        user, sep, password = decoded.decode('utf-8').partition(':')
    except (binascii.Error, UnicodeDecodeError):
        return '', None
    if not sep:
        return '', None
    return user, password


@implementer(IWebAccess)
class Access:
    """The access rules of one server: its secret and clock."""

    def __init__(self, secret, clock, alerts_lifetime=ALERTS_LIFETIME,
                 session_lifetime=SESSION_LIFETIME, secure_cookies=False):
        self.secret = secret or ''
        self.clock = clock
        self.alerts_lifetime = alerts_lifetime
        self.session_lifetime = session_lifetime
        #: Cookies are Secure even over plain HTTP (TLS ends in front of
        #: the server: its public URL is https).
        self.secure_cookies = secure_cookies
        #: The live sessions: id -> expiry time, oldest first.
        self._live = collections.OrderedDict()
        self._alerts = Signer(derive_key(self.secret, 'alerts'))
        self.logout_guard = FormGuard(self.secret, 'logout')
        #: Failed guesses of the secret (and, shared with the API, of
        #: client passwords): see linksync.server.model.passwords.Throttle.
        self.throttle = passwords.Throttle(clock)

    # -- the management secret ------------------------------------------------

    def is_secret(self, text):
        """True when `text` is the management secret (constant time)."""
        if not self.secret or not isinstance(text, str):
            return False
        return hmac.compare_digest(text.encode('utf-8', 'surrogatepass'),
                                   self.secret.encode('utf-8',
                                                      'surrogatepass'))

    def is_secret_from(self, request, text):
        """is_secret(text), throttled per source address: while the
        address is blocked for wrong guesses, False without comparing."""
        key = ('secret', getattr(request.getClientAddress(), 'host', '-'))
        if self.throttle.blocked(key):
            self.throttle.refuse()
            return False
        if not self.is_secret(text):
            self.throttle.failed(key)
            return False
        return True

    def is_manager(self, request):
        credentials = basic_credentials(request)
        if credentials is not None:
            return self.is_secret_from(request, credentials[1])
        return self.has_session(request)

    def _session_id(self, request):
        cookie = request.getCookie(SESSION_COOKIE)
        if not cookie or len(cookie) > 100:
            return None
        try:
            return cookie.decode('ascii')
        except UnicodeDecodeError:
            return None

    def has_session(self, request):
        sid = self._session_id(request)
        expires = self._live.get(sid) if sid else None
        if expires is None:
            return False
        if expires <= self.clock.seconds():
            del self._live[sid]
            return False
        return True

    def _cookie(self, request, value, max_age):
        request.addCookie(
            SESSION_COOKIE, value, path=b'/', max_age=b'%d' % max_age,
            httpOnly=True,
            secure=request.isSecure() or self.secure_cookies or None,
            sameSite='strict')

    def login(self, request, secret):
        if not self.is_secret_from(request, secret):
            return False
        now = self.clock.seconds()
        while self._live and (len(self._live) >= MAX_SESSIONS or
                              next(iter(self._live.values())) <= now):
            self._live.popitem(last=False)
        sid = secrets.token_urlsafe(32)
        self._live[sid] = now + self.session_lifetime
        self._cookie(request, sid.encode('ascii'), self.session_lifetime)
        return True

    def logout(self, request):
        """End the request's session (on the server too)."""
        sid = self._session_id(request)
        if sid:
            self._live.pop(sid, None)
        self._cookie(request, b'', 0)

    def sessions(self):
        """How many sessions are live."""
        now = self.clock.seconds()
        return sum(1 for expires in self._live.values() if expires > now)

    # -- alerts links ---------------------------------------------------------

    def alerts_token(self, client_id, now):
        return self._alerts.sign(client_id, now + self.alerts_lifetime)

    def check_alerts_token(self, client_id, token, now):
        return self._alerts.verify(client_id, token, now)


def same_origin(request, public_url=None):
    """False when the request's ``Origin`` names another site than this
    server (as the request reached it, or its public URL); True without
    one, or with ``null`` (pages sent with ``no-referrer`` make browsers
    send that even to their own site: the form's token decides then)."""
    origin = request.getHeader(b'origin')
    if origin is None or origin == b'null':
        return True
    host = request.getHeader(b'host') or b''
    scheme = b'https' if request.isSecure() else b'http'
    if origin == b'%s://%s' % (scheme, host):
        return True
    if public_url:
        parts = urllib.parse.urlsplit(public_url)
        return origin == ('%s://%s' % (parts.scheme, parts.netloc)).encode(
            'ascii', 'replace')
    return False


class FormGuard:
    """Guards a form that changes something against cross-site requests.

    The form carries :meth:`token`: an HMAC of what identifies the
    manager's login (the session cookie, or the Authorization header a
    browser repeats by itself) and of the form's `subject` (the URL to
    check, ...), with a key derived from the management secret for
    `purpose`; another site can read neither, so cannot forge it. An
    ``Origin`` naming another site is refused too (:func:`same_origin`).
    """

    def __init__(self, secret, purpose):
        self.key = derive_key(secret or '', 'form ' + purpose)

    @staticmethod
    def _login(request):
        return (request.getCookie(SESSION_COOKIE) or b'') + b'\0' + (
            request.getHeader(b'authorization') or b'')

    def token(self, request, subject=''):
        message = self._login(request) + b'\0' + subject.encode(
            'utf-8', 'surrogatepass')
        digest = hmac.new(self.key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b'=').decode('ascii')

    def allows(self, request, token, subject='', public_url=None):
        if not same_origin(request, public_url):
            return False
        return isinstance(token, str) and hmac.compare_digest(
            token.encode('ascii', 'replace'),
            self.token(request, subject).encode('ascii'))


def alerts_path(client_id):
    """The path of a client's alerts page on the server's web UI."""
    return '/alerts/' + urllib.parse.quote(client_id, safe='')
