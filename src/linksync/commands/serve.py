"""linksync serve: run the server."""

import logging
import sys

from linksync import config

HELP = 'run the server (XML-RPC API, checker, syncer, notifier)'


def add_arguments(parser):
    config.add_arguments(parser, config.SERVER_OPTIONS)


def start_logging(level, stream=sys.stdout, reactor=None):
    """Send the server's log to `stream` (returns the LogWriter)."""
    from twisted.logger import LogLevel, globalLogBeginner

    from linksync.logfile import LogWriter
    try:
        level = LogLevel.levelWithName(level.lower())
    except Exception:
        raise config.ConfigError('unknown log level %r (debug, info, warn, '
                                 'error)' % level) from None
    writer = LogWriter(stream, level, reactor)
    globalLogBeginner.beginLoggingTo([writer], redirectStandardIO=False)
    logging.basicConfig(stream=stream, level=logging.WARNING)
    return writer


def run(args):
    from twisted.internet import reactor

    from linksync.server import LinkSyncService, check_roles, secret_for
    settings = config.resolve(args, config.SERVER_OPTIONS)
    try:
        check_roles(settings)
    except config.ConfigError as e:
        args.parser.error(str(e))  # bad usage: exit status 2
    roles = settings.role
    secret = secret_for(settings, roles)
    service = LinkSyncService(settings, reactor=reactor, secret=secret)
    writer = start_logging(settings.log_level, reactor=reactor)
    status = {'code': 0}

    def start():
        try:
            service.startService()
        except Exception as e:
            print('linksync: error: %s' % e, file=sys.stderr)
            status['code'] = 1
            reactor.stop()
            return
        # The API's endpoint, and --metrics-listen's: failing to listen on
        # either ends the process.
        for name in ('api', 'metrics'):
            try:
                part = service.getServiceNamed(name)
            except KeyError:
                continue
            part.listening.addErrback(cannot_listen, part.endpoint)

    def cannot_listen(failure, endpoint):
        print('linksync: error: cannot listen on %s: %s' % (
            endpoint, failure.getErrorMessage()), file=sys.stderr)
        if not status['code']:          # stop once
            status.update(code=1)
            reactor.stop()

    def stop():
        if service.running:
            return service.stopService()

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger('before', 'shutdown', stop)
    reactor.addSystemEventTrigger('after', 'shutdown', writer.close)
    reactor.run()
    writer.close()
    return status['code']
