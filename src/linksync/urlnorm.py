"""URL validation and normalisation: the one place that decides what a URL is.

Every URL that enters the server (XML-RPC, a client's link database, the
command line) goes through :func:`normalize`. Two spellings that normalise to
the same string are the same URL: it is stored and checked once.

The rules (RFC 3986, section 6):

* surrounding white space is ignored; inner white space, control characters
  and non-ASCII characters make the URL invalid (clients percent-encode);
* a scheme is required; scheme and host are lower-cased;
* the port is dropped when it is the scheme's default, and must be a number
  from 1 to 65535 otherwise;
* the fragment is dropped (it never reaches the server of the URL);
* an HTTP(S) URL with a host and an empty path gets the path ``/``;
* dot segments (``/a/../b``) are removed from the path of a URL with a
  host, as browsers do before they send a request;
* a URL of a scheme that names a server (http, https, ftp, ...) needs a
  host: ``http:///x`` is invalid;
* percent escapes are upper-cased (``%2f`` becomes ``%2F``).

>>> normalize('HTTP://Example.COM:80/a/b?x=1#top')
'http://example.com/a/b?x=1'
>>> normalize('https://example.com')
'https://example.com/'
>>> normalize('ftp://User@FTP.example.com:21/pub/%7ejoe')
'ftp://User@ftp.example.com/pub/%7Ejoe'
>>> normalize('http://example.com/a/./b/../c')
'http://example.com/a/c'
>>> normalize('mailto:joe@example.com')
'mailto:joe@example.com'
>>> normalize('http://example.com/\u00e4')
Traceback (most recent call last):
...
linksync.urlnorm.InvalidURL: not ASCII (clients percent-encode URLs): 'http://example.com/\\xe4'
"""

import ipaddress
import re

#: Longer URLs are refused; no real link is that long, and it bounds memory.
MAX_URL_LENGTH = 8192

DEFAULT_PORTS = {
    'http': 80,
    'https': 443,
    'ftp': 21,
    'ws': 80,
    'wss': 443,
    'gopher': 70,
}

_SCHEME = re.compile(r'[A-Za-z][A-Za-z0-9+.\-]*')
# Printable ASCII without space: anything else inside a URL is invalid.
_VALID_CHARS = re.compile(r'[\x21-\x7e]*')
_REG_NAME = re.compile(r"[A-Za-z0-9\-._~%!$&'()*+,;=]*")
_PERCENT = re.compile(r'%[0-9a-f]{2}|%[0-9A-F][a-f]|%[a-f][0-9A-F]')


# An http(s) URL that is its own normal form: lower-case host name, no
# user, no port, a path, no fragment, only upper-case percent escapes.
# Most URLs clients send are like this; they skip the general rules.
_NORMAL = re.compile(r"https?://[a-z0-9\-._~!$&'()*+,;=]+"
                     r"(?::(?P<port>[1-9][0-9]{0,4}))?"
                     r"/(?:[\x21\x22\x24\x26-\x7e]|%[0-9A-F]{2})*")
_DEFAULT_PORT_TEXT = {'http': '80', 'https': '443'}


class InvalidURL(ValueError):
    """The text is not a URL the server can monitor."""


class NoHost(InvalidURL):
    """A URL of a scheme that names a server has no host."""


def normalize(url):
    """Return the normalised form of `url`; raise InvalidURL when invalid."""
    if not isinstance(url, str):
        # The type alone: the repr of a client's value can be huge or,
        # for an array nested thousands deep, fail with RecursionError.
        raise InvalidURL('not a string: %s' % type(url).__name__)
    if _is_normal(url):
        return url
    return _normalize(url)


def _is_normal(url):
    """True when `url` is known to be its own normal form at a glance."""
    if len(url) > MAX_URL_LENGTH or not url.isascii() or '/.' in url:
        return False
    found = _NORMAL.fullmatch(url)
    if found is None:
        return False
    port = found.group('port')
    return port is None or (int(port) < 65536 and port != _DEFAULT_PORT_TEXT[
        url[:5].rstrip(':')])


def normalize_previous(url):
    """The key an earlier version of these rules stored `url` under.

    Versions before this one kept dot segments and accepted a server URL
    without a host; databases they wrote hold such keys. When the database
    opens, linksync.server.model.generations moves every URL to its key of
    today, but the host-less ones have no such key: they stay, and a
    client finds them under this form.

    >>> normalize_previous('HTTP:///x/../y')
    'http:///x/../y'
    >>> normalize_previous('http://example.com/a/../b')
    'http://example.com/a/../b'
    """
    if not isinstance(url, str):
        raise InvalidURL('not a string: %s' % type(url).__name__)
    return _normalize(url, previous=True)


def _normalize(url, previous=False):
    """normalize() by the general rules (those of earlier versions with
    `previous`: dot segments kept, no host required)."""
    url = url.strip(' \t\r\n\f\v')
    if not url:
        raise InvalidURL('empty URL')
    if len(url) > MAX_URL_LENGTH:
        raise InvalidURL('longer than %d characters' % MAX_URL_LENGTH)
    if not url.isascii():
        raise InvalidURL(
            'not ASCII (clients percent-encode URLs): %r' % url)
    if not _VALID_CHARS.fullmatch(url):
        raise InvalidURL('white space or control character in %r' % url)
    scheme, sep, rest = url.partition(':')
    if not sep or not _SCHEME.fullmatch(scheme):
        raise InvalidURL('no scheme in %r' % url)
    scheme = scheme.lower()
    rest = rest.split('#', 1)[0]
    if rest.startswith('//'):
        authority, path = _split_authority(rest[2:])
        authority = _normalize_authority(scheme, authority, url,
                                         host_required=not previous)
        if not previous:
            path = _remove_dot_segments(path)
        if authority and scheme in ('http', 'https') and \
                not path.startswith('/'):
            path = '/' + path
        rest = '//' + authority + path
    if '%' in rest:
        rest = _PERCENT.sub(lambda m: m.group(0).upper(), rest)
    return scheme + ':' + rest


