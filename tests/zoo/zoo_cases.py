"""The zoo: server behaviours of the real web, each with the verdict a
person in a browser would reach, in the vocabulary of linksync.states.

One :class:`Case` per behaviour. ``kind`` says what the case needs:

- ``'http'``: a ScriptedHTTPServer running ``script`` on 127.0.0.1; the
  URL is ``url`` with ``{base}`` replaced by ``http://127.0.0.1:PORT``
  (``{port}`` by the port alone);
- ``'tls'``: Twisted's web server behind TLS with the certificate named in
  ``script`` (see test_zoo.TLS); ``{base}`` is ``https://127.0.0.1:PORT``;
- ``'dns'``: the URL names a host of the zoo's DNS zone (test_zoo.ZONE),
  served by a local twisted.names responder; zoo hosts resolve to
  127.0.0.1, where a ScriptedHTTPServer runs ``script`` on PORT;
- ``'ftp'``: Twisted's FTP server on the zoo's FTP tree; ``{base}`` is
  ``ftp://127.0.0.1:PORT``;
- ``'plain'``: no server (refused ports, mailto, unsupported schemes).

``xfail`` is the one place that lists where linksync's verdict is wrong
today: the defect, as text. The test is then ``xfail(strict=True)``, so
when a fix lands the case passes, the strict mark fails, and the entry
must be removed here.
"""

import dataclasses
import typing

from linksync import states

OK, TEMP, GONE, UNSUP = (states.OK, states.TEMPORARY, states.UNAVAILABLE,
                         states.UNSUPPORTED)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    category: str
    behaviour: str          # what the server does, in words
    url: str
    expected: str           # a state of linksync.states
    why: str                # why a person reaches that verdict
    script: typing.Any = None
    kind: str = 'http'
    profile: str = 'default'   # checker settings, see test_zoo.PROFILES
    xfail: str = ''            # the defect, while linksync gets it wrong


# -- building answers -------------------------------------------------------

def head(status=200, reason='OK', headers=(), version='HTTP/1.1', eol=b'\r\n'):
    lines = [('%s %d %s' % (version, status, reason)).encode('latin-1')]
    lines += [h if isinstance(h, bytes) else h.encode('latin-1')
              for h in headers]
    return eol.join(lines) + eol + eol


def full(status=200, reason='OK', body=b'hello\n', headers=(), method='GET'):
    """A well-formed answer with Content-Length (no body to HEAD)."""
    h = head(status, reason, list(headers) + [
        'Content-Length: %d' % len(body)])
    return h + (b'' if method == 'HEAD' else body)


def answer(status=200, reason='OK', headers=(), body=b'hello\n'):
    """A script answering every method the same, well formed."""
    def script(method, path, hdrs):
        return [full(status, reason, body, headers, method)]
    return script


def by_method(head_steps, get_steps):
    """A script answering HEAD and GET differently."""
    def script(method, path, hdrs):
        return head_steps if method == 'HEAD' else get_steps
    return script


def raw(*steps):
    """A script answering every request with `steps`, then closing."""
    def script(method, path, hdrs):
        return list(steps) + ['close']
    return script


def routes(table, default=None):
    """A script choosing by path: {path: script}."""
    def script(method, path, hdrs):
        chosen = table.get(path.split('?')[0], default)
        if chosen is None:
            return [full(404, 'Not Found', method=method)]
        return chosen(method, path, hdrs)
    return script


def redirect(location, status=302, reason='Found', headers=()):
    return answer(status, reason, ['Location: ' + location] + list(headers),
                  body=b'')


def chain(hops, prefix='/hop/'):
    """A redirect chain of `hops` redirects ending in a 200."""
    def script(method, path, hdrs):
        n = int(path[len(prefix):] or 0)
        if n >= hops:
            return [full(method=method)]
        return [full(302, 'Found', b'', ['Location: %s%d' % (prefix, n + 1)],
                     method)]
    return script


def cookie_gate(method, path, hdrs):
    """Cookie consent: without the cookie, set it and redirect to itself."""
    if any('consent=yes' in c for c in hdrs.get('cookie', [])):
        return [full(method=method)]
    return [full(302, 'Found', b'', ['Set-Cookie: consent=yes; Path=/',
                                     'Location: /page'], method)]


def session_start(method, path, hdrs):
    return [full(302, 'Found', b'', ['Set-Cookie: sid=abc123; Path=/; '
                                     'HttpOnly', 'Location: /app'], method)]


def session_page(method, path, hdrs):
    if any('sid=abc123' in c for c in hdrs.get('cookie', [])):
        return [full(method=method)]
    return [full(403, 'Forbidden', b'log in first\n', method=method)]


_spins = iter(range(10 ** 9))


