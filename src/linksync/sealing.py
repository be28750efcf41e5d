"""Sealed callback passwords.

The server calls a client back with the client's own id and password
(PROTOCOL.md), so it must be able to recover the password, while the login
check keeps only a salted hash (linksync.passwords). The password is kept
*sealed*: encrypted and authenticated (Fernet: AES-128-CBC and HMAC-SHA256)
with a key derived from the server's management secret, which does not live
in the database. A stolen database alone does not give the passwords away.

>>> token = seal('management secret', 'pa55word')
>>> token != 'pa55word'
True
>>> unseal('management secret', token)
'pa55word'
>>> unseal('another secret', token)
Traceback (most recent call last):
...
linksync.sealing.SealError: the sealed password does not open with this server's secret (was the secret changed?)
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class SealError(Exception):
    """A sealed value cannot be opened; the message says why."""


def _fernet(secret):
    if not isinstance(secret, str) or not secret:
        raise SealError('no management secret to seal or unseal with')
    digest = hashlib.sha256(b'linksync sealed callback password\0' +
                            secret.encode('utf-8')).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(secret, text):
    """`text` sealed with a key derived from `secret` (ASCII str)."""
    return _fernet(secret).encrypt(text.encode('utf-8')).decode('ascii')


def unseal(secret, token):
    """The text `token` was sealed from; SealError when it cannot be."""
    if not isinstance(token, str) or not token:
        raise SealError('no sealed password stored')
    try:
        return _fernet(secret).decrypt(token.encode('ascii')).decode('utf-8')
    except (InvalidToken, UnicodeError, ValueError):
        raise SealError("the sealed password does not open with this "
                        "server's secret (was the secret changed?)") from None
