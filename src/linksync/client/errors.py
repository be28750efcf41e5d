"""The errors of the client kit: one class per thing a caller can act on."""

from linksync.xmlrpc.faults import CONFLICT, UNAUTHORIZED


class LMSError(Exception):
    """A call to the linksync server failed; the message says how."""

    #: True when the same call may work later (the Synchronizer, and the
    #: clients' own retries, try again).
    transient = False


class BadCredentials(LMSError):
    """The server refused the client id and password (or the secret)."""


class ServerUnreachable(LMSError):
    """No answer from the server: refused, cut, timed out, or an HTTP
    status saying "try later" (502, 503, 504)."""

    transient = True

    def __init__(self, message, refused=False):
        super().__init__(message)
        #: True when the connection was refused: the call was not sent.
        self.refused = refused


class ServerFault(LMSError):
    """The server answered with an XML-RPC Fault (`code`, `text`)."""

    def __init__(self, message, code, text):
        super().__init__(message)
        self.code = code
        self.text = text


class ClientExists(ServerFault):
    """registerClient: a client with that id is registered already."""


class UnexpectedAnswer(LMSError):
    """The server answered something that is not what the protocol says."""


#: HTTP statuses meaning "try again later".
TRANSIENT_STATUSES = (502, 503, 504)


def fault_error(url, method, code, text):
    """The exception for a Fault answered by the server."""
    if code == UNAUTHORIZED:
        return BadCredentials('%s refused the credentials in %s: %s' % (
            url, method, text))
    cls = ClientExists if code == CONFLICT else ServerFault
    return cls('%s answered %s with fault %s: %s' % (url, method, code, text),
               code, text)


def status_error(url, method, code, client_id):
    """The exception for an HTTP status other than 200."""
    if code == 401:
        return BadCredentials(
            '%s refused the credentials of client %r (HTTP 401): wrong id, '
            'password or secret' % (url, client_id))
    if code in TRANSIENT_STATUSES:
        return ServerUnreachable('%s is not available (HTTP %d, in %s)' % (
            url, code, method))
    return LMSError('%s answered %s with HTTP status %d' % (url, method,
                                                             code))