def cookie_spin(method, path, hdrs):
    return [full(302, 'Found', b'', ['Set-Cookie: n=%d' % next(_spins),
                                     'Location: /spin'], method)]


def cookie_gate_for(domain):
    def gate(method, path, hdrs):
        if any('consent=yes' in c for c in hdrs.get('cookie', [])):
            return [full(method=method)]
        return [full(302, 'Found', b'', ['Set-Cookie: consent=yes; Domain='
                                         + domain, 'Location: /page'],
                     method)]
    return gate


def browser_only(method, path, hdrs):
    agent = ' '.join(hdrs.get('user-agent', []))
    if 'Mozilla/' in agent:
        return [full(method=method)]
    return [full(403, 'Forbidden', b'bots go away\n', method=method)]


def _pieces(data, size):
    """`data` as writes of `size` bytes, each in a separate read."""
    steps = []
    for i in range(0, len(data), size):
        steps += [data[i:i + size], ('pause', 0.002)]
    return steps


OK200 = full()
#: Framing cases refuse HEAD, so that the checker's GET meets the framing.
HEAD_405 = full(405, 'Method Not Allowed', method='HEAD')
BASE = '{base}/'


def _status_cases():
    table = [
        (200, 'OK', OK, 'the page is shown'),
        (201, 'Created', OK, 'a page is shown'),
        (202, 'Accepted', OK, 'a page is shown'),
        (203, 'Non-Authoritative Information', OK, 'a page is shown'),
        (204, 'No Content', OK, 'the server answered; nothing is wrong'),
        (206, 'Partial Content', OK, 'content is served'),
        (226, 'IM Used', OK, 'content is served'),
        (300, 'Multiple Choices', OK, 'the server offers choices'),
        (304, 'Not Modified', OK, 'the page exists, unchanged'),
        (400, 'Bad Request', GONE, 'the browser shows an error page'),
        (401, 'Unauthorized', OK, 'the page exists behind a login'),
        (402, 'Payment Required', GONE, 'not reachable for a reader'),
        (403, 'Forbidden', GONE, 'forbidden to everyone'),
        (404, 'Not Found', GONE, 'the page is gone'),
        (405, 'Method Not Allowed', GONE, 'even GET is refused'),
        (406, 'Not Acceptable', GONE, 'the browser shows an error page'),
        (408, 'Request Timeout', GONE, '4xx: the contract says unavailable'),
        (409, 'Conflict', GONE, 'the browser shows an error page'),
        (410, 'Gone', GONE, 'the page is gone for good'),
        (414, 'URI Too Long', GONE, 'the link cannot be followed'),
        (418, "I'm a teapot", GONE, 'an error page'),
        (429, 'Too Many Requests', TEMP, 'try later'),
        (451, 'Unavailable For Legal Reasons', GONE, 'blocked for good'),
        (500, 'Internal Server Error', TEMP, 'a server hiccup; try later'),
        (501, 'Not Implemented', GONE, 'the contract: 501 is permanent'),
        (502, 'Bad Gateway', GONE, 'the contract: 502 is permanent'),
        (503, 'Service Unavailable', TEMP, 'down for now; try later'),
        (504, 'Gateway Timeout', TEMP, 'a slow upstream; try later'),
        (505, 'HTTP Version Not Supported', GONE, 'the contract: permanent'),
        (507, 'Insufficient Storage', TEMP, 'a server-side 5xx; try later'),
        (599, 'Network Connect Timeout', TEMP, 'a server-side 5xx'),
    ]
    return [Case('status-%d' % code, 'status', 'every method gets %d %s'
                 % (code, reason), BASE, expected, why,
                 answer(code, reason))
            for code, reason, expected, why in table]


HEAD_QUIRKS = [
    Case('head-404-get-200', 'head', 'HEAD 404, GET 200', BASE, OK,
         'the browser uses GET and sees the page',
         by_method([full(404, 'Not Found', method='HEAD')], [OK200])),
    Case('head-400-get-200', 'head', 'HEAD 400, GET 200', BASE, OK,
         'the browser uses GET and sees the page',
         by_method([full(400, 'Bad Request', method='HEAD')], [OK200])),
    Case('head-500-get-200', 'head', 'HEAD 500, GET 200', BASE, OK,
         'the browser uses GET and sees the page',
         by_method([full(500, 'Internal Server Error', method='HEAD')],
                   [OK200])),
    Case('head-405-get-200', 'head', 'HEAD 405, GET 200', BASE, OK,
         'the browser uses GET and sees the page',
         by_method([full(405, 'Method Not Allowed', method='HEAD')],
                   [OK200])),
    Case('head-501-get-200', 'head', 'HEAD 501, GET 200', BASE, OK,
         'the browser uses GET and sees the page',
         by_method([full(501, 'Not Implemented', method='HEAD')], [OK200])),
    Case('head-hangs-get-200', 'head', 'HEAD never answered, GET 200', BASE,
         OK, 'the browser uses GET and sees the page',
         by_method(['hold'], [OK200])),
    Case('head-closes-get-200', 'head', 'HEAD dropped, GET 200', BASE, OK,
         'the browser uses GET and sees the page',
         by_method(['close'], [OK200])),
    Case('head-404-get-404', 'head', 'HEAD and GET 404', BASE, GONE,
         'the page is gone', answer(404, 'Not Found')),
]


