"""Benchmark: what 1, 2 and 4 checker workers cost on a shared database.

    .venv/bin/python bench/scale.py          # ZEO and PostgreSQL, 1 2 4 workers
    .venv/bin/python bench/scale.py --storages zeo --urls 4000 --show-conflicts

Two parts, in one run:

1. Finding the due work of one worker. 200,000 due URLs on 1,000 hosts;
   worker 1 of 4 picks a tick's worth (10,000 URLs) from the sharded due
   index (what linksync does: it merges its own shards' indexes), and from
   one index scanned and filtered by host (the alternative: every worker
   walks every due URL and skips the three quarters that are not its own).

2. Cost per check, end to end. An nginx (as in bench/checker.py) answers
   on ``--hosts`` loopback addresses 127.0.x.y (100), and every worker
   keeps ``--per-host-delay`` between two requests to one host (0.25 s):
   the offered load is at most hosts / delay checks per second (400), which
   leaves this two-core machine mostly idle, so the figures show what a
   check costs, not how processes fight for a core. For each storage
   (``--storages``: a `linksync zeo` server, RelStorage on a PostgreSQL the
   run starts) and each worker count N, N `linksync serve --role checker
   --worker I/N` processes run beside one `--role api,agents,syncer`
   process (as docs/scaling.txt deploys them); the URLs
   are registered straight into the database, due at once. Reported per
   storage and worker count: wall time and checks/s (and over the span of
   the stored check times), CPU milliseconds per check of the workers, of
   the API process, of the storage server (for PostgreSQL the postmaster
   and every backend, reaped ones included) and their total; ZODB
   conflicts per 1,000 commits, read from each process's /metrics
   (linksync_database_transactions_total); bytes the storage server sent
   per check (the bytes received by the client sockets, from ss's
   tcp_info); the peak memory of the biggest worker, of the API process
   and of the storage server; and how busy the machine was (100% = every core). A summary
   gives each worker count's total CPU per check as a ratio of one
   worker's. ``--show-conflicts`` runs the workers at debug level and
   prints their conflict-retry lines. Each worker count runs ``--repeat``
   times and the best run is shown: the machine may be shared, and other
   work only ever slows a run down.

Traffic goes only to 127.0.0.0/8.
"""

import argparse
import importlib.util
import os
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# Python put bench/ first on the path: its xmlrpc.py would hide the
# standard library's.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != HERE]
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'src'))


