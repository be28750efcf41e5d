"""The methods of PROTOCOL.md, written once for both client flavours.

Each method is a generator: it checks its arguments, yields the XML-RPC
calls it needs (:class:`Call`: several for a long list of URLs, sent in
batches) and checks and converts what they answer. A flavour runs it:
:class:`~linksync.client.blocking.LMSClient` makes each call and waits,
:class:`~linksync.client.deferred.TwistedLMSClient` chains Deferreds.
Both give the same results and raise the same errors
(:mod:`linksync.client.errors`).
"""

import calendar
import collections
import functools
import time

from twisted.internet import defer

from linksync.client.errors import UnexpectedAnswer

#: URLs per registerURLs, unregisterURLs and getURLStates call.
BATCH_SIZE = 1000

#: A state the server knows: [url, state, reason].
URLState = collections.namedtuple('URLState', 'url state reason')
#: getURLStates: the state and the time of the last check (epoch seconds,
#: None when never checked).
URLStatus = collections.namedtuple('URLStatus',
                                   'url state reason last_check')


class Call:
    """One XML-RPC call a method needs.

    `retry`: 'always' when the call may be repeated after any transient
    failure (every method but registerClient), 'refused' when only a
    refused connection (the call was not sent) may be tried again.
    """

    __slots__ = ('method', 'args', 'retry')

    def __init__(self, method, *args, retry='always'):
        self.method = method
        self.args = args
        self.retry = retry

    def __repr__(self):
        return '<Call %s>' % self.method


def protocol_method(func):
    """Make a generator of Calls a method of the flavour (self._run)."""
    @functools.wraps(func)
    def method(self, *args, **kw):
        return self._run(func(self, *args, **kw))
    return method


def url_list(urls, method):
    if isinstance(urls, str) or not isinstance(urls, (list, tuple)):
        raise TypeError('%s takes a list of URLs, not %s' % (
            method, type(urls).__name__))
    bad = next((u for u in urls if not isinstance(u, str)), None)
    if bad is not None:
        raise TypeError('%s: a URL must be a string, not %r' % (method, bad))
    return list(urls)


def check_answer(answer, kind, method):
    if not isinstance(answer, kind) or (kind is int and
                                        isinstance(answer, bool)):
        raise UnexpectedAnswer('%s answered %r, not %s' % (
            method, answer, getattr(kind, '__name__', kind)))
    return answer


def _rows(answer, method, width):
    check_answer(answer, list, method)
    for row in answer:
        if not isinstance(row, list) or len(row) != width or \
                not all(isinstance(v, str) for v in row):
            raise UnexpectedAnswer('%s answered a row %r, not %d strings'
                                   % (method, row, width))
    return answer


def parse_time(text):
    """ISO 8601 UTC text ('2011-02-07T12:33:20Z') as epoch seconds;
    None for ''."""
    if not text:
        return None
    try:
        return float(calendar.timegm(time.strptime(text,
                                                   '%Y-%m-%dT%H:%M:%SZ')))
    except ValueError:
        raise UnexpectedAnswer('not an ISO 8601 time: %r' % text) from None


def _batches(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]


