"""linksync stats: what the database holds."""

from linksync.server import options as config
from linksync.server.admin import operations as admin

HELP = 'print counts of what the database holds'


def add_arguments(parser):
    config.add_arguments(parser, config.COMMAND_OPTIONS)


def run(args):
    settings = config.resolve(args, config.COMMAND_OPTIONS)
    counts = admin.run(settings, 'stats')
    for key in sorted(counts):
        print('%s: %s' % (key, counts[key]))
    return 0
