"""Options of the server and the commands, in one place.

An option has one definition here and three sources, the later winning:
its default, the ini file given with ``--config`` (section ``[linksync]``,
keys spelled like the long option, with dashes or underscores), an
environment variable where one is named, and the command line.

Durations are seconds and accept fractions (``--per-host-delay 0.1``).
"""

import argparse
import configparser
import ipaddress
import os


class ConfigError(Exception):
    """A bad option value or configuration file; the message says which."""


# -- value types -------------------------------------------------------------

def seconds(text):
    """A duration in seconds (fractions allowed), >= 0."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError('not a number of seconds: %r' % (text,)) from None
    if value < 0 or value != value or value == float('inf'):
        raise ValueError('not a duration: %r' % (text,))
    return value


def positive_seconds(text):
    """A duration in seconds (fractions allowed), > 0."""
    value = seconds(text)
    if value == 0:
        raise ValueError('must be more than 0 seconds: %r' % (text,))
    return value


positive_seconds.__name__ = 'seconds'


def positive_int(text):
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ValueError('not a whole number: %r' % (text,)) from None
    if value < 1:
        raise ValueError('must be at least 1: %r' % (text,))
    return value


def hostport(text):
    """'HOST:PORT' -> (host, port)."""
    from linksync.server.storage import parse_hostport
    return parse_hostport(text)


def network(text):
    """A CIDR network such as 127.0.0.0/8."""
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError('not a network (CIDR): %r' % (text,)) from None


def hour(text):
    """An hour of the day, 0 to 23."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ValueError('not an hour (0 to 23): %r' % (text,)) from None
    if not 0 <= value <= 23:
        raise ValueError('not an hour (0 to 23): %r' % (text,))
    return value


def mail_address(text):
    """An e-mail address (local@domain, no spaces, no line breaks)."""
    import email.utils
    name, address = email.utils.parseaddr(text)
    if not address or address != text.strip() or '@' not in address or \
            any(c.isspace() for c in address):
        raise ValueError('not an e-mail address: %r' % (text,))
    return address


def text(value):
    return str(value)


def metrics_access(text):
    """open, loopback or secret (who may read /metrics)."""
    value = str(text).strip().lower()
    if value not in ('open', 'loopback', 'secret'):
        raise BadValue('not one of open, loopback, secret: %r' % (text,))
    return value


# Give argparse readable type names in its error messages.
for _func, _name in ((seconds, 'seconds'), (positive_int, 'number'),
                     (hostport, 'HOST:PORT'), (network, 'CIDR'),
                     (mail_address, 'ADDRESS'), (metrics_access, 'WHO')):
    _func.__name__ = _name


class Option:
    """One option: --name, its type, default, help and environment name."""

    def __init__(self, name, type=text, default=None, help='', metavar=None,
                 env=None, multiple=False):
        self.name = name
        self.dest = name.replace('-', '_')
        self.type = type
        self.default = default
        self.help = help
        self.metavar = metavar
        self.env = env
        self.multiple = multiple

    def parse(self, value, origin):
        try:
            if self.multiple and isinstance(value, str):
                return [self.type(v) for v in value.split()]
            return self.type(value)
        except ValueError as e:
            raise ConfigError('%s: --%s: %s' % (origin, self.name, e)) \
                from None


# -- the options ------------------------------------------------------------------

#: Where the server's database is: every command that opens it takes these.
STORAGE_OPTIONS = [
    Option('data', default='var', metavar='DIR',
           help='directory of the embedded FileStorage (and of the secret '
                'file)'),
    Option('zeo', metavar='HOST:PORT',
           help='use the database of a ZEO server instead'),
    Option('storage', metavar='DSN',
           help='use a RelStorage database instead (postgresql://...)'),
    Option('cache-objects', type=positive_int, default=100_000,
           metavar='N',
           help='objects each database connection keeps in memory, at '
                'most (a process has a connection per part it runs)'),
    Option('cache-mib', type=positive_int, default=256, metavar='MIB',
           help="the memory each connection's cache may use, at most"),
]

