"""Password hashing: salted scrypt, compared in constant time.

The stored form is ``scrypt$N$r$p$SALT$HASH`` (salt and hash base64), so the
cost parameters can be raised later without breaking stored hashes.
"""

import base64
import collections
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


_dummy = []


def dummy_hash():
    """A stored form no password matches (made once per process): checked
    in place of an unknown client's hash, so that a wrong id costs the same
    time as a wrong password and timing tells no id."""
    if not _dummy:
        _dummy.append(hash_password(secrets.token_urlsafe(32)))
    return _dummy[0]


class Throttle:
    """Failed attempts counted per key (a client id, a source address).

    After `free` failures in a row, a key is blocked for `base` seconds,
    doubling with each further failure up to `max_delay`; while a key is
    blocked its attempts are refused at once, without hashing. A success
    clears the key. At most `size` keys are kept (the oldest go first), so
    memory stays bounded whatever the attacker sends.

    >>> from twisted.internet.task import Clock
    >>> clock = Clock()
    >>> t = Throttle(clock, free=2, base=1.0)
    >>> t.failed('fred'); t.failed('fred'); t.blocked('fred')
    False
    >>> t.failed('fred'); t.blocked('fred'), t.blocked('barney')
    (True, False)
    >>> clock.advance(1.0); t.blocked('fred')
    False
    >>> t.failed('fred'); clock.advance(1.0); t.blocked('fred')
    True
    >>> t.succeeded('fred'); t.blocked('fred')
    False
    """

    def __init__(self, clock, free=10, base=1.0, max_delay=300.0,
                 size=100_000):
        self.clock = clock
        self.free = free
        self.base = base
        self.max_delay = max_delay
        self.size = size
        #: key -> [failures, blocked until]
        self._keys = collections.OrderedDict()
        #: Attempts refused while blocked (for tests and metrics).
        self.refused = 0

    def blocked(self, *keys):
        now = self.clock.seconds()
        for key in keys:
            entry = self._keys.get(key)
            if entry is not None and entry[1] > now:
                return True
        return False

    def refuse(self):
        self.refused += 1

    def failed(self, *keys):
        now = self.clock.seconds()
        for key in keys:
            entry = self._keys.pop(key, None) or [0, 0.0]
            entry[0] += 1
            beyond = entry[0] - self.free
            if beyond > 0:
                entry[1] = now + min(self.max_delay,
                                     self.base * 2 ** min(beyond - 1, 30))
            self._keys[key] = entry
            while len(self._keys) > self.size:
                self._keys.popitem(last=False)

    def succeeded(self, key):
        self._keys.pop(key, None)
