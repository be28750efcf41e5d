"""linksync serve: run the server."""

import logging
import sys

from linksync import config

HELP = 'run the server (XML-RPC API, checker, syncer, notifier)'


def add_arguments(parser):
    config.add_arguments(parser, config.SERVER_OPTIONS)


def start_logging(level, stream=sys.stdout):
    from twisted.logger import (FilteringLogObserver, LogLevel,
                                LogLevelFilterPredicate, globalLogBeginner,
                                textFileLogObserver)
    try:
        level = LogLevel.levelWithName(level.lower())
    except Exception:
        raise config.ConfigError('unknown log level %r (debug, info, warn, '
                                 'error)' % level) from None
    predicate = LogLevelFilterPredicate(defaultLogLevel=level)
    observer = FilteringLogObserver(textFileLogObserver(stream), [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    logging.basicConfig(stream=stream, level=logging.WARNING)


def run(args):
    from twisted.internet import reactor

    from linksync.server import LinkSyncService, load_secret
    settings = config.resolve(args, config.SERVER_OPTIONS)
    secret = load_secret(settings)
    service = LinkSyncService(settings, reactor=reactor, secret=secret)
    start_logging(settings.log_level)
    status = {'code': 0}

    def start():
        try:
            service.startService()
        except Exception as e:
            print('linksync: error: %s' % e, file=sys.stderr)
            status['code'] = 1
            reactor.stop()
            return
        api = service.api
        api.listening.addErrback(lambda f: (
            print('linksync: error: cannot listen on %s: %s' % (
                settings.listen, f.getErrorMessage()), file=sys.stderr),
            status.update(code=1), reactor.stop()))

    def stop():
        if service.running:
            return service.stopService()

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger('before', 'shutdown', stop)
    reactor.run()
    return status['code']
