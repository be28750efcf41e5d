"""The credentials the server presents when it calls a client back.

PROTOCOL.md has the server call a client's callback (``xmlrpc_getAllLinks``,
``updateManyStates``) with the client's own id and password, so that the
client can tell the server from anybody else. The server keeps only a
salted hash of the password a client logs in with (linksync.server.model.passwords), and
a hash cannot be sent back. So every client also has a *callback
credential*: a password the server can present, kept apart from the login
hash. By default it is the login password itself (what the protocol and
existing clients expect), captured when the client registers; it can be set
to something else with ``linksync credential CLIENT``.

The database never holds it in clear: it is sealed (Fernet: AES-128-CBC and
HMAC-SHA256, from the ``cryptography`` package that Twisted's TLS support
already brings) under a key derived from the server's management secret
(``--secret``, ``$LINKSYNC_SECRET`` or ``DIR/secret``; see
linksync.server.service.load_secret). Every process of one deployment knows that
secret already. A copy of the FileStorage alone reveals no password; the
secret and the FileStorage together do, so keep the secret out of backups
of the data (give it with ``$LINKSYNC_SECRET``) where that matters.

Changing the management secret makes the stored credentials unreadable: a
callback then fails with a message saying so, until the credential is set
again with ``linksync credential``.

>>> token = seal('fred-password', 'server secret')
>>> 'fred-password' in token
False
>>> unseal(token, 'server secret')
'fred-password'
>>> unseal(token, 'another secret')
Traceback (most recent call last):
...
linksync.server.model.credentials.CredentialError: the stored callback credential cannot be read with this server's secret (was the secret changed?)
"""

import base64
import functools
import hashlib

from cryptography.fernet import Fernet, InvalidToken

#: Fixed salt of the key derivation: the secret is what must stay secret.
_SALT = b'linksync callback credentials, version 1'


class CredentialError(Exception):
    """A callback credential is missing or cannot be read."""


@functools.lru_cache(maxsize=4)
def _fernet(secret):
    if not isinstance(secret, str) or not secret:
        raise CredentialError('the server has no management secret to seal '
                              'callback credentials with')
    # scrypt makes guessing a weak secret from a stolen database slow; the
    # result is cached, so it costs once per process.
    key = hashlib.scrypt(secret.encode('utf-8'), salt=_SALT, n=2 ** 14, r=8,
                         p=1, dklen=32)
    return Fernet(base64.urlsafe_b64encode(key))


def seal(password, secret):
    """The stored form of `password` (str), readable only with `secret`."""
    if not isinstance(password, str) or not password:
        raise CredentialError('a callback credential must be a non-empty '
                              'string')
    return _fernet(secret).encrypt(password.encode('utf-8')).decode('ascii')


def unseal(token, secret):
    """The password sealed in `token` with `secret`; CredentialError if not."""
    try:
        return _fernet(secret).decrypt(token.encode('ascii')).decode('utf-8')
    except (InvalidToken, UnicodeError, AttributeError):
        raise CredentialError(
            'the stored callback credential cannot be read with this '
            "server's secret (was the secret changed?)") from None
