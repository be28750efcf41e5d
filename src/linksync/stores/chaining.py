"""Code that works on plain results and on Deferreds alike.

A store answers at once, or, when it talks to the network with a Twisted
client, with a Deferred. The store and Synchronizer code is written once,
with these two helpers: a plain result goes on at once (and an exception
is raised where it happens), a Deferred goes on when it fires.
"""

from twisted.internet import defer


def chain(func, on_value=None, on_error=None):
    """func(), then on_value(result); on_error(exception) when it fails.

    Returns the final value, or a Deferred of it when func() returned one.
    Without `on_error`, exceptions propagate (raised, or as the failure of
    the Deferred). An exception raised by `on_value` is not given to
    `on_error`.
    """
    try:
        result = func()
    except Exception as e:
        if on_error is None:
            raise
        return on_error(e)
    if isinstance(result, defer.Deferred):
        if on_error is None:
            return result.addCallback(on_value) if on_value else result
        return result.addCallbacks(
            on_value if on_value else (lambda value: value),
            lambda failure: on_error(failure.value))
    return on_value(result) if on_value else result


def each(items, func):
    """func(item) for every item in turn; the list of the results.

    The next item is started when the previous one is done (a Deferred
    fired): returns a list, or a Deferred of it. However many of the
    Deferreds have fired already, the stack does not grow with them.

    >>> each([1, 2], lambda n: n * 10)
    [10, 20]
    >>> found = []
    >>> _ = each(range(10000), defer.succeed).addCallback(found.append)
    >>> len(found[0])
    10000
    """
    iterator = iter(items)
    results = []
    for item in iterator:
        result = func(item)
        if isinstance(result, defer.Deferred):
            return _each_later(result, iterator, func, results)
        results.append(result)
    return results


@defer.inlineCallbacks
def _each_later(pending, iterator, func, results):
    # inlineCallbacks goes on in a loop, not a recursion, past Deferreds
    # that have a result already.
    results.append((yield pending))
    for item in iterator:
        result = func(item)
        if isinstance(result, defer.Deferred):
            result = yield result
        results.append(result)
    return results


def is_deferred(value):
    return isinstance(value, defer.Deferred)