def _redirect_cases():
    cases = [
        Case('redirect-301', 'redirect', '301 to a 200', '{base}/old', OK,
             'the browser lands on the page',
             routes({'/old': redirect('/new', 301, 'Moved Permanently'),
                     '/new': answer()})),
        Case('redirect-303', 'redirect', '303 to a 200', '{base}/old', OK,
             'the browser lands on the page',
             routes({'/old': redirect('/new', 303, 'See Other'),
                     '/new': answer()})),
        Case('redirect-307', 'redirect', '307 to a 200', '{base}/old', OK,
             'the browser lands on the page',
             routes({'/old': redirect('/new', 307, 'Temporary Redirect'),
                     '/new': answer()})),
        Case('redirect-308', 'redirect', '308 to a 200', '{base}/old', OK,
             'the browser lands on the page',
             routes({'/old': redirect('/new', 308, 'Permanent Redirect'),
                     '/new': answer()})),
        Case('redirect-relative', 'redirect', 'Location: new (relative)',
             '{base}/a/old', OK, 'resolved against the URL, it lands',
             routes({'/a/old': redirect('new'), '/a/new': answer()})),
        Case('redirect-dotdot', 'redirect', 'Location: ../b/new',
             '{base}/a/old', OK, 'resolved against the URL, it lands',
             routes({'/a/old': redirect('../b/new'), '/b/new': answer()})),
        Case('redirect-query-only', 'redirect', 'Location: ?page=2',
             '{base}/list', OK, 'resolved against the URL, it lands',
             routes({'/list': lambda m, p, h: (
                 [full(method=m)] if '?' in p else
                 [full(302, 'Found', b'', ['Location: ?page=2'], m)])})),
        Case('redirect-absolute', 'redirect', 'Location: http://host:port/new',
             '{base}/old', OK, 'the browser lands on the page',
             routes({'/old': lambda m, p, h: [full(
                 302, 'Found', b'', ['Location: http://127.0.0.1:%s/new'
                                     % h['host'][0].rsplit(':', 1)[1]], m)],
                 '/new': answer()})),
        Case('redirect-protocol-relative', 'redirect',
             'Location: //host:port/new', '{base}/old', OK,
             'the browser keeps the scheme and lands',
             routes({'/old': lambda m, p, h: [full(
                 302, 'Found', b'', ['Location: //%s/new' % h['host'][0]],
                 m)], '/new': answer()})),
        Case('redirect-to-https', 'redirect',
             '301 to https:// on a server with a certificate from the zoo CA',
             '{base}/', OK, 'the browser lands on the secure page',
             kind='to-tls'),
        Case('redirect-to-404', 'redirect', '302 to a 404', '{base}/old',
             GONE, 'the browser lands on an error page',
             routes({'/old': redirect('/new')})),
        Case('redirect-to-503', 'redirect', '302 to a 503', '{base}/old',
             TEMP, 'the target is down for now',
             routes({'/old': redirect('/new'),
                     '/new': answer(503, 'Service Unavailable')})),
        Case('redirect-loop-self', 'redirect', 'redirects to itself',
             '{base}/loop', GONE, 'the browser reports a redirect loop',
             routes({'/loop': redirect('/loop')})),
        Case('redirect-loop-pair', 'redirect', 'a -> b -> a', '{base}/a',
             GONE, 'the browser reports a redirect loop',
             routes({'/a': redirect('/b'), '/b': redirect('/a')})),
        Case('redirect-cookie-consent', 'redirect',
             'sets a cookie and redirects to itself; 200 with the cookie',
             '{base}/page', OK, 'the browser sends the cookie back and lands',
             routes({'/page': cookie_gate})),
        Case('redirect-cookie-session', 'redirect',
             '/login sets a session and redirects to /app, 403 without it',
             '{base}/login', OK, 'the browser keeps the session and lands',
             routes({'/login': session_start, '/app': session_page})),
        Case('redirect-cookie-every-time', 'redirect',
             'a new cookie and a redirect to itself on every request',
             '{base}/spin', GONE, 'the browser gives up: too many redirects',
             routes({'/spin': cookie_spin})),
        Case('redirect-cookie-other-site', 'redirect',
             'a cookie for another domain, and a redirect to itself',
             '{base}/page', GONE,
             'the browser refuses the cookie: a redirect loop',
             routes({'/page': cookie_gate_for('other.example')})),
        Case('redirect-no-location', 'redirect', '302 without Location',
             BASE, OK, 'the browser shows the 302 body; nothing to follow',
             answer(302, 'Found', body=b'moved somewhere\n')),
        Case('redirect-10-hops', 'redirect', '10 redirects then 200',
             '{base}/hop/0', OK, 'the browser follows 10 hops',
             chain(10)),
        Case('redirect-20-hops', 'redirect', '20 redirects then 200',
             '{base}/hop/0', OK, 'browsers follow 20 hops',
             chain(20)),
        Case('redirect-21-hops', 'redirect', '21 redirects then 200',
             '{base}/hop/0', GONE, 'browsers give up after 20',
             chain(21)),
        Case('redirect-40-hops', 'redirect', '40 redirects then 200',
             '{base}/hop/0', GONE, 'browsers give up after 20',
             chain(40)),
        Case('redirect-non-ascii-utf8', 'redirect',
             'Location: /café as raw UTF-8 bytes', '{base}/old', OK,
             'the browser reads UTF-8 and lands on /caf%C3%A9',
             routes({'/old': lambda m, p, h: [
                 head(302, 'Found', ['Location: /caf'.encode() +
                                     'é'.encode('utf-8'),
                                     'Content-Length: 0'])],
                 '/caf%C3%A9': answer()})),
        Case('redirect-percent-encoded', 'redirect',
             'Location: /caf%C3%A9', '{base}/old', OK,
             'already encoded; the browser lands',
             routes({'/old': redirect('/caf%C3%A9'),
                     '/caf%C3%A9': answer()})),
        Case('redirect-with-spaces', 'redirect', 'Location: /a b',
             '{base}/old', OK, 'the browser encodes the space and lands',
             routes({'/old': redirect('/a b'), '/a%20b': answer()})),
        Case('redirect-fragment', 'redirect', 'Location: /new#part',
             '{base}/old', OK, 'the fragment stays in the browser',
             routes({'/old': redirect('/new#part'), '/new': answer()})),
        Case('redirect-unsupported-scheme', 'redirect',
             'Location: gopher://example.invalid/', '{base}/old', UNSUP,
             'the browser cannot follow it',
             routes({'/old': redirect('gopher://example.invalid/')})),
        Case('redirect-into-blocked-network', 'redirect',
             'Location: http://10.1.2.3/', '{base}/old', UNSUP,
             'the network policy refuses private addresses',
             routes({'/old': redirect('http://10.1.2.3/')})),
    ]
    return cases


