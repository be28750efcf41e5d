"""linksync client: a client's link database, from the command line.

``linksync client serve`` keeps a database in sync with the server and
answers the server's callbacks; ``add`` and ``remove`` change the
database (through the running ``serve`` when there is one, else in the
file, telling the server when one is given); ``status`` shows the links
and their states; ``sync`` synchronises now; ``register`` registers the
client with a server. Every action takes ``--db FILE`` (default
``links.yaml``); options can also come from the ``[client]`` section of
the ini file given with ``--config``.
"""

import sys

from linksync import states, urlnorm
from linksync.server import options as config
from linksync.cli import CommandError

HELP = "a client's link database: serve, add, remove, status, sync, register"

_SERVER = ('db', 'server', 'id', 'password', 'timeout')

#: The options of each action.
OPTIONS = {
    'serve': _SERVER + ('listen', 'log_level'),
    'add': _SERVER,
    'remove': _SERVER,
    'status': ('db', 'id', 'password', 'timeout'),
    'sync': _SERVER,
    'register': _SERVER + ('secret', 'callback', 'contact_name',
                           'contact_email', 'listen'),
}


def add_arguments(parser):
    actions = parser.add_subparsers(dest='action', metavar='ACTION')
    actions.required = True

    def action(name, help):
        sub = actions.add_parser(name, help=help, description=help)
        config.add_arguments(sub, config.client_options(*OPTIONS[name]),
                             section='client')
        sub.set_defaults(parser=sub)
        return sub

    action('serve', "keep the link database in sync with the server and "
                    "answer the server's callbacks")
    action('add', 'add links').add_argument('urls', nargs='+',
                                            metavar='URL')
    action('remove', 'remove links').add_argument('urls', nargs='+',
                                                  metavar='URL')
    status = action('status', 'show the links and their states')
    status.add_argument('--state', choices=states.STATES + (
        states.UNKNOWN,), help='only the links in this state')
    action('sync', 'synchronise with the server now: register what it '
                   'lacks, and have it unregister what is gone and send '
                   'every state')
    register = action('register', 'register the client with the server '
                                  '(needs its management secret)')
    register.add_argument('--generate-password', action='store_true',
                          help='have the server generate the password and '
                               'mail it to the contact')


def run(args):
    from linksync.client.errors import LMSError
    from linksync.stores.errors import StoreError
    settings = config.resolve(args, config.client_options(
        *OPTIONS[args.action]), section='client')
    try:
        return ACTIONS[args.action](args, settings)
    except (LMSError, StoreError, urlnorm.InvalidURL) as e:
        raise CommandError(str(e)) from None


def need(args, settings, *names, why=''):
    """Bad usage (exit status 2) when one of these settings is missing."""
    missing = ['--' + name.replace('_', '-') for name in names
               if not getattr(settings, name, None)]
    if missing:
        args.parser.error('%s %s needed%s (on the command line, or in the '
                          '[client] section of --config)' % (
                              ', '.join(missing),
                              'is' if len(missing) == 1 else 'are', why))


def _no_kit(settings):
    return ' when no `linksync client serve` of %s is running' % settings.db


def _server_client(settings):
    from linksync.client.blocking import LMSClient
    return LMSClient(settings.server, settings.id, settings.password,
                     timeout=settings.timeout)


def _serving(settings):
    """(lock, None) with the database's lock taken, or (None, what the
    running `client serve` wrote in the lock: its url, id and key)."""
    from linksync.client.lockfile import DatabaseLock
    lock = DatabaseLock(settings.db)
    if lock.acquire():
        return lock, None
    holder = lock.read()
    if not holder.get('url'):
        raise CommandError('%s is locked by another program' % settings.db)
    return None, holder


def _local_client(args, settings, kit):
    """The client of the running kit: under the id and password given,
    else under the kit's own key (from its lock file)."""
    from linksync.client.service import LocalClient
    if settings.id and settings.password:
        client_id, password = settings.id, settings.password
    elif kit.get('key'):
        client_id, password = kit.get('id', ''), kit['key']
    else:
        # A kit of an older linksync: it wrote no key.
        need(args, settings, 'id', 'password',
             why=' by the `linksync client serve` running on %s' % kit['url'])
    return LocalClient(kit['url'], client_id, password,
                       timeout=settings.timeout)


# -- the actions --------------------------------------------------------------

def serve(args, settings):
    from twisted.internet import reactor

    from linksync.client.service import ClientService
    from linksync.commands.serve import run_service
    need(args, settings, 'server', 'id', 'password')
    service = ClientService(settings.db, settings.server, settings.id,
                            settings.password, settings.listen, reactor,
                            timeout=settings.timeout)

    def ready():
        print('linksync client: serving %s on %s' % (settings.db,
                                                     service.url),
              flush=True)
    return run_service(service, reactor, settings.log_level,
                       lambda: [(service.ready, settings.listen)], ready)


def add(args, settings):
    return _change(args, settings, 'add')


def remove(args, settings):
    return _change(args, settings, 'remove')