def _remove_dot_segments(path):
    """The path of 'path?query' without '.' and '..' segments (RFC 3986,
    section 5.2.4); the query is kept as it is.

    >>> _remove_dot_segments('/a/b/../../../c/./d/.?x=/../')
    '/c/d/?x=/../'
    """
    path, sep, query = path.partition('?')
    if '.' not in path:
        return path + sep + query
    out = []
    segments = path.split('/')
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == '..':
            if len(out) > 1:
                out.pop()
            if last:
                out.append('')
        elif segment == '.':
            if last:
                out.append('')
        else:
            out.append(segment)
    return '/'.join(out) + sep + query


_AUTHORITY_END = re.compile(r'[/?]')


def _split_authority(rest):
    """Split 'host:port/path?query' into ('host:port', '/path?query')."""
    found = _AUTHORITY_END.search(rest)
    if found is None:
        return rest, ''
    return rest[:found.start()], rest[found.start():]


def _normalize_authority(scheme, authority, url, host_required=True):
    userinfo, at, hostport = authority.rpartition('@')
    if hostport.startswith('['):
        end = hostport.find(']')
        if end < 0:
            raise InvalidURL('unterminated IPv6 address in %r' % url)
        host, port = hostport[:end + 1], hostport[end + 1:]
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise InvalidURL('bad IPv6 address in %r' % url) from None
        if port and not port.startswith(':'):
            raise InvalidURL('bad port in %r' % url)
        port = port[1:]
    else:
        host, _, port = hostport.partition(':')
        if not _REG_NAME.fullmatch(host):
            raise InvalidURL('bad host name in %r' % url)
    host = host.lower()
    if not host and scheme in DEFAULT_PORTS and host_required:
        raise NoHost('no host in %r' % url)
    if port:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidURL('bad port in %r' % url)
        port = int(port)
        if DEFAULT_PORTS.get(scheme) == port:
            port = ''
    result = host
    if port:
        result += ':%d' % port
    if at:
        result = userinfo + '@' + result
    return result


def from_text(text):
    """The URL a browser requests for `text`, normalised.

    Clients send URLs (ASCII, percent-encoded: :func:`normalize`), but a
    person types and a server's ``Location`` header sends text: a browser
    encodes a non-ASCII host name with IDNA (UTS 46) and percent-encodes
    the UTF-8 of any other non-ASCII, white space or control character
    before it sends a request. InvalidURL when even that is no URL.

    >>> from_text('http://Bücher.example/café?q=ü ü')
    'http://xn--bcher-kva.example/caf%C3%A9?q=%C3%BC%20%C3%BC'
    >>> from_text('http://example.com/a/../b')
    'http://example.com/b'
    """
    if not isinstance(text, str):
        raise InvalidURL('not a string: %s' % type(text).__name__)
    if _is_normal(text):
        return text
    text = text.strip(' \t\r\n\f\v')
    if _VALID_CHARS.fullmatch(text):
        return normalize(text)
    if len(text) > MAX_URL_LENGTH:
        raise InvalidURL('longer than %d characters' % MAX_URL_LENGTH)
    scheme, sep, rest = text.partition(':')
    if not sep or not _SCHEME.fullmatch(scheme):
        raise InvalidURL('no scheme in %r' % text[:200])
    if rest.startswith('//'):
        authority, path = _split_authority(rest[2:])
        userinfo, at, hostport = authority.rpartition('@')
        if hostport.startswith('['):
            host, port = hostport, ''
        else:
            host, colon, port = hostport.partition(':')
            port = colon + port
        if not host.isascii():
            host = _idna(host, text)
        authority = (_encode(userinfo) + '@' if at else '') + host + \
            _encode(port)
        rest = '//' + authority + _encode(path)
    else:
        rest = _encode(rest)
    return normalize(scheme + ':' + rest)


def _idna(host, text):
    import idna
    try:
        return idna.encode(host, uts46=True).decode('ascii')
    except (idna.IDNAError, UnicodeError) as e:
        raise InvalidURL('bad host name in %r: %s' % (text[:200], e)) \
            from None


def _encode(part):
    """`part` with every character that is not printable ASCII
    percent-encoded (as UTF-8)."""
    if _VALID_CHARS.fullmatch(part):
        return part
    return ''.join(c if '\x21' <= c <= '\x7e' else ''.join(
        '%%%02X' % b for b in c.encode('utf-8', 'surrogatepass'))
        for c in part)


def is_valid(url):
    """True when `url` is a URL the server accepts."""
    try:
        normalize(url)
    except InvalidURL:
        return False
    return True


def normalize_many(urls, stored=False):
    """Map every valid URL of `urls` to its normalised form.

    Returns a dict {normalised: [spellings in the order first seen]};
    duplicates collapse, invalid URLs are skipped silently (PROTOCOL.md).
    With `stored` (to look URLs up, never to add them), a URL without a
    host maps to the key an earlier version stored it under
    (:func:`normalize_previous`).
    """
    result = {}
    for url in urls:
        try:
            norm = normalize(url)
        except NoHost:
            if not stored:
                continue
            norm = normalize_previous(url)
        except InvalidURL:
            continue
        spellings = result.setdefault(norm, [])
        if url not in spellings:
            spellings.append(url)
    return result