def _framing_cases():
    body = b'hello\n'
    chunked = head(200, 'OK', ['Transfer-Encoding: chunked'])
    gz = (b'\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff\xcbH\xcd\xc9\xc9\xe7'
          b'\x02\x00 0:6\x06\x00\x00\x00')
    return [
        Case('http10-close', 'framing', 'HTTP/1.0 answer, body until close',
             BASE, OK, 'the page is shown',
             raw(head(200, 'OK', version='HTTP/1.0') + body)),
        Case('no-length-close', 'framing',
             'HTTP/1.1, no Content-Length, Connection: close', BASE, OK,
             'the page is shown',
             raw(head(200, 'OK', ['Connection: close']) + body)),
        Case('chunked-good', 'framing', 'chunked body, well formed', BASE,
             OK, 'the page is shown',
             by_method([HEAD_405],
                       [chunked + b'6\r\nhello\n\r\n0\r\n\r\n'])),
        Case('chunked-bad-size', 'framing',
             'chunked body with a chunk size that is not hex', BASE, OK,
             'the head said 200; the browser shows what came',
             by_method([HEAD_405],
                       [chunked + b'zz\r\nhello\r\n0\r\n\r\n', 'close'])),
        Case('gzip', 'framing', 'gzip Content-Encoding', BASE, OK,
             'the browser inflates and shows it',
             answer(200, 'OK', ['Content-Encoding: gzip'], gz)),
        Case('100-continue-first', 'framing', '100 Continue, then 200', BASE,
             OK, 'the interim answer is skipped',
             raw(b'HTTP/1.1 100 Continue\r\n\r\n' + head(
                 200, 'OK', ['Content-Length: 6']) + body)),
        Case('103-early-hints', 'framing', '103 Early Hints, then 200', BASE,
             OK, 'the interim answer is skipped',
             raw(b'HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n' +
                 head(200, 'OK', ['Content-Length: 6']) + body)),
        Case('split-head', 'framing', 'the head in three separate writes',
             BASE, OK, 'the page is shown',
             raw(b'HTTP/1.1 200 OK\r\nContent-', ('pause', 0.02),
                 b'Length: 6\r', ('pause', 0.02), b'\n\r\nhello\n')),
        Case('bare-lf', 'framing', 'the head ends lines with a bare LF',
             BASE, OK, 'browsers accept bare LF',
             raw(head(200, 'OK', ['Content-Length: 6'], eol=b'\n') + body)),
        Case('folded-header', 'framing', 'a folded (obs-fold) header line',
             BASE, OK, 'browsers unfold it',
             raw(head(200, 'OK', ['X-Long: one', ' two',
                                  'Content-Length: 6']) + body)),
        Case('header-without-colon', 'framing',
             'a header line without a colon', BASE, OK,
             'browsers skip the odd line',
             raw(head(200, 'OK', ['this is not a header',
                                  'Content-Length: 6']) + body)),
        Case('lowercase-version', 'framing', 'status line "http/1.1 200 OK"',
             BASE, OK, 'browsers accept it',
             raw(b'http/1.1 200 OK\r\nContent-Length: 6\r\n\r\n' + body)),
        Case('no-reason-phrase', 'framing', 'status line "HTTP/1.1 200"',
             BASE, OK, 'the phrase is optional',
             raw(b'HTTP/1.1 200\r\nContent-Length: 6\r\n\r\n' + body)),
        Case('huge-headers', 'framing', '100 KiB of headers', BASE, OK,
             'browsers accept large heads (cookies, CSPs)',
             raw(head(200, 'OK', ['X-Pad-%d: %s' % (i, 'x' * 1000)
                                  for i in range(100)] +
                      ['Content-Length: 6']) + body)),
        Case('huge-headers-split', 'framing',
             '100 KiB of headers in 4 KiB writes', BASE, OK,
             'browsers accept large heads however they arrive',
             raw(*_pieces(head(200, 'OK', ['X-Pad-%d: %s' % (i, 'x' * 1000)
                                           for i in range(100)] +
                               ['Content-Length: 6']) + body, 4096))),
        Case('duplicate-content-length', 'framing',
             'Content-Length: 6 twice', BASE, OK,
             'equal duplicates are harmless',
             raw(head(200, 'OK', ['Content-Length: 6',
                                  'Content-Length: 6']) + body)),
        Case('garbage-answer', 'framing', 'the server answers "hello"',
             BASE, GONE, 'not HTTP: the browser shows an error',
             raw(b'hello there\r\n\r\n')),
        Case('empty-answer', 'framing', 'the server closes without a byte',
             BASE, TEMP, 'the browser reports an empty answer; try later',
             raw()),
        Case('stall-after-head-no-length', 'framing',
             'GET: 200 head, no length, keep-alive, body never ends', BASE,
             OK, 'the browser shows the page as it loads',
             by_method([HEAD_405],
                       [head(200, 'OK') + b'hel', 'hold'])),
        Case('stall-after-head-chunked', 'framing',
             'GET: 200 head, an open chunked body', BASE, OK,
             'the browser shows the page as it loads',
             by_method([HEAD_405],
                       [chunked + b'3\r\nhel\r\n', 'hold'])),
        Case('stall-short-body', 'framing',
             'GET: Content-Length 1000, 6 bytes, then silence', BASE, OK,
             'the browser shows the page as it loads',
             by_method([HEAD_405],
                       [head(200, 'OK', ['Content-Length: 1000']) + body,
                        'hold'])),
        Case('stall-before-head', 'framing', 'request read, never answered',
             BASE, TEMP, 'the browser times out; try later', raw('hold')),
        Case('reset-after-request', 'framing',
             'request read, connection dropped', BASE, TEMP,
             'the browser reports a reset; try later', raw()),
    ]


