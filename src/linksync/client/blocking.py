"""LMSClient: the blocking client of a linksync server.

>>> client = LMSClient('http://127.0.0.1:8080/RPC2', 'fred', 'secret')
...                                                     # doctest: +SKIP
>>> client.register_urls(['http://example.com/'])      # doctest: +SKIP
[]

Every method of PROTOCOL.md is a method here (``register_urls`` for
``registerURLs``, ...; see :class:`~linksync.client.methods.
ProtocolMethods`). Calls have a time limit (`timeout`, seconds); a call
that fails for a reason that may pass (refused connection, cut
connection, time limit, HTTP 502/503/504) is tried again `retries` times,
after `retry_delay` seconds, then twice as long; `sleep` does the waiting
(inject another one in tests). Answers are parsed without DTDs or
entities, and refused past `max_response_bytes`.

One LMSClient keeps one connection open: use one per thread.
"""

import http.client
import socket
import time
import xml.parsers.expat
import xmlrpc.client

from defusedxml.xmlrpc import DefusedExpatParser
from zope.interface import implementer

from linksync import __version__
from linksync.client.errors import (ServerUnreachable,
                                    UnexpectedAnswer, fault_error,
                                    status_error)
from linksync.client.methods import ProtocolMethods
from linksync.client.interfaces import ILMSClient

DEFAULT_TIMEOUT = 60
DEFAULT_RETRIES = 2
DEFAULT_RETRY_DELAY = 1.0
DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024
USER_AGENT = 'linksync/%s (client kit)' % __version__


class _TooLarge(Exception):
    pass


class _Limits:
    """What both transports add: a time limit, a defused parser, a size
    limit on answers."""

    def __init__(self, timeout, max_response_bytes):
        super().__init__(use_builtin_types=True)
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self.user_agent = USER_AGENT

    def make_connection(self, host):
        connection = super().make_connection(host)
        connection.timeout = self.timeout
        return connection

    def getparser(self):
        unmarshaller = xmlrpc.client.Unmarshaller(use_builtin_types=True)
        return DefusedExpatParser(unmarshaller, forbid_dtd=True), unmarshaller

    def parse_response(self, response):
        if response.getheader('Content-Encoding', '') == 'gzip':
            stream = xmlrpc.client.GzipDecodedResponse(response)
        else:
            stream = response
        parser, unmarshaller = self.getparser()
        received = 0
        while True:
            data = stream.read(65536)
            if not data:
                break
            received += len(data)
            if received > self.max_response_bytes:
                raise _TooLarge()
            parser.feed(data)
        if stream is not response:
            stream.close()
        parser.close()
        return unmarshaller.close()


class _Transport(_Limits, xmlrpc.client.Transport):
    pass


class _SafeTransport(_Limits, xmlrpc.client.SafeTransport):
    pass


@implementer(ILMSClient)
class LMSClient(ProtocolMethods):
    """A blocking client of the linksync server at `url` (its XML-RPC
    URL), for one client id and password."""

    def __init__(self, url, client_id, password, timeout=DEFAULT_TIMEOUT,
                 retries=DEFAULT_RETRIES, retry_delay=DEFAULT_RETRY_DELAY,
                 batch_size=None, sleep=time.sleep,
                 max_response_bytes=DEFAULT_MAX_RESPONSE_BYTES):
        super().__init__(url, client_id, password, retries, retry_delay,
                         batch_size)
        self.sleep = sleep
        transport = (_SafeTransport if url.startswith('https://')
                     else _Transport)(timeout, max_response_bytes)
        self._proxy = xmlrpc.client.ServerProxy(url, transport=transport,
                                                allow_none=False)

    def close(self):
        """Close the connection (a later call opens another)."""
        self._proxy('close')()

    def _call(self, call):
        attempt = 0
        while True:
            try:
                return self._once(call)
            except ServerUnreachable as e:
                delay = self._delay(call, e, attempt)
                if delay is None:
                    raise
            self.sleep(delay)
            attempt += 1

    def _once(self, call):
        method = call.method
        try:
            return getattr(self._proxy, method)(*call.args)
        except xmlrpc.client.Fault as f:
            raise fault_error(self.url, method, f.faultCode,
                              f.faultString) from None
        except xmlrpc.client.ProtocolError as e:
            raise status_error(self.url, method, e.errcode,
                               self.client_id) from None
        except ConnectionRefusedError:
            raise ServerUnreachable('cannot reach %s: connection refused'
                                    % self.url, refused=True) from None
        except socket.timeout:
            raise ServerUnreachable('%s did not answer %s within %s seconds'
                                    % (self.url, method,
                                       self._proxy('transport').timeout)) \
                from None
        except _TooLarge:
            raise UnexpectedAnswer('%s answered %s with more than %d bytes'
                                   % (self.url, method, self._proxy(
                                       'transport').max_response_bytes)) \
                from None
        except (OSError, http.client.HTTPException) as e:
            raise ServerUnreachable('cannot reach %s: %s' % (
                self.url, e or type(e).__name__)) from None
        except (xml.parsers.expat.ExpatError, xmlrpc.client.ResponseError,
                ValueError, TypeError) as e:
            raise UnexpectedAnswer('%s answered %s with something that is '
                                   'not XML-RPC: %s' % (self.url, method,
                                                        e)) from None
