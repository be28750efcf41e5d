"""From what happened during a check to a state and a reason (PROTOCOL.md).

The States table of PROTOCOL.md, as code:

=========================  ===============================================
``ok``                     2xx, 3xx after redirects (a 3xx that is not a
                           redirect, such as 304), 401
``temporary unavailable``  500, 503, 504, 429, timeouts, connection refused
                           or reset, DNS temporary failure
``unavailable``            4xx but 401 and 429, 501, 502, 505, DNS name
                           does not exist, TLS failure, too many redirects
``unsupported protocol``   no scheme handler, refused by policy, no host
=========================  ===============================================

The table names some 5xx codes only; the others (506-599) are server-side
trouble that usually passes, so they count as temporary.

>>> http_status(200, b'OK')
('ok', '200 OK')
>>> http_status(200, b'OK', redirects=2)
('ok', '200 OK after 2 redirects')
>>> http_status(404, b'Not Found')
('unavailable', '404 Not Found')
>>> http_status(429, b'')
('temporary unavailable', '429 Too Many Requests')
>>> http_status(401, b'Unauthorized')
('ok', '401 Unauthorized')
>>> http_status(502, b'Bad Gateway')
('unavailable', '502 Bad Gateway')
"""

import http

from twisted.internet import defer, error
from twisted.names import error as dns_error
from twisted.python import failure
from twisted.web import _newclient
from twisted.web import client as web_client

from linksync import states

#: 5xx codes that say "try later" (temporary); other listed ones are
#: permanent.
_TEMPORARY_5XX = {500, 503, 504}
_PERMANENT_5XX = {501, 502, 505}


class CheckFailed(Exception):
    """A check ended in a known state; raised deep down, caught at the top."""

    state = states.UNAVAILABLE

    def __init__(self, reason, state=None):
        super().__init__(reason)
        self.reason = reason
        if state is not None:
            self.state = state


class Temporary(CheckFailed):
    state = states.TEMPORARY


class Unavailable(CheckFailed):
    state = states.UNAVAILABLE


class Unsupported(CheckFailed):
    state = states.UNSUPPORTED


class TimedOut(Temporary):
    """A connect or total timeout (the reason says which)."""


def on_timeout(reason):
    """An ``onTimeoutCancel`` for :meth:`Deferred.addTimeout`: the work the
    timeout cancelled fails with TimedOut(`reason`) instead of the failure
    the cancellation left (Twisted calls it at the timeout only, not when
    a caller cancels).

    >>> from twisted.internet import defer, task
    >>> clock = task.Clock()
    >>> d = defer.Deferred()
    >>> d = d.addTimeout(5, clock, onTimeoutCancel=on_timeout('too slow'))
    >>> clock.advance(5)
    >>> d.addErrback(lambda f: (f.type.__name__, f.getErrorMessage())).result
    ('TimedOut', 'too slow')
    """
    def translate(result, timeout):
        if isinstance(result, failure.Failure):
            raise TimedOut(reason)
        return result
    return translate


#: The failures of a twisted.names look-up.
DNS_ERRORS = (dns_error.DNSNameError, dns_error.DNSServerError,
              dns_error.DNSQueryTimeoutError, dns_error.DNSQueryRefusedError,
              defer.TimeoutError)


def dns_failure(exc, what, name):
    """The CheckFailed for a failed look-up of `name` (one of DNS_ERRORS).

    >>> dns_failure(dns_error.DNSNameError(), 'host name', 'x.test').reason
    'DNS: host name x.test does not exist'
    """
    if isinstance(exc, dns_error.DNSNameError):
        return Unavailable('DNS: %s %s does not exist' % (what, name))
    return Temporary('DNS: temporary failure looking up %s (%s)' % (
        name, type(exc).__name__))


def phrase(code, given=b''):
    """The reason phrase of an HTTP status (the server's, else standard)."""
    if isinstance(given, bytes):
        given = given.decode('latin-1', 'replace')
    given = ' '.join(given.split())[:100]
    if not given:
        try:
            given = http.HTTPStatus(code).phrase
        except ValueError:
            given = ''
    return ('%d %s' % (code, given)).strip()


#: Non-standard statuses that mean "you look like a robot" (999: LinkedIn
#: and others).
BOT_WALL = frozenset((999,))


#: Statuses a bot-protection service answers with its challenge page.
CHALLENGE_STATUSES = frozenset((403, 405, 429, 503))


