"""Deadlines on the injected clock: cancel work that takes too long.

>>> from twisted.internet import defer, task
>>> clock = task.Clock()
>>> d = within(clock, defer.Deferred(), 5, lambda: ValueError('too slow'))
>>> clock.advance(5)
>>> d.addErrback(lambda f: f.getErrorMessage()).result
'too slow'
"""

from twisted.python.failure import Failure


def within(clock, d, seconds, timed_out):
    """Cancel `d` after `seconds` of `clock`; it then fails with
    ``timed_out()`` (an exception) instead of the cancellation."""
    expired = []

    def expire():
        expired.append(True)
        d.cancel()
    timer = clock.callLater(seconds, expire)

    def done(result):
        if timer.active():
            timer.cancel()
        if expired and isinstance(result, Failure):
            raise timed_out()
        return result
    return d.addBoth(done)
