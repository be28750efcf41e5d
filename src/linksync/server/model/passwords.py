"""Password hashing: salted scrypt, compared in constant time.

The stored form is ``scrypt$N$r$p$SALT$HASH`` (salt and hash base64), so the
cost parameters can be raised later without breaking stored hashes.
"""

import base64
import hashlib
import hmac
import secrets

N, R, P = 2 ** 14, 8, 1
#: Generated passwords are longer than this (PROTOCOL.md asks for >= 30).
GENERATED_LENGTH = 40


def hash_password(password):
    """The stored form of `password` (str)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode('utf-8'), salt=salt, n=N, r=R,
                            p=P, dklen=32)
    return 'scrypt$%d$%d$%d$%s$%s' % (
        N, R, P, base64.b64encode(salt).decode('ascii'),
        base64.b64encode(digest).decode('ascii'))


def verify_password(password, stored):
    """True when `password` matches the stored form (constant time)."""
    try:
        algo, n, r, p, salt, digest = stored.split('$')
        if algo != 'scrypt':
            return False
        salt = base64.b64decode(salt)
        digest = base64.b64decode(digest)
        candidate = hashlib.scrypt(
            password.encode('utf-8'), salt=salt, n=int(n), r=int(r),
            p=int(p), dklen=len(digest))
    except (ValueError, AttributeError):
        return False
    return hmac.compare_digest(candidate, digest)


def generate_password():
    """A new random password of GENERATED_LENGTH URL-safe characters."""
    return secrets.token_urlsafe(GENERATED_LENGTH)[:GENERATED_LENGTH]