def challenge(code, headers):
    """The name of the bot-protection service whose challenge page (a
    CAPTCHA, a script a browser runs) an answer is, None when it is none.

    Told by the headers these services mark their challenges with, not by
    a plain 403: a link that is really forbidden stays broken.

    >>> challenge(403, {b'cf-mitigated': b'challenge'})
    'Cloudflare'
    >>> challenge(403, {b'server': b'nginx'}) is None
    True
    """
    if code not in CHALLENGE_STATUSES:
        return None
    get = headers.get
    if get(b'cf-mitigated', b'').lower() == b'challenge':
        return 'Cloudflare'
    if get(b'x-amzn-waf-action', b'').lower() in (b'challenge', b'captcha'):
        return 'AWS WAF'
    if get(b'x-vercel-mitigated', b'').lower() == b'challenge':
        return 'Vercel'
    if b'x-datadome' in headers or b'x-dd-b' in headers or any(
            c.lower().startswith(b'datadome=')
            for c in get(b'set-cookie', ())):
        return 'DataDome'
    if get(b'server', b'').lower().startswith(b'ddos-guard'):
        return 'DDoS-Guard'
    return None


def http_status(code, given_phrase=b'', redirects=0, challenged=None):
    """(state, reason) of the final HTTP status of a check; `challenged`
    names the bot-protection service whose challenge the answer is."""
    reason = phrase(code, given_phrase)
    if redirects:
        reason += ' after %d redirect%s' % (
            redirects, '' if redirects == 1 else 's')
    if challenged:
        # A person passes the challenge and reads the page: not broken,
        # but not seen either.
        return states.TEMPORARY, 'a %s bot challenge (%s): a browser may ' \
            'pass it' % (challenged, reason)
    if 200 <= code < 400 or code == 401:
        return states.OK, reason
    if code == 429:
        return states.TEMPORARY, reason
    if code in BOT_WALL:
        # The server turns away agents it takes for robots; a person in a
        # browser gets the page, so the link is not broken.
        return states.TEMPORARY, 'refused as a robot (%s)' % reason
    if 400 <= code < 500:
        return states.UNAVAILABLE, reason
    if code in _PERMANENT_5XX:
        return states.UNAVAILABLE, reason
    if code in _TEMPORARY_5XX or 500 <= code < 600:
        return states.TEMPORARY, reason
    return states.UNAVAILABLE, 'invalid HTTP status %s' % reason


#: OpenSSL's certificate verification errors (X509_V_ERR_*), in the words
#: of a browser's warning. {date}: the date the failing certificate's
#: validity ends (or starts, for "not yet valid").
_UNKNOWN_AUTHORITY = 'certificate issued by an unknown authority'
_VERIFY_ERRORS = {
    2: _UNKNOWN_AUTHORITY,      # unable to get issuer certificate
    20: _UNKNOWN_AUTHORITY,     # unable to get local issuer certificate
    21: _UNKNOWN_AUTHORITY,     # unable to verify the first certificate
    19: _UNKNOWN_AUTHORITY,     # self-signed root in the chain, not trusted
    # Not signed by the trusted authority of that name: issued by another
    # (a browser's path building finds no trusted issuer either).
    7: _UNKNOWN_AUTHORITY,
    18: 'certificate is self-signed',
    9: 'certificate is not valid before {date}',
    10: 'certificate expired on {date}',
    23: 'certificate has been revoked',
    24: 'certificate issued by a certificate that is no authority',
    26: 'certificate is not meant for a web server',
    22: 'certificate chain is too long',
}
#: Errors about a certificate above the server's own, said of the issuer.
_ISSUER_ERRORS = {9: 'issuing certificate is not valid before {date}',
                  10: 'issuing certificate expired on {date}'}


def tls_verify_reason(errno, cert, depth):
    """The reason of a certificate OpenSSL did not verify: `errno` is its
    X509_V_ERR code, `cert` the failing certificate (pyOpenSSL X509 or
    None) at `depth` in the chain (0: the server's own).

    >>> tls_verify_reason(18, None, 0)
    'TLS: certificate is self-signed'
    >>> tls_verify_reason(20, None, 0)
    'TLS: certificate issued by an unknown authority'
    """
    text = (depth and _ISSUER_ERRORS.get(errno)) or _VERIFY_ERRORS.get(errno)
    if text is None:
        text = 'certificate verify failed (%s)' % _openssl_verify_text(errno)
    if '{date}' in text:
        date = '?'
        if cert is not None:
            c = cert.to_cryptography()
            when = c.not_valid_before_utc if errno == 9 \
                else c.not_valid_after_utc
            date = when.strftime('%Y-%m-%d')
        text = text.format(date=date)
    return 'TLS: ' + text


def _openssl_verify_text(errno):
    try:
        from OpenSSL._util import ffi, lib
        return ffi.string(lib.X509_verify_cert_error_string(errno)).decode(
            'ascii', 'replace')
    except Exception:  # pragma: no cover - private pyOpenSSL bindings
        return 'OpenSSL error %d' % errno


