"""linksync credential: set the password presented to a client's callback."""

import getpass
import sys

from linksync import cli
from linksync.server import options as config
from linksync.server.admin import operations as admin
from linksync.server import syncer  # noqa: F401 (declares the operation)

HELP = ("set the password the server presents when it calls a client's "
        "callback (read from standard input)")


def add_arguments(parser):
    parser.add_argument('client', metavar='CLIENT', help='the client id')
    config.add_arguments(parser, config.COMMAND_OPTIONS)


def read_password(stdin=None):
    stdin = stdin or sys.stdin
    if stdin.isatty():
        password = getpass.getpass('callback password: ')
    else:
        password = stdin.readline().rstrip('\r\n')
    if not password:
        raise cli.CommandError('no password given on standard input')
    return password


def run(args):
    settings = config.resolve(args, config.COMMAND_OPTIONS)
    password = read_password()
    admin.run(settings, 'callback_credential', args.client, password)
    print('the callback credential of %s is set' % args.client)
    return 0