def _bot_cases():
    return [
        Case('bot-999', 'bots', 'status 999 (LinkedIn-style bot wall)', BASE,
             TEMP, 'the page works in a browser; not a broken link',
             answer(999, 'Request denied')),
        Case('bot-403-non-browser', 'bots',
             '403 unless the User-Agent looks like a browser', BASE, OK,
             'a browser sees the page', browser_only),
        Case('bot-cloudflare-challenge', 'bots',
             "Cloudflare's 403 challenge page (cf-mitigated: challenge)",
             BASE, TEMP, 'a person passes the check and reads the page',
             answer(403, 'Forbidden', ['cf-mitigated: challenge',
                                       'Server: cloudflare'],
                    b'<title>Just a moment...</title>')),
        Case('bot-datadome', 'bots', "DataDome's 403 with its cookie", BASE,
             TEMP, 'a person solves the CAPTCHA and reads the page',
             answer(403, 'Forbidden', ['X-DataDome: protected',
                                       'Set-Cookie: datadome=abc; Path=/'])),
        Case('bot-aws-waf-captcha', 'bots',
             "AWS WAF's 405 CAPTCHA (x-amzn-waf-action: captcha)", BASE,
             TEMP, 'a person solves the CAPTCHA and reads the page',
             answer(405, 'Method Not Allowed',
                    ['x-amzn-waf-action: captcha'])),
        Case('plain-403', 'bots', 'a 403 without any challenge mark',
             BASE, GONE, 'forbidden to everyone: the link is broken',
             answer(403, 'Forbidden', [], b'no\n')),
        Case('retry-after-503', 'bots', '503 with Retry-After: 120', BASE,
             TEMP, 'down for now; the server says when',
             answer(503, 'Service Unavailable', ['Retry-After: 120'])),
        Case('retry-after-429-date', 'bots',
             '429 with an HTTP-date Retry-After', BASE, TEMP,
             'rate-limited; try later',
             answer(429, 'Too Many Requests',
                    ['Retry-After: Wed, 21 Oct 2099 07:28:00 GMT'])),
    ]


