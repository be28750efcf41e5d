"""linksync destroy: erase the change track and its agents."""

import sys

from linksync.server import options as config
from linksync.server.admin import operations as admin, agents as agentops  # noqa: F401 (operations)
from linksync.cli import CommandError

HELP = 'erase the change track and its agents (asks twice; --yes)'

QUESTIONS = (
    'Erase %s? [y/N] ',
    'Really? Undelivered changes are lost for good. [y/N] ',
)


def add_arguments(parser):
    parser.add_argument('--yes', action='store_true',
                        help='do not ask (for scripts)')
    which = parser.add_mutually_exclusive_group()
    which.add_argument('--agents-only', action='store_true',
                       help='erase the agents only (the client notifiers '
                            'are recreated at the open bucket)')
    which.add_argument('--track-only', action='store_true',
                       help='erase the records only; the agents stay')
    config.add_arguments(parser, config.COMMAND_OPTIONS)


def confirm(what, ask=input):
    """True when the user says yes twice."""
    for question in QUESTIONS:
        try:
            answer = ask(question % what if '%s' in question else question)
        except EOFError:
            return False
        if answer.strip().lower() not in ('y', 'yes'):
            return False
    return True


def run(args):
    settings = config.resolve(args, config.COMMAND_OPTIONS)
    what = 'the agents' if args.agents_only else \
        'the records of the change track' if args.track_only else \
        'the change track and all its agents'
    if not args.yes and not confirm(what):
        raise CommandError('not confirmed: nothing was erased (--yes '
                           'confirms)')
    result = admin.run(settings, 'track_reset', bool(args.agents_only),
                       bool(args.track_only))
    print('erased %s; %d client notifier agent(s) recreated' % (
        what, result['notifiers_recreated']), file=sys.stdout)
    return 0
