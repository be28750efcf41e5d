"""linksync serve: run the server."""

import logging
import sys

from linksync.server import options as config

HELP = 'run the server (XML-RPC API, checker, syncer, notifier)'


def add_arguments(parser):
    config.add_arguments(parser, config.SERVER_OPTIONS)


def start_logging(level, stream=sys.stdout, reactor=None):
    """Send the server's log to `stream` (returns the LogWriter)."""
    from twisted.logger import LogLevel, globalLogBeginner

    from linksync.server.logfile import LogWriter
    try:
        level = LogLevel.levelWithName(level.lower())
    except Exception:
        raise config.ConfigError('unknown log level %r (debug, info, warn, '
                                 'error)' % level) from None
    writer = LogWriter(stream, level, reactor)
    globalLogBeginner.beginLoggingTo([writer], redirectStandardIO=False)
    # Other libraries' standard-library logging: warnings and worse;
    # linksync's own modules that log that way (the database's conflict
    # retries, the generations of the data) at the level asked.
    logging.basicConfig(
        stream=stream, level=logging.WARNING,
        format='%(asctime)s [%(name)s#%(levelname)s] %(message)s',
        datefmt='%Y-%m-%dT%H:%M:%S%z')
    logging.getLogger('linksync').setLevel(
        {'warn': logging.WARNING}.get(level.name, level.name.upper()))
    return writer


def run(args):
    from twisted.internet import reactor

    from linksync.server.secret import secret_for
    from linksync.server.service import LinkSyncService, check_roles
    settings = config.resolve(args, config.SERVER_OPTIONS)
    try:
        check_roles(settings)
    except config.ConfigError as e:
        args.parser.error(str(e))  # bad usage: exit status 2
    roles = settings.role
    secret = secret_for(settings, roles)
    service = LinkSyncService(settings, reactor=reactor, secret=secret)

    def listeners():
        # The API's endpoint, and --metrics-listen's (a worker without
        # the api role may have neither).
        parts = []
        for name in ('api', 'metrics'):
            try:
                part = service.getServiceNamed(name)
            except KeyError:
                continue
            parts.append((part.listening, part.endpoint))
        return parts
    return run_service(service, reactor, settings.log_level, listeners)


def run_service(service, reactor, log_level, listeners, ready=None):
    """Run `service` until the process is told to stop; the exit status.

    `listeners()` (called once the service started) gives [(Deferred,
    endpoint)]: each Deferred fires when the service listens on that
    endpoint; once all did, `ready()` is called. A service that cannot
    start, or cannot listen on one of them, ends the process with status
    1 and a one-line message.
    """
    from twisted.internet import defer
    writer = start_logging(log_level, reactor=reactor)
    status = {'code': 0}

    def fail(message):
        print('linksync: error: %s' % message, file=sys.stderr, flush=True)
        if not status['code']:          # stop once
            status['code'] = 1
            reactor.stop()

    def start():
        try:
            service.startService()
        except Exception as e:
            fail(e)
            return
        waiting = [d.addErrback(cannot_listen, endpoint)
                   for d, endpoint in listeners()]
        if ready is not None:
            defer.gatherResults(waiting).addCallback(
                lambda _: None if status['code'] else ready())

    def cannot_listen(failure, endpoint):
        fail('cannot listen on %s: %s' % (endpoint, failure.getErrorMessage()))

    def stop():
        if service.running:
            return service.stopService()

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger('before', 'shutdown', stop)
    reactor.addSystemEventTrigger('after', 'shutdown', writer.close)
    reactor.run()
    writer.close()
    return status['code']