def certificate_names(cert):
    """The host names and addresses a certificate (cryptography) is for:
    its subject alternative names, else its common name."""
    from cryptography import x509
    try:
        alt = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        names = alt.get_values_for_type(x509.DNSName) + [
            str(ip) for ip in alt.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [a.value for a in cert.subject.get_attributes_for_oid(
            x509.oid.NameOID.COMMON_NAME)]
    return [str(n) for n in names]


def tls_name_reason(names, host):
    """The reason of a certificate that is not for `host`.

    >>> tls_name_reason(['other.example'], '127.0.0.1')
    'TLS: certificate is for other.example, not 127.0.0.1'
    >>> tls_name_reason(['a.test', 'b.test', 'c.test', 'd.test'], 'x.test')
    'TLS: certificate is for a.test, b.test, c.test and 1 more, not x.test'
    >>> tls_name_reason([], 'x.test')
    'TLS: certificate is not for x.test'
    """
    if not names:
        return 'TLS: certificate is not for %s' % host
    shown = ', '.join(names[:3])
    if len(names) > 3:
        shown += ' and %d more' % (len(names) - 3)
    return 'TLS: certificate is for %s, not %s' % (shown, host)


def _tls_text(exc):
    """The reason of an OpenSSL or certificate verification error."""
    mismatches = getattr(exc, 'errors', None)
    if isinstance(mismatches, (list, tuple)) and mismatches:
        # service_identity: the certificate is valid, but for other names.
        names = []
        for mismatch in mismatches:
            wanted = getattr(mismatch, 'mismatched_id', None)
            name = getattr(wanted, 'hostname', None) or \
                getattr(wanted, 'ip', None) or wanted
            names.append(name.decode('ascii', 'replace')
                         if isinstance(name, bytes) else str(name))
        return 'TLS: certificate is not for %s' % ', '.join(names)
    args = getattr(exc, 'args', ())
    if args and isinstance(args[0], list) and args[0]:
        # OpenSSL.SSL.Error: [(lib, func, reason), ...]
        last = args[0][-1]
        if isinstance(last, tuple) and last:
            return 'TLS: handshake failed (%s)' % last[-1]
    return 'TLS: handshake failed (%s)' % (str(exc) or type(exc).__name__)


def _is_tls_error(exc):
    try:
        from OpenSSL import SSL
    except ImportError:  # pragma: no cover - Twisted[tls] brings it
        return False
    if isinstance(exc, SSL.Error):
        return True
    try:
        from service_identity import VerificationError
        from service_identity.exceptions import CertificateError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, (VerificationError, CertificateError))


def _reasons(exc):
    """The underlying failures of Twisted's wrapping HTTP client errors."""
    if isinstance(exc, (web_client.ResponseFailed,
                        web_client.ResponseNeverReceived,
                        web_client.RequestGenerationFailed,
                        web_client.RequestTransmissionFailed)):
        found = []
        for f in exc.reasons:
            found.extend(_reasons(f.value))
        return found or [exc]
    return [exc]


def exception(exc):
    """(state, reason) for an exception that ended a check."""
    if isinstance(exc, CheckFailed):
        return exc.state, exc.reason
    reasons = _reasons(exc)
    for r in reasons:
        if isinstance(r, CheckFailed):
            return r.state, r.reason
    for r in reasons:
        if _is_tls_error(r):
            return states.UNAVAILABLE, _tls_text(r)
    r = reasons[0]
    if isinstance(r, _newclient.ParseError):
        return states.UNAVAILABLE, 'invalid HTTP answer: %s' % (
            r.args[0] if r.args else 'unreadable')
    if isinstance(r, error.ConnectionRefusedError):
        return states.TEMPORARY, 'connection refused'
    if isinstance(r, (error.TimeoutError, defer.TimeoutError)):
        return states.TEMPORARY, 'timed out'
    if isinstance(r, error.DNSLookupError):
        return states.UNAVAILABLE, 'DNS: host name not found'
    if isinstance(r, dns_error.DNSNameError):
        return states.UNAVAILABLE, 'DNS: host name does not exist'
    if isinstance(r, (dns_error.DNSServerError, dns_error.DNSQueryTimeoutError,
                      dns_error.DNSQueryRefusedError)):
        return states.TEMPORARY, 'DNS: temporary failure (%s)' % (
            type(r).__name__)
    if isinstance(r, error.ConnectionLost) or \
            isinstance(r, (ConnectionResetError, error.ConnectionDone)):
        return states.TEMPORARY, 'connection closed before an answer'
    if isinstance(r, (error.ConnectError, OSError)):
        return states.TEMPORARY, 'cannot connect: %s' % (
            str(r).strip() or type(r).__name__)
    return states.TEMPORARY, 'check failed: %s' % (
        str(r).strip() or type(r).__name__)
