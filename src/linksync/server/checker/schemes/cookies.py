"""The cookies of one check, kept across its redirects as a browser keeps
them.

Cookie-consent walls and session set-ups answer a first visit with
``Set-Cookie`` and a redirect (often to the same URL), and the page itself
once the cookie comes back. A checker without cookies sees a redirect
loop where a browser sees the page. So each check of an http(s) URL has
a :class:`CookieJar` of its own (never shared between checks, never
stored): what the answers set (RFC 6265: Domain, Path, Max-Age, Expires,
Secure) goes back with the following requests of that check. A URL seen
again is a loop only if the jar did not change since (:meth:`state`).

Bounded: at most :data:`MAX_COOKIES` cookies of at most :data:`MAX_SIZE`
bytes each; more are ignored.

>>> jar = CookieJar()
>>> jar.update('http', 'www.a.test', '/x/y', [b'id=1; Path=/',
...            b'c=2; Domain=a.test; Path=/', b'evil=1; Domain=b.test',
...            b'deep=3'], now=0)
True
>>> jar.header('http', 'shop.a.test', '/')
b'c=2'
>>> jar.header('http', 'www.a.test', '/x/z')    # the longest path first
b'deep=3; id=1; c=2'
>>> jar.header('https', 'www.a.test', '/')
b'id=1; c=2'
>>> jar.update('http', 'www.a.test', '/', [b'id=1; Path=/'], now=0)
False
"""

import email.utils

#: Cookies kept per check, at most, and the size of one.
MAX_COOKIES = 50
MAX_SIZE = 4096


def _default_path(path):
    """RFC 6265, 5.1.4: the directory of the request path."""
    if not path.startswith('/') or path.count('/') == 1:
        return '/'
    return path[:path.rindex('/')]


def _path_matches(path, cookie_path):
    return path == cookie_path or (
        path.startswith(cookie_path) and (
            cookie_path.endswith('/') or path[len(cookie_path)] == '/'))


class CookieJar:
    """Cookies by (domain, path, name): (value, host only, secure)."""

    def __init__(self):
        self._cookies = {}

    def state(self):
        """What the jar holds, comparable between two moments."""
        return frozenset(self._cookies.items())

    def update(self, scheme, host, path, values, now):
        """Take the ``Set-Cookie`` `values` (bytes) of an answer to a
        request of `scheme`://`host``path`; True when the jar changed."""
        before = self.state()
        for raw in values:
            if len(raw) > MAX_SIZE:
                continue
            self._take(raw.decode('latin-1'), scheme, host.lower(), path,
                       now)
        return self.state() != before

    def _take(self, text, scheme, host, path, now):
        pair, *attributes = text.split(';')
        name, sep, value = pair.partition('=')
        name, value = name.strip(), value.strip()
        if not sep or not name:
            return
        domain, host_only = host, True
        cookie_path = _default_path(path.split('?', 1)[0])
        secure = False
        expired = False
        for attribute in attributes:
            key, _, arg = attribute.partition('=')
            key, arg = key.strip().lower(), arg.strip()
            if key == 'domain' and arg:
                arg = arg.lstrip('.').lower()
                if host != arg and not host.endswith('.' + arg):
                    return          # a cookie for another site: ignored
                domain, host_only = arg, False
            elif key == 'path' and arg.startswith('/'):
                cookie_path = arg
            elif key == 'secure':
                secure = True
            elif key == 'max-age':
                try:
                    expired = int(arg) <= 0
                except ValueError:
                    pass
            elif key == 'expires':
                try:
                    when = email.utils.parsedate_to_datetime(arg)
                except (TypeError, ValueError, IndexError):
                    continue
                expired = when is not None and when.timestamp() <= now
        if secure and scheme != 'https':
            return
        key = (domain, cookie_path, name)
        if expired:
            self._cookies.pop(key, None)
        elif key in self._cookies or len(self._cookies) < MAX_COOKIES:
            self._cookies[key] = (value, host_only, secure)

    def header(self, scheme, host, path):
        """The ``Cookie`` header value for a request (bytes), or None."""
        if not self._cookies:
            return None
        host = host.lower()
        path = path.split('?', 1)[0] or '/'
        found = []
        for (domain, cookie_path, name), (value, host_only, secure) in \
                self._cookies.items():
            if secure and scheme != 'https':
                continue
            if not (host == domain or (not host_only and
                                       host.endswith('.' + domain))):
                continue
            if not _path_matches(path, cookie_path):
                continue
            found.append((-len(cookie_path), name, value))
        if not found:
            return None
        found.sort(key=lambda c: c[0])
        return '; '.join('%s=%s' % (n, v) for _, n, v in found).encode(
            'latin-1', 'replace')
