"""linksync zeo: serve the database to several processes (ZEO)."""

import os

from linksync.server import options as config, storage
from linksync.cli import CommandError

HELP = 'run a ZEO server for the database, for scale-out'


def add_arguments(parser):
    config.add_arguments(parser, [
        o for o in config.STORAGE_OPTIONS if o.dest == 'data'])
    parser.add_argument('--listen', default='127.0.0.1:8100',
                        metavar='HOST:PORT',
                        help='address the ZEO server listens on (default: '
                             '127.0.0.1:8100)')


def run(args):
    try:
        from ZEO import runzeo
    except ImportError:
        raise CommandError('ZEO is not installed (pip install '
                           'linksync[zeo])') from None
    settings = config.resolve(args, [
        o for o in config.STORAGE_OPTIONS if o.dest == 'data'])
    try:
        host, port = storage.parse_hostport(args.listen)
    except ValueError as e:
        raise CommandError(str(e)) from None
    data = settings.data or 'var'
    os.makedirs(data, exist_ok=True)
    path = os.path.join(data, storage.FILESTORAGE_NAME)
    options = runzeo.ZEOOptions()
    options.realize(['-a', '%s:%d' % (host, port), '-f', path])
    server = runzeo.ZEOServer(options)
    print('linksync: ZEO server for %s on %s:%d' % (path, host, port),
          flush=True)
    try:
        server.main()
    except SystemExit as e:
        if e.code not in (0, None):
            raise CommandError('the ZEO server stopped: %s' % e.code) \
                from None
    return 0
