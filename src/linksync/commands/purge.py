"""linksync purge: remove the URLs no client references any more."""

from linksync.server import options as config
from linksync.server.admin import operations as admin

HELP = 'remove the URLs no client has referenced for a grace period'

#: The default grace period: a week, as --orphan-grace (a client that
#: dropped a link by mistake, or is being rebuilt, has that long to
#: register it again and keep its history).
DEFAULT_GRACE = 7 * 86400.0


def add_arguments(parser):
    config.add_arguments(parser, config.COMMAND_OPTIONS)
    parser.add_argument('--older-than', type=config.seconds,
                        default=DEFAULT_GRACE, metavar='SECONDS',
                        help='remove URLs orphaned at least this long ago '
                             '(default: %d, a week; 0: every orphan)'
                             % DEFAULT_GRACE)
    parser.add_argument('--dry-run', action='store_true',
                        help='only list what would be removed')


def run(args):
    settings = config.resolve(args, config.COMMAND_OPTIONS)
    result = admin.run(settings, 'purge', float(args.older_than),
                       bool(args.dry_run))
    for url in result['urls']:
        print(url)
    more = result['purged'] - len(result['urls'])
    if more > 0:
        print('... and %d more' % more)
    print('%s %d URL(s) no client has referenced for %s s' % (
        'would remove' if args.dry_run else 'removed', result['purged'],
        '%g' % args.older_than))
    return 0
