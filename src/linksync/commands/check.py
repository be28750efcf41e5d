"""linksync check: check URLs once and print their state (no database).

For people debugging a link: the same checker as the server's, with the
same options (politeness, timeouts, --allow-network, ...), on the URLs
given; one line per URL: the URL, its state and the reason, separated by
tabs. Exit status 0 when every URL is ok, 1 otherwise; an invalid URL is
reported unavailable and the others are still checked. A host that asks to
be left alone (429, or 503 with Retry-After) for longer than
:data:`MAX_WAIT` seconds is not waited for: its other URLs are reported
"temporary unavailable" at once with the reason "host asked to wait N s"
(the server's checker waits and checks them later). Ctrl-C or SIGTERM
ends the run at once with status 130 or 143: the URLs checked by then are
printed, the others are not.
"""

import signal
import sys

from linksync import states, urlnorm
from linksync.server import options as config

HELP = 'check URLs once and print their state and reason (no database)'

#: Longest pause asked by a host (Retry-After) the command waits for.
MAX_WAIT = 5.0


def add_arguments(parser):
    config.add_arguments(parser, config.CHECKER_OPTIONS)
    parser.add_argument('urls', nargs='+', metavar='URL',
                        help='URLs to check')


def run(args, out=sys.stdout):
    from twisted.internet import defer, reactor

    from linksync.server.checker.check import Checker
    from linksync.cli import CommandError
    settings = config.resolve(args, config.CHECKER_OPTIONS)
    results = {}
    urls = []
    for i, text in enumerate(args.urls):
        try:
            urls.append((i, urlnorm.normalize(text)))
        except urlnorm.InvalidURL as e:
            # One bad URL does not keep the others from being checked.
            results[i] = (states.UNAVAILABLE, 'invalid URL: %s' % e)
    try:
        checker = Checker(settings, reactor, max_wait=MAX_WAIT)
    except (OSError, ValueError) as e:
        raise CommandError(str(e)) from None
    interrupted = []

    def stop():
        if reactor.running:
            reactor.stop()

    def on_signal(signum, frame):
        # Twisted's own handlers would stop the reactor under the checks;
        # the checks that did not finish get no verdict.
        if not interrupted:
            interrupted.append(signum)
            reactor.callFromThread(stop)

    @defer.inlineCallbacks
    def go():
        try:
            yield defer.gatherResults([
                checker.check(norm).addCallback(_store(results, i))
                for i, norm in urls])
            yield checker.close()
        finally:
            stop()
    previous = {s: signal.signal(s, on_signal)
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        reactor.callWhenRunning(go)
        reactor.run(installSignalHandlers=False)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    all_ok = True
    for i, text in enumerate(args.urls):
        if i not in results:
            continue
        state, reason = results[i]
        all_ok = all_ok and state == states.OK
        print('%s\t%s\t%s' % (text, state, reason), file=out)
    if interrupted:
        return 128 + interrupted[0]
    return 0 if all_ok else 1


def _store(results, i):
    def store(result):
        results[i] = result
    return store
