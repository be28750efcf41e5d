"""linksync pack: drop old object revisions from the database."""

from linksync.server import options as config
from linksync.server.admin import operations as admin

HELP = 'pack the database, keeping the history of the last N days'


def add_arguments(parser):
    config.add_arguments(parser, config.COMMAND_OPTIONS)
    parser.add_argument('--days', type=config.seconds, default=0,
                        metavar='N',
                        help='keep the revisions of the last N days (may be '
                             'fractional; default: 0, keep only the current'
                             ' state)')
    parser.add_argument('--history-days', type=float, default=90.0,
                        metavar='N',
                        help="first forget the URLs' check results and "
                             'state changes older than N days (default: '
                             '90)')


def run(args):
    settings = config.resolve(args, config.COMMAND_OPTIONS)
    result = admin.run(settings, 'pack', float(args.days),
                       float(args.history_days))
    print('packed: %s' % result)
    return 0
