"""Operations on the change track and its agents, for the command line.

Changes go through linksync.server.admin.operations operations (run locally, or by the
running server when it holds the database): ``agent_add``,
``agent_remove``, ``agent_run``, ``agent_export`` and ``track_reset``.
Inspections (:func:`read_only`) open the database read-only, which works
while a server runs on it.
"""

from linksync.server import database
from linksync.server.admin import operations as admin
from linksync.server.admin.operations import OperationError, operation
from linksync.agents.agent import agent_kinds
from linksync.agents.errors import AgentError, UnknownAgent
from linksync.agents.manager import get_manager
from linksync.agents.runner import AgentRunner, RunContext
from linksync.server.checker.netpolicy import callback_policy
from linksync.server.mail import make_mailer
from linksync.server.notifier import ensure_client_agents
from linksync.server.secret import load_secret
from linksync.xmlrpc.resource import Param


class NoTrack(LookupError):
    """The database has no change track (or no linksync data) yet."""


def manager_of(app):
    manager = getattr(app, 'sync', None)
    if manager is None:
        raise NoTrack('this database has no change track yet (start the '
                      'server on it once)')
    return manager


def read_only(settings, func, *args):
    """func(app, manager, *args) on the database opened read-only."""
    db = database.open_database(settings, read_only=True)
    session = db.session()
    try:
        return session.read(lambda app: func(app, manager_of(app), *args))
    except LookupError as e:
        if isinstance(e, (NoTrack, UnknownAgent)):
            raise
        raise NoTrack(str(e)) from None
    finally:
        session.close()
        db.close()


# -- agents -----------------------------------------------------------------------

def creatable_kinds():
    """The kinds `agent add` creates (notifiers come with their client)."""
    return sorted(kind for kind in agent_kinds() if kind != 'notifier')


def build_agent(kind, name, options):
    """A new agent of `kind` from command-line options (a dict)."""
    if kind == 'notifier':
        raise OperationError('notifier agents come and go with their client '
                             '(registerClient)')
    cls = agent_kinds().get(kind)
    if cls is None:
        raise OperationError('no agent kind %r (known: %s)' % (
            kind, ', '.join(creatable_kinds())))
    kw = {}
    for key, value in options.items():
        key = key.replace('-', '_')
        if key == 'description':
            kw['description'] = str(value)
        elif key == 'interval':
            try:
                kw['update_time'] = float(value)
            except (TypeError, ValueError):
                raise OperationError('--interval takes seconds, not %r'
                                     % (value,)) from None
        elif key in cls.options:
            type_ = cls.options[key][0]
            try:
                kw[key] = type_(value)
            except (TypeError, ValueError):
                raise OperationError('--%s: bad value %r' % (
                    key.replace('_', '-'), value)) from None
        else:
            raise OperationError('a %s agent has no option --%s' % (
                kind, key.replace('_', '-')))
    try:
        return cls(name, **kw)
    except TypeError as e:
        raise OperationError('a %s agent needs: %s (%s)' % (
            kind, ', '.join('--' + o.replace('_', '-')
                            for o in cls.options), e)) from None
    except AgentError as e:
        raise OperationError(str(e)) from None


@operation('agent_add', [Param('kind', str), Param('name', str),
                         Param('options', dict)], returns=str)
def agent_add(context, kind, name, options):
    """Add an agent of `kind` named `name`; it starts at the open bucket.
    Returns its description."""
    agent = build_agent(kind, name, options)
    confine = getattr(agent, 'confine', None)
    if confine is not None:
        settings = context.server.settings if context.server is not None \
            else context.settings
        try:
            confine(getattr(settings, 'data', None) or 'var')
        except AgentError as e:
            raise OperationError(str(e)) from None
    manager = get_manager()
    try:
        manager.register_agent(agent, now=context.clock.seconds())
    except AgentError as e:
        raise OperationError(str(e)) from None
    return '%s agent %s added at bucket %d: %s' % (
        agent.kind, agent.id, manager.pointer(agent.id), agent.describe())


@operation('agent_remove', [Param('name', str)], returns=bool)
def agent_remove(context, name):
    """Remove an agent and its pointer."""
    manager = get_manager()
    agent = _agent(manager, name)
    if agent.kind == 'notifier':
        raise OperationError('%s is the notifier of client %r: it goes when '
                             'the client is removed' % (name,
                                                        agent.client_id))
    manager.remove_agent(name)
    return True


def _agent(manager, name):
    try:
        return manager.get_agent(name)
    except UnknownAgent as e:
        raise OperationError(str(e)) from None


def run_context(context):
    """The RunContext of an operation, inside or outside the server."""
    server = context.server
    if server is not None:
        settings = server.settings
        secret, mailer = server.secret, server.mailer
    else:
        settings = context.settings
        secret = getattr(settings, 'secret', None) or \
            load_secret(settings, announce=lambda text: None)
        mailer = make_mailer(settings, context.reactor) \
            if getattr(settings, 'smtp', None) else None
    return RunContext(context.reactor, context.clock, secret, mailer,
                      retries=getattr(settings, 'notify_attempts', 3) - 1,
                      timeout=getattr(settings, 'notify_timeout', None),
                      policy=callback_policy(settings))


def _runner(context, name):
    def check(app):
        _agent(get_manager(), name)
    context.session.read(check)
    return AgentRunner(context.session, name, run_context(context))


def _outcome(result, what):
    if result.error:
        raise OperationError('agent %s: %s failed: %s' % (
            result.agent, what, result.error))
    return {'sent': result.sent,
            'till': -1 if result.till is None else result.till}


@operation('agent_run', [Param('name', str)], returns=dict,
           transactional=False)
def agent_run(context, name):
    """Run an agent now: {'sent': items sent, 'till': bucket reached}."""
    d = _runner(context, name).run(context.clock.seconds())
    return d.addCallback(_outcome, 'the run')


@operation('agent_export', [Param('name', str)], returns=dict,
           transactional=False)
def agent_export(context, name):
    """Send every live object to an agent's consumer, as created, and move
    its pointer to the last closed bucket: {'sent': n, 'till': bucket}."""
    d = _runner(context, name).export(context.clock.seconds())
    return d.addCallback(_outcome, 'the export')


@operation('track_reset', [Param('agents_only', bool),
                           Param('track_only', bool)], returns=dict)
def track_reset(context, agents_only, track_only):
    """Erase the agents, the records of the track, or both. The client
    notifiers are recreated at the open bucket."""
    if agents_only and track_only:
        raise OperationError('--agents-only and --track-only exclude each '
                             'other')
    manager = get_manager()
    agents = len(manager.agents())
    manager.reset(agents_only=agents_only, track_only=track_only)
    added, _ = ensure_client_agents(context.app, context.clock.seconds())
    return {'agents_removed': 0 if track_only else agents,
            'notifiers_recreated': added}


__all__ = ['admin', 'agent_add', 'agent_export', 'agent_remove', 'agent_run',
           'read_only', 'track_reset']
