"""linksync list: the records of the change track, newest first."""

from linksync.server import options as config
from linksync.server.admin import agents as agentops
from linksync.agents.errors import UnknownAgent
from linksync.cli import CommandError

HELP = 'list the change track, newest first (bucket, then record)'


def add_arguments(parser):
    parser.add_argument('--from', dest='from_pos', type=int, metavar='N',
                        help='only the buckets after N (the interval is '
                             ']from, to])')
    parser.add_argument('--to', dest='to_pos', type=int, metavar='N',
                        help='only the buckets up to N, included')
    parser.add_argument('--pointer', metavar='AGENT',
                        help='only what AGENT has not consumed yet')
    config.add_arguments(parser, config.COMMAND_OPTIONS)


def listing(app, manager, from_pos, to_pos, pointer, write=print):
    """Write one line per record; returns how many."""
    if pointer is not None:
        from_pos = manager.pointer(pointer)
    if not any(len(bucket) for bucket in manager.track.values()):
        raise CommandError('the track is empty')
    count = 0
    for position, record in manager.track.iterate(from_pos, to_pos):
        write('%d %r' % (position, record))
        count += 1
    return count


def run(args):
    if args.pointer is not None and args.from_pos is not None:
        args.parser.error('give --pointer or --from, not both')
    settings = config.resolve(args, config.COMMAND_OPTIONS)
    try:
        agentops.read_only(settings, listing, args.from_pos, args.to_pos,
                           args.pointer)
    except (agentops.NoTrack, UnknownAgent) as e:
        raise CommandError(str(e)) from None
    return 0
