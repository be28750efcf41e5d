"""Benchmark: linksync's checker against LinkChecker, in one run.

    .venv/bin/python bench/checker.py                 # 10,000 URLs, both
    .venv/bin/python bench/checker.py --million       # 1,000,000 registered,
                                                      # 500,000 due (memory)

An nginx started here (``apt-get install nginx`` when missing) listens on
1,000 loopback addresses 127.0.x.y and answers 200, 404 or 503 by path.
The same URL list is checked

* by linksync end to end: a linksync server (FileStorage, real clock) gets
  the URLs over XML-RPC (registerURLs, 1,000 per call) from a client in a
  process of its own, and its checker works until every state is stored
  in the database;
* by LinkChecker (PyPI ``linkchecker``, installed into bench/out/lc-venv
  when missing) with ``-r0 -t100``, the URLs on stdin;

with the same politeness: ``--per-host-delay 0.1`` for linksync, which is
LinkChecker's default cap of 10 requests per second and host. Each runs in
its own process; wall time, URLs/s and peak memory (max RSS) are printed,
and the ratio, and for each the smallest gap nginx saw between two
requests to one host address (its access log, to the millisecond): the
politeness held at the wire. Traffic goes only to 127.0.0.0/8.

``--million`` registers 1,000,000 URLs (``--registered``), of which 500,000
(``--due``) are due, the others checked a moment ago, in a process of its
own; then a server started on that database (every role, as ``linksync
serve`` runs) schedules and checks the due ones. It reports the time and
peak memory of each process (``--max-check-seconds`` bounds the checking;
what was done is reported), and the database's size on disk.

With ``LINKSYNC_BENCH_PROFILE=FILE`` in the environment, the linksync
server's reactor thread is profiled from registration to the last stored
state, and the pstats data written to FILE.
"""

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# bench/xmlrpc.py is named like the standard library's xmlrpc package:
# a script run from here has this directory first on sys.path, and
# Twisted's or linksync's `import xmlrpc.client` would get that file.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != HERE]
OUT = os.path.join(HERE, 'out')
PYTHON = sys.executable


# -- nginx ----------------------------------------------------------------------------