def _change(args, settings, action):
    from linksync.client.linkdb import LinkDatabase, check_urls
    if action == 'add':
        check_urls(args.urls)
    lock, kit = _serving(settings)
    if kit is not None:
        outcome = getattr(_local_client(args, settings, kit), action)(
            args.urls)
        return _report_change(settings, action, outcome['urls'],
                              outcome['pending'], outcome['error'],
                              served=True)
    try:
        if action == 'remove':
            db = LinkDatabase.read(settings.db)   # an error if missing
            db.close()
        db = LinkDatabase(settings.db)
        try:
            told = settings.server and settings.id and settings.password
            if told:
                db.connect(_server_client(settings))
            changed = getattr(db, action)(*args.urls)
            pending = db.synchronizer.pending if db.synchronizer else []
            error = db.synchronizer.last_error if pending else ''
        finally:
            db.close()
    finally:
        lock.release()
    if not told and changed:
        missing = [o for o, v in (('--server', settings.server),
                                  ('--id', settings.id),
                                  ('--password', settings.password)) if not v]
        print('linksync: note: the server was not told (no `linksync client '
              'serve` of %s is running, and %s %s not given); it learns at '
              'the next `linksync client sync` or `serve`' % (
                  settings.db, ', '.join(missing),
                  'is' if len(missing) == 1 else 'are'), file=sys.stderr)
    return _report_change(settings, action, changed, len(pending), error)


def _report_change(settings, action, urls, pending, error, served=False):
    done = 'added' if action == 'add' else 'removed'
    print('%s %d link(s) %s %s' % (done, len(urls),
                                   'to' if action == 'add' else 'from',
                                   settings.db))
    if pending:
        # The running `client serve` keeps trying; a lone command leaves
        # it to the next sync.
        when = 'the running `linksync client serve` tries again until ' \
            'it does' if served else 'it will at the next `linksync ' \
            'client sync` or `serve`'
        print('linksync: warning: the server does not know yet (%s); %s'
              % (error, when), file=sys.stderr)
    return 0


def status(args, settings):
    from linksync.client.linkdb import LinkDatabase
    from linksync.commands.agent import format_table
    db = LinkDatabase.read(settings.db)
    links = db.links(state=args.state)
    total = len(db)
    db.close()
    if links:
        for line in format_table([('STATE', 'URL', 'REASON')] + [
                (link.state, link.name, link.reason) for link in links]):
            print(line)
    else:
        print('no links' + (' in state %r' % args.state if args.state
                            else ''))
    counts = {}
    for link in links:
        counts[link.state] = counts.get(link.state, 0) + 1
    print('%d of %d link(s)%s' % (len(links), total, ': ' + ', '.join(
        '%d %s' % (n, state) for state, n in sorted(counts.items()))
        if counts else ''))
    lock, kit = _serving(settings)
    if lock is not None:
        lock.release()
    elif (settings.id and settings.password) or kit.get('key'):
        pending = _local_client(args, settings, kit).pending()
        if pending:
            print('%d change(s) not sent to the server yet:' % len(pending))
            for line in pending:
                print('  ' + line)
    return 0


def sync(args, settings):
    from linksync.client.linkdb import LinkDatabase
    lock, kit = _serving(settings)
    if kit is not None:
        print(_local_client(args, settings, kit).sync())
        return 0
    try:
        need(args, settings, 'server', 'id', 'password',
             why=_no_kit(settings))
        db = LinkDatabase.read(settings.db)   # an error if missing
        db.close()
        db = LinkDatabase(settings.db)
        try:
            db.connect(_server_client(settings))
            report = db.sync()
        finally:
            db.close()
    finally:
        lock.release()
    print(report)
    if not report.ok:
        raise CommandError('%d change(s) could not be sent to the server: '
                           '%s' % (len(report.pending),
                                   report.pending[0].error))
    return 0


def register(args, settings):
    need(args, settings, 'server', 'id', 'secret', 'contact_email')
    if not args.generate_password:
        need(args, settings, 'password')
    callback = settings.callback or callback_url(settings.listen)
    if not callback:
        args.parser.error('--callback is needed: the callback URL cannot '
                          'be told from --listen %s' % settings.listen)
    client = _server_client(settings)
    client.register_client(settings.secret, callback, settings.contact_name,
                           settings.contact_email,
                           generate_password=args.generate_password)
    print('client %r registered with %s; it calls the client back on %s%s'
          % (settings.id, settings.server, callback,
             '; the password was mailed to %s' % settings.contact_email
             if args.generate_password else ''))
    return 0


def callback_url(listen):
    """The URL a `tcp:PORT:interface=HOST` endpoint is reached at, or None
    when it cannot be told (another kind, or every interface)."""
    fields = listen.split(':')
    if fields[0] not in ('tcp', 'tcp6') or len(fields) < 2:
        return None
    options = dict(f.split('=', 1) for f in fields[1:] if '=' in f)
    positional = [f for f in fields[1:] if '=' not in f]
    port = options.get('port') or (positional[0] if positional else None)
    host = options.get('interface', '')
    if not port or not port.isdigit() or host in ('', '0.0.0.0', '::'):
        return None
    if ':' in host:
        host = '[%s]' % host
    return 'http://%s:%s/RPC2' % (host, port)


ACTIONS = {
    'serve': serve,
    'add': add,
    'remove': remove,
    'status': status,
    'sync': sync,
    'register': register,
}