class ProtocolMethods:
    """Every method of PROTOCOL.md for one client id; a flavour adds
    `_call(call)`, with its retries."""

    batch_size = BATCH_SIZE

    def __init__(self, url, client_id, password, retries, retry_delay,
                 batch_size=None):
        if not isinstance(url, str) or \
                not url.startswith(('http://', 'https://')):
            raise ValueError('the server URL must be an http:// or '
                             'https:// URL, not %r' % (url,))
        self.url = url
        self.client_id = client_id
        self.password = password
        self.retries = retries
        self.retry_delay = retry_delay
        if batch_size is not None:
            self.batch_size = batch_size

    def __repr__(self):
        return '<%s %s at %s>' % (type(self).__name__, self.client_id,
                                  self.url)

    def _run(self, calls, result=None):
        """Drive a protocol method: make each call it yields (a flavour's
        _call answers at once, or with a Deferred)."""
        while True:
            try:
                call = calls.send(result)
            except StopIteration as stop:
                return stop.value
            result = self._call(call)
            if isinstance(result, defer.Deferred):
                return result.addCallback(
                    lambda answer: self._run(calls, answer))

    def _delay(self, call, error, attempt):
        """Seconds to wait before trying `call` again after `error` (a
        ServerUnreachable) at `attempt` (0 for the first); None when it is
        not tried again (then the message says how often it was)."""
        if attempt < self.retries and (call.retry == 'always' or
                                       error.refused):
            return self.retry_delay * 2 ** attempt
        if attempt:
            error.args = ('%s (tried %d times)' % (error.args[0],
                                                   attempt + 1),)
        return None

    def _auth(self):
        return (self.client_id, self.password)

    @protocol_method
    def register_client(self, secret, callback_url, contact_name,
                        contact_email, generate_password=False):
        """registerClient: register this client with the server's
        management `secret`, with its own password (or, with
        `generate_password`, one the server generates and mails to the
        contact). Returns True; ClientExists when the id is taken."""
        args = [secret, self.client_id, callback_url, contact_name,
                contact_email]
        if not generate_password:
            args.append(self.password)
        for value in args:
            if not isinstance(value, str):
                raise TypeError('registerClient takes strings, not %r'
                                % (value,))
        answer = yield Call('registerClient', *args, retry='refused')
        return check_answer(answer, bool, 'registerClient')

    @protocol_method
    def check_connection(self):
        """checkConnection: the protocol version (2) when the credentials
        are good."""
        answer = yield Call('checkConnection', *self._auth())
        return check_answer(answer, int, 'checkConnection')

    @protocol_method
    def register_urls(self, urls):
        """registerURLs, in batches: [URLState] of the given URLs whose
        state the server knows already (the others are registered)."""
        urls = url_list(urls, 'registerURLs')
        states = []
        for batch in _batches(urls, self.batch_size):
            answer = yield Call('registerURLs', *self._auth(), batch)
            states.extend(URLState(*row) for row in
                          _rows(answer, 'registerURLs', 3))
        return states

    @protocol_method
    def unregister_urls(self, urls):
        """unregisterURLs, in batches (unknown URLs are ignored)."""
        urls = url_list(urls, 'unregisterURLs')
        for batch in _batches(urls, self.batch_size):
            answer = yield Call('unregisterURLs', *self._auth(), batch)
            check_answer(answer, bool, 'unregisterURLs')
        return True

    @protocol_method
    def register_link(self, url):
        """registerLink: the URLState of one URL, or None while unknown."""
        url_list([url], 'registerLink')
        answer = yield Call('registerLink', *self._auth(), url)
        if answer == []:
            return None
        return URLState(*_rows([answer], 'registerLink', 3)[0])

    @protocol_method
    def get_status(self, url):
        """getStatus: the URLState of one URL ('unknown' when unchecked
        or not registered)."""
        url_list([url], 'getStatus')
        answer = yield Call('getStatus', *self._auth(), url)
        return URLState(*_rows([answer], 'getStatus', 3)[0])

    @protocol_method
    def get_url_states(self, urls):
        """getURLStates, in batches: [URLStatus] for the client's URLs
        among `urls`."""
        urls = url_list(urls, 'getURLStates')
        result = []
        for batch in _batches(urls, self.batch_size):
            answer = yield Call('getURLStates', *self._auth(), batch)
            for url, state, reason, checked in _rows(answer,
                                                      'getURLStates', 4):
                result.append(URLStatus(url, state, reason,
                                        parse_time(checked)))
        return result

    @protocol_method
    def get_client_notifications(self):
        """getClientNotifications: True when notifications are on."""
        answer = yield Call('getClientNotifications', *self._auth())
        return check_answer(answer, bool, 'getClientNotifications')

    @protocol_method
    def set_client_notifications(self, enabled):
        """setClientNotifications: switch them on or off."""
        if not isinstance(enabled, bool):
            raise TypeError('setClientNotifications takes True or False')
        answer = yield Call('setClientNotifications', *self._auth(),
                            enabled)
        return check_answer(answer, bool, 'setClientNotifications')

    @protocol_method
    def force_synchronization(self):
        """forceSynchronization: the server synchronises this client's
        link database at its syncer's next tick."""
        answer = yield Call('forceSynchronization', *self._auth())
        return check_answer(answer, bool, 'forceSynchronization')

    @protocol_method
    def get_info_frame_url(self):
        """getInfoFrameURL: the URL of this client's alerts page."""
        answer = yield Call('getInfoFrameURL', *self._auth())
        return check_answer(answer, str, 'getInfoFrameURL')

    @protocol_method
    def list_methods(self):
        """system.listMethods."""
        answer = yield Call('system.listMethods')
        return check_answer(answer, list, 'system.listMethods')

    @protocol_method
    def method_help(self, name):
        """system.methodHelp."""
        answer = yield Call('system.methodHelp', name)
        return check_answer(answer, str, 'system.methodHelp')

    @protocol_method
    def method_signature(self, name):
        """system.methodSignature."""
        answer = yield Call('system.methodSignature', name)
        return check_answer(answer, list, 'system.methodSignature')

    @protocol_method
    def multicall(self, calls):
        """system.multicall: `calls` is a list of (method, args); returns
        the result of each, or the ServerFault it answered."""
        from linksync.client.errors import fault_error
        structs = [{'methodName': name, 'params': list(args)}
                   for name, args in calls]
        answer = yield Call('system.multicall', structs)
        results = []
        for (name, _), item in zip(calls, check_answer(answer, list,
                                                 'system.multicall')):
            if isinstance(item, dict):
                results.append(fault_error(self.url, name,
                                           item.get('faultCode'),
                                           item.get('faultString')))
            else:
                results.append(check_answer(item, list, 'system.multicall')[0])
        return results