def _bench_checker():
    """bench/checker.py (its nginx and URL list), imported by path."""
    spec = importlib.util.spec_from_file_location(
        'bench_checker', os.path.join(HERE, 'checker.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_checker = _bench_checker()
free_port, host_addresses = _checker.free_port, _checker.host_addresses
start_nginx, url_list = _checker.start_nginx, _checker.url_list


# -- 1. finding the due work ------------------------------------------------------------

def bench_pick(count=200_000, hosts=1000, workers=4, take=10_000):
    from BTrees.OOBTree import OOTreeSet

    from linksync.server.model.url import URL
    from linksync.server.model.partition import Worker
    from linksync.server.model.due import Schedule
    sharded = Schedule()
    for n in range(count):
        sharded.add(URL('http://h%d.test/%d' % (n % hosts, n)), n % 1000)
    single = Schedule()
    single._trees = None  # one index for all, filtered on reading
    single._queue = OOTreeSet(sharded.due_keys(10**9))
    worker = Worker(1, workers)
    results = {}
    for name, schedule, who in (
            ('sharded index', sharded, worker),
            ('one index, filtered', single, worker),
            ('all shards, merged', sharded, None),
            ('one index', single, None)):
        best = None
        for _ in range(5):
            t0 = time.perf_counter()
            keys = schedule.due_keys(10**9, worker=who)
            picked = [k for _, k in zip(range(take), keys)]
            elapsed = time.perf_counter() - t0
            best = elapsed if best is None else min(best, elapsed)
        assert len(picked) == take
        results[name] = best
    print('1. picking %d due URLs among %d due URLs on %d hosts' % (
        take, count, hosts))
    print('   for worker 1/%d:' % workers)
    for name in ('sharded index', 'one index, filtered'):
        print('   %-22s %7.1f ms' % (name, results[name] * 1000))
    print('   ratio: %.1fx' % (results['one index, filtered'] /
                               results['sharded index']))
    print('   for a lone checker (no --worker), the price of the shards:')
    for name in ('all shards, merged', 'one index'):
        print('   %-22s %7.1f ms' % (name, results[name] * 1000))
    return results


# -- 2. end to end ------------------------------------------------------------------------

def _stat(pid):
    with open('/proc/%d/stat' % pid) as f:
        return f.read().rsplit(')', 1)[1].split()


def cpu_seconds(pid, children=False):
    """User + system CPU seconds of a process so far; with `children`,
    with those of its children: the live ones', and the exited ones' it
    reaped (PostgreSQL runs a process per connection)."""
    tick = os.sysconf('SC_CLK_TCK')
    fields = _stat(pid)
    total = int(fields[11]) + int(fields[12])
    if children:
        total += int(fields[13]) + int(fields[14])
        for name in os.listdir('/proc'):
            if not name.isdigit():
                continue
            try:
                child = _stat(int(name))
            except OSError:
                continue  # gone meanwhile
            if int(child[1]) == pid:
                total += sum(int(v) for v in child[11:15])
    return total / tick


def peak_mib(pid):
    """The peak resident memory of a running process, in MiB."""
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return 0.0


def machine_ticks():
    """(busy, total) CPU ticks of the machine so far."""
    with open('/proc/stat') as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def received_from(port, pids):
    """Bytes the processes `pids` received so far on their open TCP
    connections to local port `port` (the kernel's tcp_info, by ss):
    what the storage server sent them. {(pid, local address): bytes}."""
    import re
    import subprocess
    out = subprocess.run(
        ['ss', '-tinpH', 'state', 'established', '( dport = :%d )' % port],
        capture_output=True, text=True, check=True).stdout
    found = {}
    for entry in re.split(r'\n(?=\S)', out):
        pid = re.search(r'pid=(\d+)', entry)
        got = re.search(r'bytes_received:(\d+)', entry)
        if pid and int(pid.group(1)) in pids:
            local = entry.split()[2]
            found[int(pid.group(1)), local] = int(got.group(1)) if got else 0
    return found


def transactions(url):
    """(committed, conflicts) a process reports at its /metrics `url`."""
    from linksync import testing
    counts = {'committed': 0.0, 'conflict': 0.0}
    for line in testing.fetch(url).text.splitlines():
        if line.startswith('linksync_database_transactions_total{'):
            for outcome in counts:
                if 'outcome="%s"' % outcome in line:
                    counts[outcome] = float(line.split()[-1])
    return counts['committed'], counts['conflict']


def register(db, urls, batch=None):
    import zope.component

    from linksync.server.model import registration
    from linksync.server.interfaces import IClientProvider
    from linksync.server.model.client import Client
    session = db.session()

    def work(app, chunk):
        clients = zope.component.getUtility(IClientProvider)
        client = clients.get('bench') or clients.add(
            Client('bench', password='bench-password'))
        registration.register(client, chunk, 0)
    batch = batch or len(urls)
    for start in range(0, len(urls), batch):
        session.run(work, urls[start:start + batch])
    session.close()


def unchecked(session):
    from linksync import states
    return session.read(
        lambda app: app.state_counts.counts()[states.UNKNOWN])


def check_span(session, before):
    """(first, last) check time stored, leaving out the URL `before`."""
    def span(app):
        times = [u.last_check for u in app.urls
                 if u.last_check and u.url != before]
        return min(times), max(times)
    return session.read(span)


class StorageServer:
    """A fresh ZEO server or PostgreSQL database for one run: the
    options that name it, its port and the CPU it used so far."""

    def __init__(self, kind, workdir):
        from linksync import testing
        from linksync.server import storage
        self.kind = kind
        if kind == 'zeo':
            self.data = tempfile.mkdtemp(prefix='zeo-', dir=workdir)
            self.server = testing.zeo_server(self.data)
            self.args = ['--zeo', self.server.address]
            self.port = int(self.server.address.rsplit(':', 1)[1])
            self.pid = self.server.process.pid
            self.open = lambda: storage.open_storage(
                zeo=self.server.address)
        else:
            self.data = None
            self.server = testing.PostgreSQLServer().start()
            self.args = ['--storage', self.server.dsn]
            self.port = self.server.port
            with open(os.path.join(self.server.dir, 'data',
                                   'postmaster.pid')) as f:
                self.pid = int(f.readline())
            self.open = lambda: storage.open_storage(dsn=self.server.dsn)

    def cpu(self):
        return cpu_seconds(self.pid, children=self.kind != 'zeo')

    def peak(self):
        """Peak memory in MiB: of the ZEO server; of PostgreSQL, the sum
        of its running processes' (they share its buffers: an upper
        bound)."""
        if self.kind == 'zeo':
            return peak_mib(self.pid)
        import subprocess
        children = subprocess.run(
            ['pgrep', '-P', str(self.pid)], capture_output=True,
            text=True).stdout.split()
        return peak_mib(self.pid) + sum(
            peak_mib(int(child)) for child in children)

    def stop(self):
        self.server.stop()
        if self.data:
            shutil.rmtree(self.data, ignore_errors=True)


def run_workers(kind, count, urls, workdir, delay, show_conflicts=False):
    from linksync import testing
    from linksync.server import database
    from linksync.server.configure import configure
    configure()
    store = StorageServer(kind, workdir)
    db = database.Database(store.open())
    register(db, urls[:1])  # the client; the workers check it at once
    session = db.session()
    api_port = testing.free_port()
    api = testing.Command(
        'serve', '--role', 'api,agents,syncer', *store.args, '--data',
        tempfile.mkdtemp(prefix='api-', dir=workdir), '--listen',
        'tcp:%d:interface=127.0.0.1' % api_port, '--secret', 'bench',
        ready='listening on')
    workers, metrics = [], ['http://127.0.0.1:%d/metrics' % api_port]
    for index in range(1, count + 1):
        port = testing.free_port()
        metrics.append('http://127.0.0.1:%d/metrics' % port)
        workers.append(testing.Command(
            'serve', '--role', 'checker', '--worker', '%d/%d' % (
                index, count), *store.args, '--allow-network',
            '127.0.0.0/8', '--per-host-delay', str(delay),
            '--dns-server', '127.0.0.1:9', '--metrics-listen',
            'tcp:%d:interface=127.0.0.1' % port,
            *(['--log-level', 'debug'] if show_conflicts else [])))
    for process in [api] + workers:
        process.start()
    while unchecked(session):
        time.sleep(0.1)
    # Every worker runs: the URLs come in one transaction, seen by all
    # workers at once.
    register(db, urls[1:])
    pids = {p.process.pid for p in [api] + workers}

    def snapshot():
        return {
            'time': time.monotonic(), 'machine': machine_ticks(),
            'workers': sum(cpu_seconds(w.process.pid) for w in workers),
            'api': cpu_seconds(api.process.pid), 'storage': store.cpu(),
            'received': received_from(store.port, pids),
            'transactions': [transactions(url) for url in metrics]}
    before = snapshot()
    while unchecked(session):
        time.sleep(0.5)
    after = snapshot()
    checks = len(urls) - 1
    wall = after['time'] - before['time']
    busy = [a - b for a, b in zip(after['machine'], before['machine'])]
    committed = sum(a[0] - b[0] for a, b in zip(after['transactions'],
                                                before['transactions']))
    conflicts = sum(a[1] - b[1] for a, b in zip(after['transactions'],
                                                before['transactions']))
    # A connection opened during the run counts from nothing.
    sent = sum(n - before['received'].get(key, 0)
               for key, n in after['received'].items())
    result = {
        'storage': kind, 'workers': count, 'wall': wall,
        'rate': checks / wall, 'busy': busy[0] / max(busy[1], 1),
        'cpu': {part: (after[part] - before[part]) / checks
                for part in ('workers', 'api', 'storage')},
        'commits': committed, 'conflicts': conflicts,
        'sent': sent / checks,
        # Peak resident memory (VmHWM) of the biggest worker, of the API
        # process and of the storage server, in MiB.
        'peak': {'workers': max(peak_mib(w.process.pid) for w in workers),
                 'api': peak_mib(api.process.pid),
                 'storage': store.peak()},
    }
    first, last = check_span(session, urls[0])
    result['steady_rate'] = checks / max(last - first, 1e-9)
    session.close()
    failed = [p for p in workers + [api] if p.stop() != 0]
    if show_conflicts:
        retries = [line for worker in workers for line in worker.lines
                   if 'retrying' in line]
        named = name_objects(db, {
            int(oid, 16) for line in retries
            for oid in re.findall(r'\(oid (0x[0-9a-f]+)', line)})
        counts = {}
        for line in retries:
            for oid in re.findall(r'\(oid (0x[0-9a-f]+)', line):
                where = named.get(int(oid, 16), 'unreachable ' + oid)
                counts[where] = counts.get(where, 0) + 1
        for where, n in sorted(counts.items(), key=lambda i: -i[1]):
            print('   %3d conflicts on %s' % (n, where))
    db.close()
    store.stop()
    testing.cleanup()
    if failed:
        raise SystemExit('a process failed:\n' + failed[0].text)
    return result


def name_objects(db, oids):
    """Where the objects *oids* sit in the database: for each, the path
    of attribute names and keys from the root, found by walking every
    reference from the root (the databases here are small)."""
    from ZODB.serialize import referencesf
    from ZODB.utils import p64, u64
    connection = db.db.open()
    try:
        parent, todo = {0: None}, [0]
        wanted = set(oids)
        while todo and not wanted <= parent.keys():
            oid = todo.pop()
            data = connection._storage.load(p64(oid))[0]
            for ref in referencesf(data):
                ref = u64(ref)
                if ref not in parent:
                    parent[ref] = oid
                    todo.append(ref)
        def step(holder, child):
            state = getattr(holder, '__dict__', {})
            for name, value in state.items():
                if getattr(value, '_p_oid', None) == p64(child):
                    return '.' + name
            return '/' + type(connection.get(p64(child))).__name__
        names = {}
        for oid in wanted:
            if oid not in parent:
                continue
            path, node = [], oid
            while parent[node] is not None:
                holder = connection.get(p64(parent[node]))
                holder._p_activate()
                path.append(step(holder, node))
                node = parent[node]
            # Bucket chains and inner nodes: keep the first named
            # attribute and the class of what conflicted.
            attrs = [p for p in reversed(path) if p.startswith('.')]
            names[oid] = '%s (%s)' % (
                ''.join(attrs) or 'root',
                type(connection.get(p64(oid))).__name__)
        return names
    finally:
        connection.close()


def summary(rows):
    """What the table says, per storage: CPU per check against one
    worker's, and the conflicts."""
    lines = []
    for kind in sorted({r['storage'] for r in rows}):
        own = [r for r in rows if r['storage'] == kind]
        base = own[0]
        total = sum(base['cpu'].values())
        for r in own[1:]:
            lines.append(
                '   %s, %d workers: %.2fx the CPU per check of %d (all '
                'processes), %.1f conflicts per 1,000 commits' % (
                    kind, r['workers'], sum(r['cpu'].values()) / total,
                    base['workers'],
                    1000 * r['conflicts'] / max(r['commits'], 1)))
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--urls', type=int, default=10_000)
    parser.add_argument('--hosts', type=int, default=100)
    parser.add_argument('--workers', default='1,2,4',
                        help='worker counts to run (comma list)')
    parser.add_argument('--storages', default='zeo,postgresql',
                        help='shared databases to run on (comma list of '
                             'zeo, postgresql)')
    parser.add_argument('--per-host-delay', type=float, default=0.25,
                        help='politeness: with --hosts, the offered load '
                             '(hosts / delay checks per second)')
    parser.add_argument('--repeat', type=int, default=1,
                        help='runs per worker count (the one of least CPU '
                             'per check is shown)')
    parser.add_argument('--show-conflicts', action='store_true',
                        help="print the workers' conflicts (they log at "
                             "level debug)")
    parser.add_argument('--skip-pick', action='store_true',
                        help='skip part 1 (finding the due work)')
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(',')]
    kinds = [k for k in args.storages.split(',') if k]
    if 'postgresql' in kinds:
        from linksync import testing
        reason = testing.PostgreSQLServer.unavailable()
        if reason:
            print('no PostgreSQL here (%s): ZEO only' % reason)
            kinds.remove('postgresql')
    if not args.skip_pick:
        bench_pick()
        print()
    busy0, total0 = machine_ticks()
    time.sleep(1)
    busy1, total1 = machine_ticks()
    print('machine busy before the run (other work): %.0f%% of %d cores' % (
        100 * (busy1 - busy0) / max(total1 - total0, 1), os.cpu_count()))
    workdir = tempfile.mkdtemp(prefix='linksync-scale-')
    hosts = host_addresses(args.hosts)
    port = free_port()
    stop_nginx = start_nginx(hosts, port, os.path.join(workdir, 'nginx'))
    rows = []
    try:
        urls = url_list(args.urls, hosts, port)
        print('2. %d URLs on %d hosts (nginx on 127.0.x.y), '
              '--per-host-delay %g: at most %.0f checks/s offered' % (
                  len(urls), len(hosts), args.per_host_delay,
                  len(hosts) / args.per_host_delay))
        print('   CPU in ms per check, of the checker workers, of the API '
              'process and of the')
        print('   storage server (ZEO; PostgreSQL with its backends); '
              'conflicts per 1,000 commits')
        print('   of the workers and the API; bytes the storage server '
              'sent them per check')
        print('   %-10s %7s %8s %9s %9s %8s %7s %7s %7s %9s %9s %5s' % (
            'storage', 'workers', 'wall s', 'checks/s', 'steady/s',
            'workers', 'api', 'storage', 'total', 'conflicts', 'bytes',
            'busy'))
        for kind in kinds:
            for count in counts:
                r = min((run_workers(kind, count, urls, workdir,
                                     args.per_host_delay,
                                     args.show_conflicts)
                         for _ in range(args.repeat)),
                        key=lambda r: sum(r['cpu'].values()))
                rows.append(r)
                cpu = r['cpu']
                print('   %-10s %7d %8.1f %9.0f %9.0f %8.2f %7.2f %7.2f '
                      '%7.2f %9.1f %9.0f %4.0f%%' % (
                          kind, count, r['wall'], r['rate'],
                          r['steady_rate'], 1000 * cpu['workers'],
                          1000 * cpu['api'], 1000 * cpu['storage'],
                          1000 * sum(cpu.values()),
                          1000 * r['conflicts'] / max(r['commits'], 1),
                          r['sent'], 100 * r['busy']), flush=True)
                print('   (%d commits, %d conflicts; peak MiB: biggest '
                      'worker %.0f, api %.0f, storage %.0f)' % (
                          r['commits'], r['conflicts'],
                          r['peak']['workers'], r['peak']['api'],
                          r['peak']['storage']))
        print()
        print(summary(rows))
    finally:
        stop_nginx()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    main()
