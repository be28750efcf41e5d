"""linksync backup: a consistent copy of the database, while it runs."""

import os

from linksync.server import options as config, storage
from linksync.cli import CommandError

HELP = 'write a consistent copy of the database to a new FileStorage'


def add_arguments(parser):
    config.add_arguments(parser, config.STORAGE_OPTIONS)
    parser.add_argument('destination', metavar='FILE',
                        help='the backup FileStorage to create (must not '
                             'exist)')


def backup(source, destination):
    """Copy the committed transactions of `source` into a new FileStorage.

    Returns the number of transactions copied. The source is read, never
    written; a FileStorage opened read-only stops at the end it had when
    opened, so the copy is consistent even while a server appends to it.
    """
    from ZODB.FileStorage import FileStorage
    if os.path.exists(destination):
        raise CommandError('%s exists already; give a new file' %
                           destination)
    partial = destination + '.partial'
    target = FileStorage(partial, create=True)
    try:
        target.copyTransactionsFrom(source)
        count = sum(1 for _ in target.iterator())
    except BaseException:
        target.close()
        for suffix in ('', '.index', '.lock', '.tmp'):
            if os.path.exists(partial + suffix):
                os.remove(partial + suffix)
        raise
    target.close()
    os.rename(partial, destination)
    if os.path.exists(partial + '.index'):
        os.rename(partial + '.index', destination + '.index')
    for suffix in ('.lock', '.tmp'):
        if os.path.exists(partial + suffix):
            os.remove(partial + suffix)
    return count


def run(args):
    settings = config.resolve(args, config.STORAGE_OPTIONS)
    source = storage.open_storage(settings.data, settings.zeo,
                                  settings.storage, read_only=True)
    try:
        count = backup(source, args.destination)
    finally:
        source.close()
    print('backup: %d transactions copied to %s' % (count,
                                                     args.destination))
    return 0