def host_addresses(count):
    hosts = []
    for n in range(count):
        hosts.append('127.0.%d.%d' % (1 + n // 250, 1 + n % 250))
    return hosts


def start_nginx(hosts, port, workdir):
    nginx = shutil.which('nginx') or '/usr/sbin/nginx'
    if not os.path.exists(nginx):
        print('nginx missing: installing it (apt-get install nginx)')
        subprocess.run(['apt-get', 'update', '-q'], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(['apt-get', 'install', '-y', '-q', 'nginx'],
                       check=True, stdout=subprocess.DEVNULL)
        nginx = shutil.which('nginx') or '/usr/sbin/nginx'
    os.makedirs(workdir, exist_ok=True)
    listens = '\n'.join('        listen %s:%d;' % (h, port) for h in hosts)
    conf = os.path.join(workdir, 'nginx.conf')
    with open(conf, 'w') as f:
        f.write('''
worker_processes 1;
worker_rlimit_nofile 65536;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log crit;
events { worker_connections 16384; }
http {
    # When each request arrived, and at which host address: the per-host
    # gaps at the wire (buffered: logging costs both tools alike).
    log_format gaps '$msec $server_addr';
    access_log %(dir)s/access.log gaps buffer=1m flush=1s;
    keepalive_requests 100000;
    keepalive_timeout 120s;
    client_body_temp_path %(dir)s/tmp;
    proxy_temp_path %(dir)s/tmp;
    fastcgi_temp_path %(dir)s/tmp;
    uwsgi_temp_path %(dir)s/tmp;
    scgi_temp_path %(dir)s/tmp;
    server {
%(listens)s
        location /ok/ { return 200 "ok\\n"; }
        location /missing/ { return 404; }
        location /busy/ { return 503; }
        location / { return 404; }
    }
}
''' % {'dir': workdir, 'listens': listens})
    os.makedirs(os.path.join(workdir, 'tmp'), exist_ok=True)
    subprocess.run([nginx, '-c', conf, '-p', workdir], check=True)
    for _ in range(100):
        if os.path.exists(os.path.join(workdir, 'nginx.pid')):
            break
        time.sleep(0.05)
    return lambda: subprocess.run([nginx, '-c', conf, '-p', workdir,
                                   '-s', 'stop'], check=False,
                                  stderr=subprocess.DEVNULL)


def wire_gaps(workdir, start, end):
    """(requests, smallest gap in seconds between two requests to one host
    address, first and last request's time) among those nginx logged from
    `start` to `end` (epoch s)."""
    time.sleep(1.5)                    # nginx flushes its log every second
    last = {}
    smallest = None
    count = 0
    first = final = None
    with open(os.path.join(workdir, 'nginx', 'access.log')) as f:
        for line in f:
            when, _, host = line.strip().partition(' ')
            when = float(when)
            if not start <= when <= end:
                continue
            count += 1
            first = when if first is None else min(first, when)
            final = when if final is None else max(final, when)
            if host in last:
                gap = when - last[host]
                if smallest is None or gap < smallest:
                    smallest = gap
            last[host] = when
    return count, smallest, first, final


def url_list(count, hosts, port):
    urls = []
    for i in range(count):
        host = hosts[i % len(hosts)]
        kind = {8: 'missing', 9: 'busy'}.get(i % 10, 'ok')
        urls.append('http://%s:%d/%s/%d' % (host, port, kind, i))
    return urls


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# -- running a side in its own process ------------------------------------------------------

def run_child(args):
    """Run a child; (its JSON result, wall seconds, its output)."""
    start = time.monotonic()
    proc = subprocess.run(args, stdout=subprocess.PIPE, text=True)
    wall = time.monotonic() - start
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith('{'):
            result = json.loads(line)
    if result is None:
        raise SystemExit('the linksync side failed:\n' + proc.stdout)
    # The child's database, removed once the child has exited.
    if 'data' in result:
        shutil.rmtree(result['data'], ignore_errors=True)
    return result, wall, proc.stdout


# -- the linksync side --------------------------------------------------------------------------

def linksync_side(urls_file, per_host_delay, concurrency, registered=None,
                  due=None, max_check_seconds=None, phase=None, data=None):
    """Runs in a child process: register, check, wait for the states. In
    the memory run, `phase` 'register' fills the database `data`, and
    'check' starts a server on it, as a restarted server would (its peak
    memory is its own, not that of the process that registered)."""
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'src'))

    from twisted.internet import reactor

    from linksync import testing
    from linksync.server import options as config
    with open(urls_file) as f:
        urls = f.read().split()
    data = data or tempfile.mkdtemp(prefix='linksync-bench-')
    testing.reactor_thread()
    server = testing.ServerFixture(
        data=data, clock=reactor, roles=None,
        allow_network=[config.network('127.0.0.0/8')],
        per_host_delay=per_host_delay, concurrency=concurrency,
        check_queue=10_000, dns_server=[('127.0.0.1', 9)])
    result = {}
    if registered:
        # Memory mode: the extra URLs are registered straight into the
        # database (XML-RPC for a million URLs would measure XML-RPC), half
        # of them as checked a moment ago, i.e. not due.
        if phase == 'register':
            server.roles = ['api']
            server.start()
            t0 = time.monotonic()
            _register_directly(server, urls, registered, due)
            result['register_seconds'] = time.monotonic() - t0
            result['register_rss_mib'] = _rss()
            server.stop()
            print(json.dumps(result))
            return
        t0 = time.monotonic()
        server.start()
        checker = server.service.getServiceNamed('checker').scheduler
        connection = checker.session.connection
        connection.getTransferCounts(True)
        profile = os.environ.get('LINKSYNC_BENCH_PROFILE')
        if profile:
            import cProfile
            profiler = cProfile.Profile()
            server.rt.call(profiler.enable)
        cpu0 = time.process_time()
        deadline = t0 + (max_check_seconds or 10**9)
        while checker.written < due and time.monotonic() < deadline:
            time.sleep(0.5)
        result['check_cpu_seconds'] = time.process_time() - cpu0
        if profile:
            server.rt.call(profiler.disable)
            profiler.dump_stats(profile)
        result['check_seconds'] = time.monotonic() - t0
        result['checked'] = checker.written
        result['due'] = due
        # What the checker's database connection loaded and stored, and
        # its cache (objects, those not ghosts) at the end.
        loads, stores = server.rt.call(connection.getTransferCounts, True)
        result['loads'], result['stores'] = loads, stores
        cache = connection._cache
        result['cache_objects'] = len(cache)
        result['cache_non_ghosts'] = cache.cache_non_ghost_count
        result['peak_rss_mib'] = _rss()
        result['rss_now_mib'] = _rss_now()
        # Every connection of the database (the pooled ones too): objects
        # in its cache, those loaded, and ZODB's estimate of their bytes.
        result['connections'] = server.rt.call(_caches, server)
        server.stop()
        result['data'] = data
        # The database on disk, as written and packed (what a day's pack
        # leaves of the revisions written by registering and checking).
        (result['disk_bytes'], result['packed_bytes'], result['objects'],
         result['index_bytes']) = _disk(data)
        print(json.dumps(result))
        return
    server.start()
    client = server.register_client('bench')
    # The application that registers its URLs is a process of its own, as
    # it is in use (and as LinkChecker is given its URLs by this script):
    # its XML-RPC marshalling is not the server's work, and in the server's
    # process it would hold the interpreter lock the reactor needs. It is
    # started, and has imported what it uses, before the clock starts.
    registrar = subprocess.Popen(
        [PYTHON, os.path.abspath(__file__), '--client-side', server.url,
         urls_file, *client], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True)
    if registrar.stdout.readline().strip() != 'ready':
        raise SystemExit('the registering client did not start')
    profile = os.environ.get('LINKSYNC_BENCH_PROFILE')
    if profile:
        # The reactor thread's profile (cProfile follows the thread that
        # enables it), written as pstats data to that file.
        import cProfile
        profiler = cProfile.Profile()
        server.rt.call(profiler.enable)
    for name, value in json.loads(os.environ.get('LINKSYNC_BENCH_SET', '{}')).items():
        cls, attr = name.rsplit('.', 1)
        import importlib
        mod, cls = cls.rsplit('.', 1)
        setattr(getattr(importlib.import_module(mod), cls), attr, value)
    t0 = time.monotonic()
    result['register_epoch'] = time.time()
    cpu0 = time.process_time()
    registrar.stdin.write('go\n')
    registrar.stdin.flush()
    registered = json.loads(registrar.stdout.readline())
    registrar.wait()
    result['register_seconds'] = registered['seconds']
    result['client_cpu_seconds'] = registered['cpu_seconds']
    scheduler = server.service.getServiceNamed('checker').scheduler
    while scheduler.written < len(urls):
        time.sleep(0.05)
    result['seconds'] = time.monotonic() - t0
    result['window_cpu_seconds'] = time.process_time() - cpu0
    if profile:
        server.rt.call(profiler.disable)
        profiler.dump_stats(profile)

    def count(app):
        found = {}
        for url in app.urls:
            found[url.state] = found.get(url.state, 0) + 1
        return found
    result['states'] = {str(k): v for k, v in server.read(count).items()}
    result['peak_rss_mib'] = _rss()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result['cpu_seconds'] = usage.ru_utime + usage.ru_stime
    server.stop()
    result['data'] = data
    print(json.dumps(result))


def _disk(data):
    """(bytes of the FileStorage in `data`, bytes once packed, objects in
    it, bytes of Python memory its index takes once opened: what a ZEO
    server serving it holds for its objects)."""
    from ZODB.DB import DB
    from ZODB.FileStorage import FileStorage
    path = os.path.join(data, 'Data.fs')
    written = os.path.getsize(path)
    db = DB(FileStorage(path))
    try:
        db.pack(time.time() + 1)
    finally:
        db.close()
    packed = os.path.getsize(path)
    # In a fresh process: its resident memory before and after opening.
    out = subprocess.run([sys.executable, '-c', _OPEN_STORAGE, path],
                         capture_output=True, text=True, check=True).stdout
    objects, index = (int(n) for n in out.split())
    return written, packed, objects, index


_OPEN_STORAGE = """
import os
import sys
from ZODB.FileStorage import FileStorage
def rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = rss()
storage = FileStorage(sys.argv[1], read_only=True)
print(len(storage), rss() - before)
"""


def _rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_now():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def _caches(server):
    found = []
    db = server.service.database.db
    for connection in db.pool.all:
        cache = connection._cache
        found.append((len(cache), cache.cache_non_ghost_count,
                      round(cache.total_estimated_size / 2**20, 1)))
    return found


def _register_directly(server, urls, registered, due):
    """Register `registered` URLs (cycling over the hosts of `urls`)."""
    import zope.component

    from linksync.server.model import registration
    from linksync.server.interfaces import (IClientProvider, ISchedule,
                                            IURLProvider)
    from linksync.server.model.client import Client
    hosts = sorted({u.split('/')[2] for u in urls})
    now = time.time()
    # Batches bigger than a client's registerURLs call (1,000): a batch
    # writes the buckets of the URL index it touches whatever their number
    # of new URLs, and these URLs cycle over the hosts (1,000 URLs touch
    # about 1,000 buckets): batches of 1,000 took 4x as long.
    batch = 20_000

    def work(app, start):
        clients = zope.component.getUtility(IClientProvider)
        client = clients.get('bench') or clients.add(
            Client('bench', password='bench-password'))
        chunk = ['http://%s/ok/%d' % (hosts[i % len(hosts)], i)
                 for i in range(start, min(start + batch, registered))]
        registration.register(client, chunk, now)
        schedule = zope.component.getUtility(ISchedule)
        provider = zope.component.getUtility(IURLProvider)
        for i, text in enumerate(chunk, start):
            if i >= due:  # checked a moment ago: due in a day
                url = provider.get(text)
                url.set_result('ok', '200 OK', now)
                schedule.reschedule(url, now + 86400)

    for start in range(0, registered, batch):
        session = server.service.database.session()
        try:
            server.rt.call(session.run, work, start)
        finally:
            server.rt.call(session.close)
        if (start + batch) % 200_000 == 0:
            print('registered %d' % (start + batch), file=sys.stderr)


# -- the LinkChecker side ---------------------------------------------------------------------

def linkchecker_path():
    venv = os.path.join(OUT, 'lc-venv')
    exe = os.path.join(venv, 'bin', 'linkchecker')
    if not os.path.exists(exe):
        print('installing LinkChecker into %s' % venv)
        subprocess.run([PYTHON, '-m', 'venv', venv], check=True)
        subprocess.run([os.path.join(venv, 'bin', 'pip'), 'install', '-q',
                        'linkchecker'], check=True)
    return exe


def run_linkchecker(urls):
    """(wall seconds, max RSS MiB, URLs it reports as checked, CPU s)."""
    import re
    exe = linkchecker_path()
    args = [exe, '-r0', '-t100', '--stdin', '--no-status', '-o', 'text']
    start = time.monotonic()
    with tempfile.TemporaryFile('w+') as out:
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=out,
                                stderr=subprocess.DEVNULL, text=True)
        proc.stdin.write('\n'.join(urls) + '\n')
        proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        out.seek(0)
        found = re.search(r"That's it\. (\d+) links in (\d+) URLs checked",
                          out.read())
    checked = int(found.group(2)) if found else None
    return wall, usage.ru_maxrss / 1024, checked, \
        usage.ru_utime + usage.ru_stime