#: What `linksync serve` runs on: where it listens, its secret, its mail.
PROCESS_OPTIONS = [
    Option('listen', default='tcp:8080:interface=127.0.0.1',
           metavar='ENDPOINT', help='Twisted endpoint to listen on'),
    Option('secret', env='LINKSYNC_SECRET',
           help='management secret for registerClient (else read from, or '
                'generated once into, DIR/secret)'),
    Option('public-url', metavar='URL',
           help='base URL of this server as clients see it (else taken '
                'from the request)'),
    Option('smtp', type=hostport, metavar='HOST:PORT',
           help='SMTP server for the mail the server sends'),
    Option('mail-from', default='linksync@localhost', metavar='ADDRESS',
           help='sender address of that mail'),
    Option('registration-cc', type=mail_address, multiple=True,
           metavar='ADDRESS',
           help="the operators' address: told of every client "
                'registration (a copy of the mail to the contact, without '
                'the password); repeatable'),
    Option('digest-hour', type=hour, metavar='HOUR',
           help="mail each client's contact a daily digest of what broke "
                'and what recovered, at this hour (0-23, UTC; needs --smtp '
                'and --public-url; off by default)'),
    Option('max-request-bytes', type=positive_int, default=20 * 1024 * 1024,
           metavar='N', help='larger XML-RPC requests are refused (413)'),
    Option('max-answer-bytes', type=positive_int, default=16 * 1024 * 1024,
           metavar='N',
           help='longest XML-RPC answer: a larger one is a fault 413, and '
                'a system.multicall whose answer passes it runs no further '
                'calls; a client that does not read its answers is sent no '
                'more than about this much'),
    Option('max-connections', type=positive_int, default=900, metavar='N',
           help='open connections in all, at most (more are closed at '
                'once; keep it below the limit of open files)'),
    Option('max-connections-per-peer', type=positive_int, default=100,
           metavar='N', help='open connections from one address, at most'),
    Option('request-deadline', type=seconds, default=60.0,
           metavar='SECONDS',
           help='a request must arrive whole (request line to the end of '
                'its body) within this time, else 408'),
    Option('log-level', default='info', metavar='LEVEL',
           help='debug, info, warn or error'),
]

# -- the change track and its agents (linksync.server.notifier) ----------------------

AGENT_OPTIONS = [
    Option('notify-interval', type=seconds, default=15.0, metavar='SECONDS',
           help='how often the agents (client notifications, exports) '
                'send what changed'),
    Option('notify-attempts', type=positive_int, default=3, metavar='N',
           help='attempts of an upload within one run (a failed one is '
                'tried again after 1 s, then 2 s, ...)'),
    Option('notify-timeout', type=positive_seconds, default=120,
           metavar='SECONDS',
           help="time limit of each call to a client's callback or an "
                'export target (a client that never answers holds its own '
                'notifications this long)'),
]

# -- syncer options (linksync.server.syncer) ---------------------------------


#: Options of the syncer (`serve`, and `sync` running without a server).
SYNC_OPTIONS = [
    Option('sync-tick', type=positive_seconds, default=60, metavar='SECONDS',
           help='how often the syncer looks for clients to synchronise'),
    Option('sync-interval', type=seconds, default=24 * 3600,
           metavar='SECONDS',
           help='a client is synchronised when its last synchronisation is '
                'this old'),
    Option('sync-retry', type=seconds, default=3600, metavar='SECONDS',
           help='after a failed synchronisation, the next attempt comes '
                'this much later'),
    Option('sync-timeout', type=positive_seconds, default=120,
           metavar='SECONDS',
           help="time limit of each call to a client's callback"),
    Option('sync-max-links', type=positive_int, default=500_000,
           metavar='N',
           help='a client sending more links is not synchronised (an '
                'error is logged)'),
    Option('sync-concurrency', type=positive_int, default=4, metavar='N',
           help='clients synchronised at once (a callback that does not '
                'answer holds up its own synchronisation only)'),
]


# -- checker and scheduler ------------------------------------------

#: Options of the URL checker: `linksync serve` and `linksync check`.
CHECKER_OPTIONS = [
    Option('concurrency', type=positive_int, default=100, metavar='N',
           help='requests in progress at once, over all hosts'),
    Option('per-host-connections', type=positive_int, default=2,
           metavar='N', help='requests in progress at once to one host'),
    Option('per-host-delay', type=seconds, default=1.0, metavar='SECONDS',
           help='least time between the sending of two requests to one '
                'host'),
    Option('connect-timeout', type=seconds, default=10.0, metavar='SECONDS',
           help='time allowed to resolve a host and connect to it'),
    Option('timeout', type=seconds, default=30.0, metavar='SECONDS',
           help='total time allowed for one request and its answer'),
    Option('max-redirects', type=positive_int, default=20, metavar='N',
           help='redirects followed before a link counts as broken'),
    Option('max-retry-after', type=seconds, default=3600.0,
           metavar='SECONDS',
           help='cap of the pause a host asks for with Retry-After'),
    Option('user-agent', metavar='TEXT',
           help='User-Agent header of the checker (default: "Mozilla/5.0 '
                '(compatible; linksync/VERSION; +URL)")'),
    Option('allow-network', type=network, multiple=True, metavar='CIDR',
           help='let the checker, the calls to client callbacks and the '
                'export agents reach this loopback, private, link-local or '
                'multicast network (repeatable; refused by default)'),
    Option('ca-file', metavar='FILE',
           help='PEM file of further certificate authorities to trust for '
                'HTTPS, besides the system ones'),
    Option('dns-server', type=hostport, multiple=True, metavar='HOST:PORT',
           help='DNS server for the checker (repeatable; default: those of '
                '/etc/resolv.conf)'),
]

