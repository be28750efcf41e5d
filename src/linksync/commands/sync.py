"""linksync sync: synchronise clients' link databases now."""

from linksync.server import options as config
from linksync.server.admin import operations as admin
from linksync.server import syncer  # noqa: F401 (declares the operation)

HELP = "synchronise clients' link databases now (forced, or those due)"

#: The options of the syncer that matter when no server runs.
OPTIONS = config.CALLING_OPTIONS + [
    o for o in config.SYNC_OPTIONS if o.dest != 'sync_tick']


def add_arguments(parser):
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        '--force', metavar='CLIENT', action='append', dest='clients',
        help='synchronise this client now, due or not (may be repeated)')
    which.add_argument(
        '--all', action='store_true',
        help='synchronise every client that is due now')
    config.add_arguments(parser, OPTIONS)


def run(args):
    settings = config.resolve(args, OPTIONS)
    # Through the running server when it holds the database (its syncer
    # does the work), else in this process.
    results = admin.run(settings, 'sync', args.clients or [])
    if not results:
        print('no client is due')
    for result in results:
        if result['status'] == 'ok':
            invalid = ' (%d invalid)' % result['invalid'] \
                if result['invalid'] else ''
            print('%s: ok: %d links%s, %d registered, %d unregistered, %d '
                  'states sent' % (result['client'], result['links'],
                                   invalid, result['registered'],
                                   result['unregistered'], result['states']))
        else:
            print('%s: %s: %s' % (result['client'], result['status'],
                                  result['error']))
    return 1 if any(r['status'] == 'failed' for r in results) else 0