def _odd_url_cases():
    return [
        Case('dot-segments', 'url', '/a/../b is 200, /a/../b literal 404',
             '{base}/a/../b', OK, 'the browser requests /b',
             routes({'/b': answer()})),
        Case('empty-host', 'url', 'http:///x', 'http:///x', UNSUP,
             'no host: nothing to reach', kind='plain'),
        Case('query-and-fragment', 'url', '/p?q=1#frag', '{base}/p?q=1#frag',
             OK, 'the fragment is not sent', routes({'/p': answer()})),
        Case('percent-path', 'url', '/caf%C3%A9 exists',
             '{base}/caf%C3%A9', OK, 'the page is shown',
             routes({'/caf%C3%A9': answer()})),
        Case('unicode-path', 'url', '/café given unencoded',
             '{base}/café', OK, 'the browser sends /caf%C3%A9',
             routes({'/caf%C3%A9': answer()})),
        Case('uppercase-scheme-host', 'url', 'HTTP://127.0.0.1:PORT/',
             'HTTP://127.0.0.1:{port}/', OK, 'schemes and hosts ignore case',
             answer()),
        Case('userinfo', 'url', 'http://user:pw@host/', 
             'http://user:pw@127.0.0.1:{port}/', OK,
             'the browser logs in (or asks) and shows the page', answer()),
        Case('port-out-of-range', 'url', 'port 99999',
             'http://127.0.0.1:99999/', GONE,
             'the browser refuses the URL as invalid', kind='plain'),
    ]


def _connection_cases():
    return [
        Case('refused', 'connection', 'nothing listens on the port',
             'http://127.0.0.1:{free}/', TEMP,
             'the site is down; try later', kind='plain'),
        Case('refused-https', 'connection', 'nothing listens (https)',
             'https://127.0.0.1:{free}/', TEMP,
             'the site is down; try later', kind='plain'),
        Case('blocked-loopback', 'ssrf', 'a loopback address, no permission',
             '{base}/', UNSUP, 'the policy refuses loopback', answer(),
             profile='strict'),
        Case('blocked-private', 'ssrf', 'a private address',
             'http://10.0.0.1/', UNSUP, 'the policy refuses private ranges',
             kind='plain', profile='strict'),
        Case('blocked-link-local', 'ssrf', 'the cloud metadata address',
             'http://169.254.169.254/latest/', UNSUP,
             'the policy refuses link-local', kind='plain',
             profile='strict'),
        Case('blocked-ipv6-loopback', 'ssrf', '[::1]', 'http://[::1]/',
             UNSUP, 'the policy refuses loopback', kind='plain',
             profile='strict'),
        Case('blocked-mapped', 'ssrf', '[::ffff:127.0.0.1]',
             'http://[::ffff:127.0.0.1]/', UNSUP,
             'the policy sees through IPv4-mapped addresses', kind='plain',
             profile='strict'),
        Case('blocked-unspecified', 'ssrf', '0.0.0.0', 'http://0.0.0.0/',
             UNSUP, 'the policy refuses the unspecified address',
             kind='plain', profile='strict'),
        Case('blocked-by-dns', 'ssrf',
             'a public-looking name resolving to 127.0.0.1',
             'http://inside.zoo.test:{port}/', UNSUP,
             'the policy applies to the resolved address', answer(),
             kind='dns', profile='strict'),
    ]


