"""linksync check: check URLs once and print their state (no database).

For people debugging a link: the same checker as the server's, with the
same options (politeness, timeouts, --allow-network, ...), on the URLs
given; one line per URL: the URL, its state and the reason, separated by
tabs. Exit status 0 when every URL is ok, 1 otherwise.
"""

import sys

from linksync import urlnorm
from linksync.server import options as config

HELP = 'check URLs once and print their state and reason (no database)'


def add_arguments(parser):
    config.add_arguments(parser, config.CHECKER_OPTIONS)
    parser.add_argument('urls', nargs='+', metavar='URL',
                        help='URLs to check')


def run(args, out=sys.stdout):
    from twisted.internet import defer, reactor

    from linksync.server.checker.check import Checker
    from linksync.cli import CommandError
    settings = config.resolve(args, config.CHECKER_OPTIONS)
    urls = []
    for text in args.urls:
        try:
            urls.append((text, urlnorm.normalize(text)))
        except urlnorm.InvalidURL as e:
            raise CommandError('invalid URL: %s' % e) from None
    try:
        checker = Checker(settings, reactor)
    except (OSError, ValueError) as e:
        raise CommandError(str(e)) from None
    results = {}

    @defer.inlineCallbacks
    def go():
        try:
            found = yield defer.gatherResults(
                [checker.check(norm) for _, norm in urls])
            results.update(zip(range(len(urls)), found))
            yield checker.close()
        finally:
            reactor.stop()
    reactor.callWhenRunning(go)
    reactor.run(installSignalHandlers=True)
    all_ok = True
    for i, (text, _) in enumerate(urls):
        state, reason = results[i]
        all_ok = all_ok and state == 'ok'
        print('%s\t%s\t%s' % (text, state, reason), file=out)
    return 0 if all_ok else 1
