"""Who may see which page of the web status UI.

The global pages (overview, URL search, clients, agents) need the server's
management secret, given either way:

* HTTP Basic credentials, any user name, the secret as the password (for
  scripts: ``curl -u :SECRET http://HOST/``);
* the session cookie that the login form (``POST /login`` with the secret)
  sets: ``linksync_session=EXPIRES.SIGNATURE``, valid for
  :data:`SESSION_LIFETIME`, ``HttpOnly``, ``SameSite=Strict``, ``Secure``
  over HTTPS. ``POST /logout`` removes it from the browser.

A client's alerts page (``/alerts/CLIENT_ID``) opens with the management
secret too, and also with

* the client's own credentials as HTTP Basic (user name: the client id);
* ``?token=EXPIRES.SIGNATURE``: the link ``getInfoFrameURL`` hands out.
  Clients embed the page in an iframe, where a password prompt is out of
  place and browsers withhold third-party cookies; the token opens that one
  client's page and nothing else, until it expires
  (``--alerts-link-lifetime``, one day by default).

Signatures are HMAC-SHA256 with keys derived from the management secret,
one per purpose (:func:`derive_key`), so a cookie is no token and the
other way round, and changing the secret invalidates every cookie and
link. Both are stateless: nothing is stored on the server; a copied cookie
or link stays valid until it expires.

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
import hashlib
import hmac
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
                 session_lifetime=SESSION_LIFETIME):
        self.secret = secret or ''
        self.clock = clock
        self.alerts_lifetime = alerts_lifetime
        self.session_lifetime = session_lifetime
        self._sessions = Signer(derive_key(self.secret, 'session'))
        self._alerts = Signer(derive_key(self.secret, 'alerts'))
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

    def has_session(self, request):
        cookie = request.getCookie(SESSION_COOKIE)
        if not cookie:
            return False
        try:
            token = cookie.decode('ascii')
        except UnicodeDecodeError:
            return False
        return self._sessions.verify('manager', token, self.clock.seconds())

    def login(self, request, secret):
        if not self.is_secret_from(request, secret):
            return False
        expires = self.clock.seconds() + self.session_lifetime
        request.addCookie(
            SESSION_COOKIE, self._sessions.sign('manager', expires).encode(),
            path=b'/', max_age=b'%d' % self.session_lifetime, httpOnly=True,
            secure=request.isSecure() or None, sameSite='strict')
        return True

    def logout(self, request):
        request.addCookie(SESSION_COOKIE, b'', path=b'/', max_age=b'0',
                          httpOnly=True, secure=request.isSecure() or None,
                          sameSite='strict')

    # -- alerts links ---------------------------------------------------------

    def alerts_token(self, client_id, now):
        return self._alerts.sign(client_id, now + self.alerts_lifetime)

    def check_alerts_token(self, client_id, token, now):
        return self._alerts.verify(client_id, token, now)


def alerts_path(client_id):
    """The path of a client's alerts page on the server's web UI."""
    return '/alerts/' + urllib.parse.quote(client_id, safe='')