def _tls_cases():
    return [
        Case('tls-valid-ca', 'tls', 'certificate from the zoo CA', BASE, OK,
             'the browser trusts it (the CA is installed)', 'valid',
             kind='tls'),
        Case('tls-valid-ca-name', 'tls', 'zoo CA, reached as localhost',
             'https://localhost:{port}/', OK, 'the name is in the cert',
             'valid', kind='tls'),
        Case('tls-self-signed', 'tls', 'self-signed certificate', BASE, GONE,
             'the browser warns: not trusted', 'self-signed', kind='tls'),
        Case('tls-expired', 'tls', 'zoo CA, expired', BASE, GONE,
             'the browser warns: expired', 'expired', kind='tls'),
        Case('tls-mismatch', 'tls', 'zoo CA, for other.example', BASE, GONE,
             'the browser warns: wrong name', 'mismatch', kind='tls'),
        Case('tls-unknown-ca', 'tls', 'signed by a CA nobody trusts', BASE,
             GONE, 'the browser warns: unknown issuer', 'unknown-ca',
             kind='tls'),
        Case('tls-sni', 'tls', 'a certificate only for the SNI name',
             'https://localhost:{port}/', OK,
             'the browser sends the name and gets its certificate', 'sni',
             kind='tls'),
        Case('tls-plain-port', 'tls', 'https:// to a plain HTTP port',
             'https://127.0.0.1:{port}/', GONE,
             'the browser reports a TLS error', answer()),
    ]


def _dns_cases():
    return [
        Case('dns-a', 'dns', 'A record to the zoo server',
             'http://www.zoo.test:{port}/', OK, 'the page is shown',
             answer(), kind='dns'),
        Case('dns-trailing-dot', 'dns', 'fully qualified name with a dot',
             'http://www.zoo.test.:{port}/', OK, 'the page is shown',
             answer(), kind='dns'),
        Case('dns-cname', 'dns', 'a CNAME to the zoo server',
             'http://alias.zoo.test:{port}/', OK, 'the page is shown',
             answer(), kind='dns'),
        Case('dns-cname-chain', 'dns', 'a CNAME to a CNAME to the server',
             'http://chain.zoo.test:{port}/', OK, 'the page is shown',
             answer(), kind='dns'),
        Case('dns-cname-dangling', 'dns', 'a CNAME to a name that is not',
             'http://dangling.zoo.test:{port}/', GONE,
             'the browser: no such site', answer(), kind='dns'),
        Case('dns-nxdomain', 'dns', 'the name does not exist',
             'http://nothing.zoo.test/', GONE, 'the browser: no such site',
             kind='dns'),
        Case('dns-servfail', 'dns', 'the DNS server fails',
             'http://broken.zoo.test/', TEMP, 'a DNS hiccup; try later',
             kind='dns'),
        Case('dns-no-address', 'dns', 'the name exists, no A/AAAA',
             'http://mailonly.zoo.test/', GONE,
             'the browser: no such site', kind='dns'),
        Case('dns-silent', 'dns', 'the DNS server never answers',
             'http://www.zoo.test/', TEMP, 'cannot tell; try later',
             kind='dns', profile='silent-dns'),
        Case('idn-host', 'dns', 'bücher.zoo.test (punycode in the zone)',
             'http://bücher.zoo.test:{port}/', OK,
             'the browser IDNA-encodes the name', answer(), kind='dns'),
        Case('idn-redirect', 'dns', 'Location: http://bücher.zoo.test:PORT/',
             'http://www.zoo.test:{port}/go', OK,
             'the browser IDNA-encodes the name and lands',
             routes({'/go': lambda m, p, h: [head(302, 'Found', [
                 ('Location: http://bücher.zoo.test:%s/' %
                  h['host'][0].rsplit(':', 1)[1]).encode('utf-8'),
                 'Content-Length: 0'])]}, default=answer()),
             kind='dns'),
    ]