#: Options of the scheduler (only `linksync serve`).
SCHEDULER_OPTIONS = [
    Option('recheck-interval', type=seconds, default=86400.0,
           metavar='SECONDS', help='how often a reachable URL is checked'),
    Option('temporary-interval', type=seconds, default=3600.0,
           metavar='SECONDS',
           help='first re-check of a temporary failure; doubled after each '
                'further one, up to --recheck-interval'),
    Option('permanent-interval', type=seconds, default=86400.0,
           metavar='SECONDS',
           help='how often a permanently failing URL is checked'),
    Option('confirm-delay', type=seconds, default=600.0, metavar='SECONDS',
           help='a URL that was ok and fails is checked again after this '
                'delay before the failure is published'),
    Option('orphan-grace', type=seconds, default=7 * 86400.0,
           metavar='SECONDS',
           help='a URL no client has registered for this long is removed'),
    Option('check-queue', type=positive_int, default=10000, metavar='N',
           help='URLs handed to the checker and not finished, at most'),
]



# -- web status UI (linksync.server.web) ------------------------------------
WEB_OPTIONS = [
    Option('alerts-link-lifetime', type=positive_seconds, default=86400.0,
           metavar='SECONDS',
           help='how long the alerts page link that getInfoFrameURL hands '
                'out stays valid'),
    Option('metrics-access', type=metrics_access, default='loopback',
           metavar='WHO',
           help='who may read /metrics: open (anybody), loopback (requests '
                'from this machine; from elsewhere only with the management '
                'secret, as the password of HTTP Basic credentials) or '
                'secret (only with the secret; choose it when a proxy on '
                'this machine forwards requests from elsewhere)'),
    Option('metrics-listen', metavar='ENDPOINT',
           help='also serve this process\'s /metrics (only) on this Twisted '
                'endpoint: how Prometheus reaches a process without the api '
                'role, e.g. a checker worker'),
]

# -- scale-out: roles and checker workers --------------------------


#: The parts a server process can run, in the order they start (``--role``);
#: linksync.server.configure registers a service factory for each.
ROLES = ('api', 'checker', 'syncer', 'agents')


class BadValue(ValueError, argparse.ArgumentTypeError):
    """A bad value whose message argparse shows as it is."""


def roles(text):
    """'all' or a comma list of the roles of :data:`ROLES` -> tuple of
    role names (None: all)."""
    names = [n.strip() for n in str(text).split(',') if n.strip()]
    if names == ['all']:
        return None
    unknown = [n for n in names if n not in ROLES]
    if not names or unknown:
        raise BadValue('unknown role %r (roles: all, or a comma list of %s)'
                       % (','.join(unknown) or text, ', '.join(ROLES)))
    return tuple(r for r in ROLES if r in names)


def worker(text):
    """'I/N' -> linksync.server.model.partition.Worker."""
    from linksync.server.model.partition import Worker
    try:
        return Worker.parse(text)
    except ValueError as e:
        raise BadValue(str(e)) from None


roles.__name__ = 'role'
worker.__name__ = 'I/N'

#: Options of `linksync serve` for running the server as several processes
#: on one database (ZEO or RelStorage).
SCALE_OPTIONS = [
    Option('role', type=roles, metavar='ROLES',
           help='the parts this process runs: all (the default), or a '
                'comma list of api, checker, agents, syncer'),
    Option('worker', type=worker, metavar='I/N',
           help='this checker is worker I of N: it checks only the URLs of '
                'its share of the hosts (run exactly one process per I, '
                'on a shared database)'),
]

#: Options of `linksync serve`.
SERVER_OPTIONS = (STORAGE_OPTIONS + PROCESS_OPTIONS + AGENT_OPTIONS +
                  SYNC_OPTIONS + CHECKER_OPTIONS + SCHEDULER_OPTIONS +
                  WEB_OPTIONS + SCALE_OPTIONS)




#: Options of the subcommands that open the server's database: they reach
#: a running server (whose FileStorage is locked) through its admin API.
COMMAND_OPTIONS = STORAGE_OPTIONS + [
    Option('server', metavar='URL',
           help='XML-RPC URL of the running server, used when it holds the '
                'database (default: from --listen)'),
] + [o for o in SERVER_OPTIONS if o.dest in ('listen', 'secret')]


#: The options of the commands that call clients or export targets
#: themselves when no server runs (`sync`, `agent`).
CALLING_OPTIONS = COMMAND_OPTIONS + [
    o for o in CHECKER_OPTIONS if o.dest == 'allow_network']


