"""Checking ftp: URLs with Twisted's FTP client.

The client logs in (anonymously, or with the user and password of the URL),
then lists the directory the URL names, or starts the transfer of the file
it names and drops the connection at the first bytes. Passive mode; the
data connection goes to the address of the control connection (never to an
address the server names, so the network policy holds). One FTP session is
one request for the politeness rules, within the total timeout.
"""

import urllib.parse

from twisted.internet import defer, protocol
from twisted.protocols import ftp

from linksync import states
from linksync.server.checker import classify

ANONYMOUS_PASSWORD = 'linksync@'


class _Probe(protocol.Protocol):
    """Receives a listing or a file: the first bytes are enough."""

    def __init__(self, started):
        self.started = started

    def dataReceived(self, data):
        if not self.started.called:
            self.started.callback('file transfer started')


def _reply_of(exc):
    """The server's reply lines hidden in an FTP client error, or None."""
    for _ in range(5):
        if isinstance(exc, ftp.CommandFailed):
            lines = exc.args[0] if exc.args else []
            return ' '.join(str(line) for line in lines)[:200]
        inner = exc.args[1] if len(getattr(exc, 'args', ())) > 1 else None
        if inner is None:
            return None
        exc = getattr(inner, 'value', inner)
    return None


def _failed(exc, doing):
    """A classify error for a failed FTP command."""
    reply = _reply_of(exc)
    if reply is None:
        return exc
    state = states.TEMPORARY if reply.startswith('4') else states.UNAVAILABLE
    return classify.CheckFailed('FTP %s: %s' % (doing, reply), state)


#: Characters that end or split an FTP command line: one of them in a user,
#: password or path would let the URL send commands of its own.
_COMMAND_BREAKS = frozenset('\r\n\0')


def _unquote(text, what):
    """The bytes of a percent-encoded URL part, as the str Twisted's FTP
    client sends back byte for byte (it encodes commands as latin-1).

    >>> _unquote('caf%C3%A9', 'path').encode('latin-1')
    b'caf\\xc3\\xa9'
    >>> _unquote('secret%0D%0AMKD%20x', 'password')
    Traceback (most recent call last):
    ...
    linksync.server.checker.classify.Unavailable: CR, LF or NUL in the FTP password (refused: it would split the FTP command)
    """
    text = urllib.parse.unquote(text, encoding='latin-1')
    if not _COMMAND_BREAKS.isdisjoint(text):
        raise classify.Unavailable(
            'CR, LF or NUL in the FTP %s (refused: it would split the FTP '
            'command)' % what)
    return text


class FTPChecker:
    """Checks ftp URLs under the politeness rules."""

    def __init__(self, clock, politeness, connector, timeout=30.0):
        self.clock = clock
        self.politeness = politeness
        self.connector = connector
        self.timeout = timeout

    @defer.inlineCallbacks
    def check(self, url):
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        if not host:
            raise classify.Unsupported('no host in the URL')
        user = _unquote(parts.username, 'user') if parts.username \
            else 'anonymous'
        password = _unquote(parts.password or '', 'password') \
            if parts.username else ANONYMOUS_PASSWORD
        path = _unquote(parts.path, 'path') or '/'
        slot = yield self.politeness.acquire(host)
        client = []
        try:
            d = self._session(host, parts.port or 21, user, password, path,
                              client, slot)
            result = yield d.addTimeout(
                self.timeout, self.clock, onTimeoutCancel=classify.on_timeout(
                    'no FTP answer within %g s' % self.timeout))
        finally:
            slot.release()
            if client and client[0].transport is not None:
                client[0].transport.loseConnection()
        return result

    @defer.inlineCallbacks
    def _session(self, host, port, user, password, path, client, slot):
        factory = protocol.ClientFactory.forProtocol(
            lambda: ftp.FTPClient(user, password, passive=1))
        factory.noisy = False
        proto = yield self.connector.connect(host, port, factory)
        # The session reached the host: its delay runs from now.
        slot.sent()
        client.append(proto)
        try:
            yield proto.pwd()
        except Exception as e:
            raise _failed(e, 'login refused') from None
        if not path.endswith('/'):
            try:
                yield proto.cwd(path)
            except ftp.CommandFailed:
                reason = yield self._retrieve(proto, path)
                return states.OK, reason
        try:
            yield proto.list('.' if not path.endswith('/') else path,
                             _Probe(defer.Deferred()))
        except Exception as e:
            raise _failed(e, 'cannot list %s' % path) from None
        return states.OK, 'FTP directory listed'

    def _retrieve(self, proto, path):
        started = defer.Deferred()
        d = proto.retrieveFile(path, _Probe(started))

        def finished(result):
            if not started.called:
                started.callback('FTP file retrieved')

        def failed(f):
            if not started.called:
                started.errback(_failed(f.value, 'cannot retrieve %s' % path))
        d.addCallbacks(finished, failed)
        started.addCallback(lambda text: 'FTP ' + text if not
                            text.startswith('FTP') else text)
        return started
