"""Benchmark: checks per second with 1, 2 and 4 checker workers on ZEO.

    .venv/bin/python bench/scale.py                  # 20,000 URLs, 1 2 4
    .venv/bin/python bench/scale.py --urls 40000 --workers 1,2,3,4

Two parts, in one run:

1. Finding the due work of one worker. 200,000 due URLs on 1,000 hosts;
   worker 1 of 4 picks a tick's worth (10,000 URLs) from the sharded due
   index (what linksync does: it merges its own shards' indexes), and from
   one index scanned and filtered by host (the alternative: every worker
   walks every due URL and skips the three quarters that are not its own).

2. End to end. An nginx (as in bench/checker.py) answers on 1,000 loopback
   addresses 127.0.x.y, so the per-host politeness (``--per-host-delay
   0.1``) never binds; for each worker count N, N `linksync serve --role
   checker --worker I/N` processes run on a fresh `linksync zeo` database,
   and the URLs are registered (straight into the database, due at once)
   in one transaction, which all workers see at once. Reported: wall time from the moment every worker runs to
   the last state stored, checks/s (and over the span of the stored check
   times, without the start and the last write), the speed-up over one
   worker, the CPU time per check of the workers and of the ZEO server,
   and how busy the machine was (100% = every core). Each worker count
   runs ``--repeat`` times and the best run is shown: the machine may be
   shared, and other work only ever slows a run down.

Traffic goes only to 127.0.0.0/8.
"""

import argparse
import importlib.util
import os
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

def cpu_seconds(pid):
    """User + system CPU seconds of a process so far."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def machine_ticks():
    """(busy, total) CPU ticks of the machine so far."""
    with open('/proc/stat') as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


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


def run_workers(count, urls, workdir, delay):
    from linksync import testing
    from linksync.server import database, storage
    from linksync.server.configure import configure
    configure()
    data = tempfile.mkdtemp(prefix='zeo-', dir=workdir)
    zeo = testing.zeo_server(data)
    db = database.Database(storage.open_storage(zeo=zeo.address))
    register(db, urls[:1])  # the client; the workers check it at once
    session = db.session()
    workers = []
    for index in range(1, count + 1):
        workers.append(testing.Command(
            'serve', '--role', 'checker', '--worker', '%d/%d' % (
                index, count), '--zeo', zeo.address, '--allow-network',
            '127.0.0.0/8', '--per-host-delay', str(delay),
            '--dns-server', '127.0.0.1:9'))
    for worker in workers:
        worker.start()
    while unchecked(session):
        time.sleep(0.1)
    # Every worker runs: the URLs come in one transaction, seen by all
    # workers at once.
    register(db, urls[1:])
    t0 = time.monotonic()
    busy0, total0 = machine_ticks()
    cpu0 = {w: cpu_seconds(w.process.pid) for w in workers}
    zeo_cpu0 = cpu_seconds(zeo.process.pid)
    while unchecked(session):
        time.sleep(0.25)
    wall = time.monotonic() - t0
    busy1, total1 = machine_ticks()
    result = {
        'workers': count, 'wall': wall, 'rate': (len(urls) - 1) / wall,
        'worker_cpu': sum(cpu_seconds(w.process.pid) - cpu0[w]
                          for w in workers),
        'zeo_cpu': cpu_seconds(zeo.process.pid) - zeo_cpu0,
        'busy': (busy1 - busy0) / max(total1 - total0, 1),
    }
    first, last = check_span(session, urls[0])
    result['steady_rate'] = (len(urls) - 1) / max(last - first, 1e-9)
    session.close()
    db.close()
    for worker in workers:
        if worker.stop() != 0:
            raise SystemExit('a worker failed:\n' + worker.text)
    zeo.stop()
    testing.cleanup()
    shutil.rmtree(data, ignore_errors=True)
    return result


EXPLANATION = """\
What limits it: a check cost the workers %(worker).2f ms of CPU and the ZEO
server %(zeo).2f ms (1 worker's run), plus nginx's share. A worker is one
Python process: it uses one core at most, about %(one).0f checks/s. N
workers can use N cores, but there are %(cores)d here, shared with the ZEO
server, nginx and this benchmark (and with whatever else ran: see "machine
busy before"), so %(cores)d / (%(worker).2f + %(zeo).2f) ms = %(all).0f checks/s at
the very most; past %(cores)d workers, more only add processes that compete
for the same cores. With %(last_n)d workers a check cost the workers
%(last_worker).2f ms and ZEO %(last_zeo).2f ms: what more workers add on top is
their competition for the cores and, likely (not measured here), result
batches that conflict on what all workers share (the change track's
buckets, the counts of failures) and are retried whole. On a bigger
machine the checks/s grow with the cores until the ZEO server, one
process, fills its own core: about %(zeo_max).0f checks/s at %(zeo).2f ms each."""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--urls', type=int, default=20_000)
    parser.add_argument('--hosts', type=int, default=1000)
    parser.add_argument('--workers', default='1,2,4',
                        help='worker counts to run (comma list)')
    parser.add_argument('--per-host-delay', type=float, default=0.1)
    parser.add_argument('--repeat', type=int, default=2,
                        help='runs per worker count (the best is shown: '
                             'other work on the machine only slows down)')
    parser.add_argument('--skip-pick', action='store_true',
                        help='skip part 1 (finding the due work)')
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(',')]
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
    try:
        urls = url_list(args.urls, hosts, port)
        print('2. %d URLs on %d hosts (nginx on 127.0.x.y), '
              '--per-host-delay %g, ZEO:' % (len(urls), len(hosts),
                                             args.per_host_delay))
        print('   (best of %d runs each; CPU: milliseconds per check, of '
              'the workers and of the ZEO server)' % args.repeat)
        print('   %7s %8s %9s %9s %8s %10s %8s %6s' % (
            'workers', 'wall s', 'checks/s', 'steady/s', 'speedup',
            'worker cpu', 'zeo cpu', 'busy'))
        base = first = None
        for count in counts:
            r = max((run_workers(count, urls, workdir, args.per_host_delay)
                     for _ in range(args.repeat)), key=lambda r: r['rate'])
            base = base or r['rate']
            first = first or r
            last = r
            print('   %7d %8.1f %9.0f %9.0f %7.2fx %7.2f ms %5.2f ms %5.0f%%'
                  % (count, r['wall'], r['rate'], r['steady_rate'],
                     r['rate'] / base,
                     1000 * r['worker_cpu'] / (len(urls) - 1),
                     1000 * r['zeo_cpu'] / (len(urls) - 1), 100 * r['busy']),
                  flush=True)
        print()
        worker = 1000 * first['worker_cpu'] / (len(urls) - 1)
        zeo = 1000 * first['zeo_cpu'] / (len(urls) - 1)
        print(EXPLANATION % {
            'cores': os.cpu_count(), 'worker': worker, 'zeo': zeo,
            'one': 1000 / worker, 'all': 1000 * os.cpu_count() / (
                worker + zeo), 'zeo_max': 1000 / max(zeo, 1e-6),
            'last_n': last['workers'],
            'last_worker': 1000 * last['worker_cpu'] / (len(urls) - 1),
            'last_zeo': 1000 * last['zeo_cpu'] / (len(urls) - 1)})
    finally:
        stop_nginx()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    main()