def known_options():
    """Every option any command of the server takes, by dest."""
    return {o.dest: o for o in SERVER_OPTIONS + COMMAND_OPTIONS}


# -- settings -------------------------------------------------------------------

class Settings:
    """Resolved option values, as attributes."""

    def __init__(self, **values):
        self.__dict__.update(values)

    def __repr__(self):
        return 'Settings(%s)' % ', '.join(
            '%s=%r' % item for item in sorted(self.__dict__.items())
            if item[0] != 'secret')


def defaults(options=None, **overrides):
    """Settings with every default, changed by `overrides` (for tests)."""
    known = known_options()
    options = known.values() if options is None else options
    values = {o.dest: o.default for o in options}
    for key, value in overrides.items():
        if key not in known and key not in values:
            raise ConfigError('unknown setting %r' % key)
        values[key] = value
    return Settings(**values)


def add_arguments(parser, options, section='linksync'):
    """Add `options` and --config to an argparse parser (the ini file's
    section is named `section`)."""
    if not any(a.dest == 'config' for a in parser._actions):
        parser.add_argument('--config', metavar='FILE',
                            help='ini file with a [%s] section' % section)
    for o in options:
        default = '' if o.default is None else ' (default: %s)' % (
            o.default,)
        parser.add_argument(
            '--' + o.name, dest=o.dest, type=o.type, default=None,
            metavar=o.metavar, action='append' if o.multiple else 'store',
            help=o.help + default)


def read_ini(path, section='linksync'):
    """The [linksync] section (or another one of SECTIONS) of an ini file
    as {dest: text}."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding='utf-8') as f:
            parser.read_file(f)
    except OSError as e:
        raise ConfigError('cannot read %s: %s' % (path, e.strerror)) \
            from None
    except configparser.Error as e:
        raise ConfigError('%s: %s' % (path, str(e).splitlines()[0])) \
            from None
    if not parser.has_section(section):
        raise ConfigError('%s has no [%s] section' % (path, section))
    values = {}
    known = SECTIONS[section]()
    for key, value in parser.items(section):
        dest = key.replace('-', '_')
        if dest not in known:
            raise ConfigError('%s: unknown option %r in [%s]' % (
                path, key, section))
        values[dest] = value
    return values


def resolve(args, options, section='linksync'):
    """Settings for `options` from parsed args, ini file (its `section`)
    and environment."""
    ini = read_ini(args.config, section) \
        if getattr(args, 'config', None) else {}
    values = {}
    for o in options:
        value = getattr(args, o.dest, None)
        if value is None and o.env and os.environ.get(o.env):
            value = o.parse(os.environ[o.env], '$' + o.env)
        if value is None and o.dest in ini:
            value = o.parse(ini[o.dest], args.config)
        if value is None:
            value = o.default
        values[o.dest] = value
    values['config'] = getattr(args, 'config', None)
    return Settings(**values)


def argument_parser(prog, options, description=None):
    """A stand-alone parser (used by the twist plugin and tests)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser, options)
    return parser


# -- the client kit (linksync client ...) ---------------------------

#: Options of the `linksync client` subcommands; ini file section [client].
CLIENT_OPTIONS = [
    Option('db', default='links.yaml', metavar='FILE',
           help="the client's link database (its format from the "
                'extension: .yaml, .json, .pickle, .shelve, .fs)'),
    Option('server', metavar='URL',
           help="the linksync server's XML-RPC URL"),
    Option('id', metavar='ID', help='the client id'),
    Option('password', env='LINKSYNC_CLIENT_PASSWORD', metavar='PASSWORD',
           help="the client's password (better in $LINKSYNC_CLIENT_PASSWORD"
                ' or the ini file than on the command line)'),
    Option('timeout', type=positive_seconds, default=60, metavar='SECONDS',
           help='time limit of each call to the server'),
    Option('listen', default='tcp:8081:interface=127.0.0.1',
           metavar='ENDPOINT',
           help='Twisted endpoint the callback listens on (client serve)'),
    Option('secret', env='LINKSYNC_SECRET',
           help="the server's management secret (client register)"),
    Option('callback', metavar='URL',
           help='the URL the server calls the client back on (client '
                'register; default: from --listen)'),
    Option('contact-name', metavar='NAME', default='',
           help='the person responsible for the client (client register)'),
    Option('contact-email', metavar='ADDRESS',
           help='their e-mail address (client register)'),
    Option('log-level', default='info', metavar='LEVEL',
           help='debug, info, warn or error (client serve)'),
]


def client_options(*names):
    """The client options with these dests, in CLIENT_OPTIONS order."""
    return [o for o in CLIENT_OPTIONS if o.dest in names]



#: The ini file sections: name -> the options they may hold, by dest.
SECTIONS = {
    'linksync': known_options,
    'client': lambda: {o.dest: o for o in CLIENT_OPTIONS},
}
