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
    if roles is not None and 'api' not in roles:
        listening = None  # a checker or syncer worker serves no API
    else:
        listening = lambda: service.api.listening  # noqa: E731
    return run_service(service, reactor, settings.log_level,
                       settings.listen, listening)


def run_service(service, reactor, log_level, listen, listening,
                ready=None):
    """Run `service` until the process is told to stop; the exit status.

    `listening()` (called once the service started) is a Deferred firing
    when it listens, then `ready` is called with its result (`listening`
    None: the service listens on nothing); a service that cannot start or
    listen ends the process with status 1 and a one-line message.
    """
    writer = start_logging(log_level, reactor=reactor)
    status = {'code': 0}

    def fail(message):
        print('linksync: error: %s' % message, file=sys.stderr, flush=True)
        status['code'] = 1
        reactor.stop()

    def start():
        try:
            service.startService()
        except Exception as e:
            fail(e)
            return
        if listening is None:
            return  # nothing to listen on
        listening().addCallbacks(ready or (lambda _: None), lambda f: fail(
            'cannot listen on %s: %s' % (listen, f.getErrorMessage())))

    def stop():
        if service.running:
            return service.stopService()

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger('before', 'shutdown', stop)
    reactor.addSystemEventTrigger('after', 'shutdown', writer.close)
    reactor.run()
    writer.close()
    return status['code']