def client_side(url, urls_file, client_id, password):
    """Runs in a process of its own: the application registering its
    URLs with the server at `url`, 1,000 per call, once told to go."""
    import xmlrpc.client
    with open(urls_file) as f:
        urls = f.read().split()
    proxy = xmlrpc.client.ServerProxy(url)
    print('ready', flush=True)
    sys.stdin.readline()
    t0 = time.monotonic()
    cpu0 = time.process_time()
    for i in range(0, len(urls), 1000):
        proxy.registerURLs(client_id, password, urls[i:i + 1000])
    print(json.dumps({'seconds': time.monotonic() - t0,
                      'cpu_seconds': time.process_time() - cpu0}),
          flush=True)


# -- main ----------------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--urls', type=int, default=10_000)
    parser.add_argument('--hosts', type=int, default=1000)
    parser.add_argument('--per-host-delay', type=float, default=0.1)
    parser.add_argument('--concurrency', type=int, default=100)
    parser.add_argument('--skip-linkchecker', action='store_true')
    parser.add_argument('--million', action='store_true',
                        help='the memory run: 1,000,000 registered URLs, '
                             '500,000 due')
    parser.add_argument('--registered', type=int, default=1_000_000)
    parser.add_argument('--due', type=int, default=500_000)
    parser.add_argument('--max-check-seconds', type=float, default=None)
    parser.add_argument('--linksync-side', nargs='+', help=argparse.SUPPRESS)
    parser.add_argument('--client-side', nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client_side:
        return client_side(*args.client_side)
    if args.linksync_side:
        urls_file, delay, concurrency, *rest = args.linksync_side
        numbers = [float(x) if '.' in x else int(x) for x in rest[:3]]
        return linksync_side(urls_file, float(delay), int(concurrency),
                             *numbers, *rest[3:])

    load_before = os.getloadavg()[0]
    os.makedirs(OUT, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix='run-', dir=OUT)
    hosts = host_addresses(args.hosts)
    port = free_port()
    stop_nginx = start_nginx(hosts, port, os.path.join(workdir, 'nginx'))
    try:
        urls = url_list(args.urls, hosts, port)
        urls_file = os.path.join(workdir, 'urls.txt')
        with open(urls_file, 'w') as f:
            f.write('\n'.join(urls) + '\n')
        child = [PYTHON, os.path.abspath(__file__), '--linksync-side',
                 urls_file, str(args.per_host_delay), str(args.concurrency)]
        if args.million:
            child += [str(args.registered), str(args.due),
                      str(float(args.max_check_seconds or 10**9))]
            data = tempfile.mkdtemp(prefix='data-', dir=workdir)
            registered, _, _ = run_child(child + ['register', data])
            result, wall, out = run_child(child + ['check', data])
            result.update(registered)
            print('linksync, %d registered URLs (%d due) over %d hosts:' % (
                args.registered, args.due, len(hosts)))
            print('  registering (a process of its own): %.0f s, peak RSS '
                  '%.0f MiB' % (
                result['register_seconds'], result['register_rss_mib']))
            print('  scheduling + checking: %d of %d due URLs in %.0f s '
                  '(%.0f URLs/s)' % (
                      result['checked'], result['due'],
                      result['check_seconds'],
                      result['checked'] / result['check_seconds']))
            print('  checking CPU: %.0f s (%.0f us per check); the checker\'s '
                  'connection loaded %d and stored %d objects (%.1f and %.1f '
                  'per check); its cache holds %d objects, %d of them loaded'
                  % (result['check_cpu_seconds'], 1e6 * result[
                      'check_cpu_seconds'] / max(result['checked'], 1),
                     result['loads'], result['stores'],
                     result['loads'] / max(result['checked'], 1),
                     result['stores'] / max(result['checked'], 1),
                     result['cache_objects'], result['cache_non_ghosts']))
            print('  peak RSS of the server started on that database: %.0f '
                  'MiB (limit 1024 MiB), at the end %.0f MiB' % (
                      result['peak_rss_mib'], result['rss_now_mib']))
            print('  database connections (objects, loaded, estimated '
                  'MiB of their records): %s' % result['connections'])
            print('  on disk: %d bytes written (%.0f per registered URL), '
                  '%d once packed (%.0f per URL)' % (
                      result['disk_bytes'],
                      result['disk_bytes'] / args.registered,
                      result['packed_bytes'],
                      result['packed_bytes'] / args.registered))
            print('  objects in the database: %d (%.1f per URL); the '
                  'FileStorage index of them takes %.0f MiB once opened '
                  '(%.0f bytes per object)' % (
                      result['objects'], result['objects'] / args.registered,
                      result['index_bytes'] / 2**20,
                      result['index_bytes'] / max(result['objects'], 1)))
            return 0
        print('%d URLs over %d host addresses, per-host delay %g s, '
              'concurrency %d' % (len(urls), len(hosts), args.per_host_delay,
                                  args.concurrency))
        started = time.time()
        result, wall, out = run_child(child)
        ended = time.time()
        rss = result['peak_rss_mib']
        ls_rate = len(urls) / result['seconds']
        print('linksync:    %6.1f s  %7.0f URLs/s  peak RSS %4.0f MiB  '
              'CPU %5.1f s, %.2f s of it from registration to the last state '
              '(registration over XML-RPC %.1f s, by a client process '
              'that used %.2f s of CPU; states %s)'
              % (result['seconds'], ls_rate, rss, result['cpu_seconds'],
                 result['window_cpu_seconds'],
                 result['register_seconds'], result['client_cpu_seconds'],
                 result['states']))
        count, gap, first, final = wire_gaps(workdir, started, ended)
        print('  at the wire: %d requests; the smallest gap between two '
              'requests to one host: %s (--per-host-delay %g s)' % (
                  count, '%.0f ms' % (gap * 1000) if gap is not None
                  else 'none', args.per_host_delay))
        if first is not None:
            begun = result['register_epoch']
            print('  from the start of registration: first request at %.2f '
                  's, last at %.2f s, last state stored at %.2f s' % (
                      first - begun, final - begun, result['seconds']))
        if args.skip_linkchecker:
            return 0
        started = time.time()
        lc_wall, lc_rss, lc_checked, lc_cpu = run_linkchecker(urls)
        ended = time.time()
        lc_rate = len(urls) / lc_wall
        print('LinkChecker: %6.1f s  %7.0f URLs/s  peak RSS %4.0f MiB  '
              'CPU %5.1f s  (%s URLs checked, by its report)' % (
                  lc_wall, lc_rate, lc_rss, lc_cpu, lc_checked))
        count, gap, _, _ = wire_gaps(workdir, started, ended)
        print('  at the wire: %d requests; the smallest gap between two '
              'requests to one host: %s' % (
                  count, '%.0f ms' % (gap * 1000) if gap is not None
                  else 'none'))
        print('ratio (linksync URLs/s / LinkChecker URLs/s): %.1fx' % (
            ls_rate / lc_rate))
        print('load average (1 min) before the run: %.1f; other work on '
              'the machine slows both sides' % load_before)
    finally:
        stop_nginx()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == '__main__':
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