def _ftp_cases():
    return [
        Case('ftp-dir', 'ftp', 'a directory', '{base}/pub/', OK,
             'the browser lists it', kind='ftp'),
        Case('ftp-dir-no-slash', 'ftp', 'a directory without a slash',
             '{base}/pub/docs', OK, 'the browser lists it', kind='ftp'),
        Case('ftp-file', 'ftp', 'a file', '{base}/pub/file.txt', OK,
             'the browser downloads it', kind='ftp'),
        Case('ftp-empty-file', 'ftp', 'an empty file', '{base}/pub/empty.txt',
             OK, 'the browser downloads it', kind='ftp'),
        Case('ftp-missing', 'ftp', 'no such file', '{base}/pub/missing.txt',
             GONE, 'the browser: not found', kind='ftp'),
        Case('ftp-login', 'ftp', 'a user\'s file with the right password',
             'ftp://joe:s3cret@127.0.0.1:{port}/private.txt', OK,
             'the download works', kind='ftp'),
        Case('ftp-login-refused', 'ftp', 'a wrong password',
             'ftp://joe:wrong@127.0.0.1:{port}/', GONE,
             'the browser: login refused', kind='ftp'),
        Case('ftp-utf8-name', 'ftp',
             "a file named café.txt in UTF-8, on Twisted's FTP server",
             '{base}/pub/caf%C3%A9.txt', GONE,
             "Twisted's server reads paths as latin-1: a browser or curl, "
             "sending the URL's bytes, does not find the file either",
             kind='ftp'),
        Case('ftp-refused', 'ftp', 'nothing listens',
             'ftp://127.0.0.1:{free}/', TEMP, 'down; try later',
             kind='plain'),
        Case('ftp-crlf-password', 'ftp',
             'CR LF in the password (command injection)',
             'ftp://joe:s3cret%0D%0AMKD%20pwned@127.0.0.1:{port}/', GONE,
             'an invalid URL; nothing may reach the server', kind='ftp'),
        Case('ftp-421', 'ftp', 'the server greets with 421 and closes',
             'ftp://127.0.0.1:{port}/', TEMP, 'the server is busy; later',
             b'421 Too many users, try later\r\n'),
        Case('pyftp-utf8-name', 'ftp', 'a UTF-8 server, file café.txt',
             '{base}/caf%C3%A9.txt', OK, 'the browser downloads it',
             kind='pyftp'),
        Case('pyftp-latin1-name', 'ftp', 'a latin-1 server, file café.txt',
             '{base}/caf%E9.txt', OK, 'the browser downloads it',
             kind='pyftp-latin1'),
        Case('pyftp-dir', 'ftp', 'pyftpdlib: a directory', '{base}/docs/', OK,
             'the browser lists it', kind='pyftp'),
        Case('pyftp-missing', 'ftp', 'pyftpdlib: no such file',
             '{base}/missing.txt', GONE, 'the browser: not found',
             kind='pyftp'),
        Case('pyftp-login-refused', 'ftp', 'pyftpdlib: a wrong password',
             'ftp://joe:wrong@127.0.0.1:{port}/', GONE,
             'the browser: login refused', kind='pyftp'),
        Case('pyftp-crlf-user', 'ftp', 'CR LF in the user name',
             'ftp://joe%0D%0AMKD%20pwned:s3cret@127.0.0.1:{port}/', GONE,
             'an invalid URL; nothing may reach the server', kind='pyftp'),
        Case('pyftp-crlf-password', 'ftp', 'CR LF in the password',
             'ftp://joe:s3cret%0D%0AMKD%20pwned@127.0.0.1:{port}/', GONE,
             'an invalid URL; nothing may reach the server', kind='pyftp'),
        Case('pyftp-crlf-path', 'ftp', 'CR LF in the path',
             '{base}/x%0D%0AMKD%20pwned', GONE,
             'an invalid URL; nothing may reach the server', kind='pyftp'),
    ]


def _mailto_cases():
    plain = dict(kind='dns', script=None)
    return [
        Case('mailto-mx', 'mailto', 'domain with MX', 'mailto:joe@mail.zoo.test',
             OK, 'mail can be delivered', **plain),
        Case('mailto-a-only', 'mailto', 'domain with A only',
             'mailto:joe@www.zoo.test', OK, 'mail goes to the A host',
             **plain),
        Case('mailto-null-mx', 'mailto', 'null MX (RFC 7505)',
             'mailto:joe@nomail.zoo.test', GONE, 'accepts no mail', **plain),
        Case('mailto-nxdomain', 'mailto', 'no such domain',
             'mailto:joe@nothing.zoo.test', GONE, 'mail would bounce',
             **plain),
        Case('mailto-bad-syntax', 'mailto', 'joe@@mail.zoo.test',
             'mailto:joe@@mail.zoo.test', GONE, 'not an address', **plain),
        Case('mailto-empty', 'mailto', 'mailto: without an address',
             'mailto:', GONE, 'no address at all', **plain),
        Case('mailto-query', 'mailto', 'recipients and a subject in the query',
             'mailto:joe@mail.zoo.test?cc=ann@www.zoo.test&subject=hi', OK,
             'the mail client opens with good recipients', **plain),
        Case('mailto-two', 'mailto', 'two recipients, both fine',
             'mailto:joe@mail.zoo.test,ann@www.zoo.test', OK,
             'both can be reached', **plain),
        Case('mailto-servfail', 'mailto', 'the DNS server fails',
             'mailto:joe@broken.zoo.test', TEMP, 'cannot tell; later',
             **plain),
    ]


def _scheme_cases():
    return [Case('scheme-%s' % s, 'scheme', '%s: URL' % s, url, UNSUP,
                 'linksync has no checker for it', kind='plain')
            for s, url in [('gopher', 'gopher://example.invalid/'),
                           ('news', 'news:comp.lang.python'),
                           ('javascript', 'javascript:void(0)'),
                           ('file', 'file:///etc/passwd'),
                           ('data', 'data:text/plain,hello'),
                           ('tel', 'tel:+15551234567')]]


CASES = (_status_cases() + HEAD_QUIRKS + _redirect_cases() +
         _framing_cases() + _bot_cases() + _odd_url_cases() +
         _connection_cases() + _tls_cases() + _dns_cases() + _ftp_cases() +
         _mailto_cases() + _scheme_cases())
