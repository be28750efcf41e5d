"""linksync agent: list, add, remove, run, simulate and export agents."""

import os

from linksync.server import options as config
from linksync.server.admin import operations as admin, agents as agentops
from linksync.agents.agent import agent_kinds
from linksync.agents.errors import UnknownAgent
from linksync.agents.reduction import reduce_records
from linksync.cli import CommandError

HELP = 'manage the agents of the change track (list, add, remove, run, ' \
       'simulate, export)'


def _kind_options():
    """{option name: (type, help)} of every kind, for `agent add`."""
    options = {}
    for kind, cls in sorted(agent_kinds().items()):
        for name, (type_, help) in cls.options.items():
            options.setdefault(name, (type_, '%s: %s' % (kind, help)))
    return options


def add_arguments(parser):
    actions = parser.add_subparsers(dest='action', metavar='ACTION')
    actions.required = True

    def action(name, help):
        sub = actions.add_parser(name, help=help, description=help)
        config.add_arguments(sub, config.CALLING_OPTIONS)
        sub.set_defaults(parser=sub)
        return sub

    action('list', 'list the agents, their pointers and what they have '
                   'pending')
    add = action('add', 'add an agent; it starts at the open bucket')
    add.add_argument('kind', metavar='KIND',
                     help='one of: ' + ', '.join(agentops.creatable_kinds()))
    add.add_argument('name', metavar='NAME')
    add.add_argument('--description', default=None, metavar='TEXT')
    add.add_argument('--interval', type=config.seconds, metavar='SECONDS',
                     help='seconds between runs (default: the server\'s '
                          '--notify-interval)')
    for name, (type_, help) in sorted(_kind_options().items()):
        add.add_argument('--' + name.replace('_', '-'), dest='opt_' + name,
                         type=type_, help=help,
                         metavar=name.upper().replace('_', '-'))
    for name, help in (
            ('remove', 'remove an agent and its pointer'),
            ('run', 'run an agent now (send what it has pending)'),
            ('simulate', 'print what an agent would send, sending nothing'),
            ('export', 'send everything to an agent\'s consumer (a full '
                       'initial export), then follow the track from '
                       'there')):
        action(name, help).add_argument('name', metavar='NAME')


def run(args):
    settings = config.resolve(args, config.CALLING_OPTIONS)
    try:
        return ACTIONS[args.action](args, settings)
    except (agentops.NoTrack, UnknownAgent) as e:
        raise CommandError(str(e)) from None


# -- the actions --------------------------------------------------------------------

def list_agents(args, settings):
    rows = agentops.read_only(settings, agent_table)
    if not rows:
        print('no agents')
        return 0
    for line in format_table(rows):
        print(line)
    return 0


def agent_table(app, manager):
    """Rows of `agent list`: the header, then one per agent."""
    rows = [('NAME', 'KIND', 'POINTER', 'PENDING', 'STATUS', 'TARGET')]
    for agent in manager.agents():
        if not agent.enabled(app):
            status = 'disabled'
        elif agent.failure_count(app):
            status = 'failing (%d): %s' % (agent.failure_count(app),
                                           agent.last_error)
        else:
            status = 'ok'
        rows.append((agent.id, agent.kind, str(manager.pointer(agent.id)),
                     str(manager.pending(agent.id)), status,
                     agent.describe()))
    return rows if len(rows) > 1 else []


def format_table(rows):
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        yield '  '.join(cell.ljust(width) for cell, width in
                        zip(row, widths)).rstrip()


def add_agent(args, settings):
    options = {}
    for key, value in vars(args).items():
        if key.startswith('opt_') and value is not None:
            options[key[4:]] = value
    if 'file' in options:
        options['file'] = os.path.abspath(options['file'])
    if args.description is not None:
        options['description'] = args.description
    if args.interval is not None:
        options['interval'] = args.interval
    print(admin.run(settings, 'agent_add', args.kind, args.name, options))
    return 0


def remove_agent(args, settings):
    admin.run(settings, 'agent_remove', args.name)
    print('agent %s removed' % args.name)
    return 0


def _check_agent(settings, name):
    """UnknownAgent before any reactor starts, when there is no such
    agent (the database opens read-only even while a server runs)."""
    agentops.read_only(settings, lambda app, manager: manager.get_agent(name))


def run_agent(args, settings):
    _check_agent(settings, args.name)
    result = admin.run(settings, 'agent_run', args.name)
    print('agent %s: sent %d item(s); pointer at bucket %s' % (
        args.name, result['sent'], _pointer(settings, args.name)))
    return 0


def export_agent(args, settings):
    _check_agent(settings, args.name)
    result = admin.run(settings, 'agent_export', args.name)
    print('agent %s: exported %d item(s); pointer at bucket %d' % (
        args.name, result['sent'], result['till']))
    return 0


def _pointer(settings, name):
    return agentops.read_only(settings, lambda app, m: m.pointer(name))


def simulate_agent(args, settings):
    for line in agentops.read_only(settings, simulation, args.name):
        print(line)
    return 0


def simulation(app, manager, name):
    """The lines `agent simulate` prints: what the agent would send for the
    closed buckets it has not consumed (nothing is sent or changed)."""
    agent = manager.get_agent(name)
    start = manager.pointer(name)
    till = max(manager.closed, start)
    records = [record for _, record in manager.track.window(start, till)]
    items = agent._generate_records(reduce_records(records), app, till) \
        if records else []
    later = manager.track.count(till)
    if not items:
        lines = ['agent %s: nothing to send for ]%d, %d] (%d record(s) '
                 'read)' % (name, start, till, len(records))]
    else:
        lines = ['agent %s would send %d item(s) for ]%d, %d] (%d '
                 'record(s) read):' % (name, len(items), start, till,
                                       len(records))]
        lines.extend(agent.item_str(item) for item in items)
    if later:
        lines.append('(%d more record(s) in the open bucket)' % later)
    return lines


ACTIONS = {
    'list': list_agents,
    'add': add_agent,
    'remove': remove_agent,
    'run': run_agent,
    'simulate': simulate_agent,
    'export': export_agent,
}
