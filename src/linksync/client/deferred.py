"""TwistedLMSClient: the client of a linksync server for Twisted programs.

The same methods as :class:`~linksync.client.blocking.LMSClient`, each
returning a Deferred. Calls go through :class:`linksync.xmlrpc.proxy.
CallbackProxy`, the XML-RPC client the server itself uses: time limits,
answers parsed as they arrive without DTDs or entities and refused past a
size, kept-alive connections (one found closed is replaced at once). A
call failing for a reason that may pass is tried again `retries` times,
after `retry_delay` seconds, then twice as long, on the injected `clock`.

Arguments of the wrong type raise TypeError at once, before anything is
sent. Use it from the reactor thread.
"""

from twisted.internet import defer, task
from zope.interface import implementer

from linksync.xmlrpc import proxy as callback
from linksync.client.blocking import (DEFAULT_MAX_RESPONSE_BYTES,
                                      DEFAULT_RETRIES, DEFAULT_RETRY_DELAY,
                                      DEFAULT_TIMEOUT, USER_AGENT)
from linksync.client.errors import (ServerUnreachable, UnexpectedAnswer,
                                    fault_error, status_error)
from linksync.client.methods import ProtocolMethods
from linksync.client.interfaces import ILMSClient

DEFAULT_CONNECT_TIMEOUT = 30


@implementer(ILMSClient)
class TwistedLMSClient(ProtocolMethods):
    """A client of the linksync server at `url` returning Deferreds."""

    def __init__(self, url, client_id, password, reactor=None, clock=None,
                 timeout=DEFAULT_TIMEOUT,
                 connect_timeout=DEFAULT_CONNECT_TIMEOUT,
                 retries=DEFAULT_RETRIES, retry_delay=DEFAULT_RETRY_DELAY,
                 batch_size=None,
                 max_response_bytes=DEFAULT_MAX_RESPONSE_BYTES):
        super().__init__(url, client_id, password, retries, retry_delay,
                         batch_size)
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.pool = callback.make_pool(reactor)
        self.proxy = callback.CallbackProxy(
            url, reactor,
            agent=callback.make_agent(reactor, connect_timeout,
                                      pool=self.pool),
            timeout=timeout, max_response_bytes=max_response_bytes,
            user_agent=USER_AGENT)

    def close(self):
        """Close the kept-alive connections; a Deferred."""
        return self.pool.closeCachedConnections()

    @defer.inlineCallbacks
    def _call(self, call):
        attempt = 0
        while True:
            try:
                result = yield self._once(call)
                return result
            except ServerUnreachable as e:
                delay = self._delay(call, e, attempt)
                if delay is None:
                    raise
            yield task.deferLater(self.clock, delay, lambda: None)
            attempt += 1

    def _once(self, call):
        d = self.proxy.call(call.method, *call.args)
        d.addErrback(self._translate, call.method)
        return d

    def _translate(self, failure, method):
        error = failure.value
        if isinstance(error, callback.CallbackFault):
            raise fault_error(self.url, method, error.fault.faultCode,
                              error.fault.faultString)
        if isinstance(error, callback.CallbackHTTPError):
            raise status_error(self.url, method, error.code, self.client_id)
        if isinstance(error, callback.CallbackConnectionError):
            raise ServerUnreachable('cannot reach %s' % error,
                                    refused=error.refused)
        if isinstance(error, callback.CallbackError):
            raise UnexpectedAnswer(str(error))
        return failure
