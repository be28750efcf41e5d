"""The checker's timeouts on the injected clock, without any server.

Each timeout is Twisted's Deferred.addTimeout on the checker's clock (a
task.Clock here): at the timeout the work is cancelled and fails with a
TimedOut of its own words; cancelled by its caller, it fails as the
cancellation left it, and its timer is gone.
"""

import pytest
from twisted.internet import defer, task
from twisted.internet.testing import MemoryReactor
from twisted.python import failure

from linksync.server.checker import classify
from linksync.server.checker.connector import Connector
from linksync.server.checker.politeness import Politeness
from linksync.server.checker.schemes.ftp import FTPChecker
from linksync.server.checker.schemes.http import HTTPChecker


class _Allow:
    """A network policy allowing every address."""

    def refusal(self, address):
        return None


class _NeverConnects:
    """A connector whose connections never come (a host that does not
    answer): the Deferreds it gave, in order."""

    def __init__(self):
        self.pending = []

    def connect(self, host, port, factory, tls_creator=None):
        d = defer.Deferred()
        self.pending.append(d)
        return d


@pytest.fixture
def clock():
    return task.Clock()


def _outcome(d):
    outcome = []
    d.addBoth(outcome.append)
    return outcome


def _timed_out(outcome):
    [result] = outcome
    assert isinstance(result, failure.Failure), result
    assert result.check(classify.TimedOut), result
    return result.getErrorMessage()


def test_the_connect_timeout(clock):
    connector = Connector(MemoryReactor(), clock, _Allow(), resolver=object(),
                          connect_timeout=3.0)
    outcome = _outcome(connector.connect('192.0.2.1', 80, factory=None))
    clock.advance(2.9)
    assert outcome == []
    clock.advance(0.1)
    assert _timed_out(outcome) == 'connect timed out after 3 s'
    assert clock.getDelayedCalls() == []


def test_a_connect_cancelled_by_its_caller_is_no_timeout(clock):
    connector = Connector(MemoryReactor(), clock, _Allow(), resolver=object(),
                          connect_timeout=3.0)
    d = connector.connect('192.0.2.1', 80, factory=None)
    outcome = _outcome(d)
    d.cancel()
    [result] = outcome
    assert not result.check(classify.TimedOut), result
    assert clock.getDelayedCalls() == []


def test_the_http_total_timeout(clock):
    politeness = Politeness(clock, per_host_delay=0.0)
    connector = _NeverConnects()
    checker = HTTPChecker(None, clock, politeness, connector, timeout=5.0)
    outcome = _outcome(checker.check('http://web.example/page'))
    clock.advance(4.9)
    assert outcome == []
    clock.advance(0.1)
    # HEAD timed out: GET is asked, within a timeout of its own.
    assert outcome == [] and len(connector.pending) == 2
    clock.advance(5.0)
    assert _timed_out(outcome) == 'no answer to GET within 5 s'
    assert politeness.active == 0
    # A connection made after the timeout is not used.
    connector.pending[0].callback(object())
    connector.pending[1].callback(object())
    assert len(outcome) == 1


def test_the_ftp_total_timeout(clock):
    politeness = Politeness(clock, per_host_delay=0.0)
    connector = _NeverConnects()
    checker = FTPChecker(clock, politeness, connector, timeout=30.0)
    outcome = _outcome(checker.check('ftp://ftp.example/pub/'))
    clock.advance(29.9)
    assert outcome == []
    clock.advance(0.1)
    assert _timed_out(outcome) == 'no FTP answer within 30 s'
    assert politeness.active == 0
    connector.pending[0].callback(object())
    assert len(outcome) == 1
