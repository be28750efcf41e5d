"""The `linksync` command and its subcommands.

Each subcommand is a module of linksync.commands with ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args)`` (returns the exit status).
Exit status: 0 on success, 2 on bad usage, 1 on failure with a one-line
message on stderr naming the problem.
"""

import argparse
import importlib
import sys

from linksync import __version__

#: The subcommands, in the order `linksync --help` lists them.
COMMANDS = [
    # the server and its database
    'serve', 'stats', 'pack', 'purge', 'backup', 'zeo',
    # the syncer
    'sync', 'credential',
    # the checker, once
    'check',
    # the change track and its agents
    'list', 'agent', 'destroy',
    # the client kit
    'client',
]


class CommandError(Exception):
    """A failure the user can act on; printed as one line, exit status 1."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog='linksync',
        description='XML-RPC link monitoring and synchronisation server.')
    parser.add_argument('--version', action='version',
                        version='linksync ' + __version__)
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    subparsers.required = True
    for name in COMMANDS:
        module = importlib.import_module('linksync.commands.' + name)
        sub = subparsers.add_parser(
            name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run, parser=sub)
    return parser


def main(argv=None):
    from linksync.server.admin.operations import OperationError
    from linksync.server.configure import configure
    from linksync.server.options import ConfigError
    from linksync.server.storage import StorageError
    # The composition root first: the subcommands' options list what it
    # registers (agent kinds, operations).
    configure()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except (CommandError, ConfigError, StorageError, OperationError) as e:
        print('linksync: error: %s' % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('linksync: interrupted', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
