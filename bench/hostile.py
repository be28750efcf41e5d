"""Benchmark: a well-behaved client's latency while hostile clients attack.

    .venv/bin/python bench/hostile.py [--seconds 5]

Starts a real ``linksync serve`` (FileStorage in a temporary directory) on
127.0.0.1. A well-behaved client calls ``checkConnection`` back to back for
the whole run and records every call's latency. The attacks run one after
the other, each for ``--seconds``, after a quiet phase of the same length:

* ``wrong-password multicall``: multicalls of 400 wrong passwords for a
  known client id, one after the other;
* ``wrong passwords 4x15/s``: 4 clients sending wrong passwords for known
  ids at 15 calls/s each;
* ``secret guessing``: multicalls of 1000 wrong management secrets, and
  wrong secrets posted to /login, back to back;
* ``30,000-call multicalls``: 15 connections each sending a 30,000-call
  ``system.listMethods`` multicall and never reading the answer;
* ``100,000-URL registerURLs``: one client registering 100,000 new URLs in
  one call (the body marshalled beforehand), the phase lasting until it is
  answered (at least ``--seconds``); its own duration is printed too;
* ``300 half-sent bodies``: 300 connections (from 4 loopback addresses, 75
  each, under the per-address cap) each declaring a 1 MiB body and sending
  half of it, then holding still until the phase ends.

For each phase it prints the well-behaved client's median and worst
latency, its failed calls, and the server's RSS at the phase's start and
end, and its end beside the quiet figure.

    .venv/bin/python bench/hostile.py --registered-memory [--urls 100000]

measures instead what the big-call phase is to be read against: what a
quiet server's memory grows by (its RSS before, and 4 s after) when one
client registers the same URLs politely, in batches of 1,000, and in one
call; each on a fresh server.
"""

import os
import sys

# bench/xmlrpc.py, beside this file, would shadow the standard library's
# xmlrpc package: this directory leaves sys.path.
if sys.path and os.path.abspath(sys.path[0] or '.') == os.path.dirname(
        os.path.abspath(__file__)):
    del sys.path[0]

import argparse  # noqa: E402
import http.client  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402
import xmlrpc.client  # noqa: E402

SECRET = 'bench-secret'


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def rss_mib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return 0.0


class WellBehaved(threading.Thread):
    """Calls checkConnection back to back; latencies by phase."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.proxy = xmlrpc.client.ServerProxy(url)
        self.phase = 'quiet'
        self.latencies = {}
        self.failures = {}
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            phase = self.phase
            started = time.perf_counter()
            try:
                ok = self.proxy.checkConnection('good', 'good-password') == 2
            except Exception:
                ok = False
            elapsed = time.perf_counter() - started
            self.latencies.setdefault(phase, []).append(elapsed)
            if not ok:
                self.failures[phase] = self.failures.get(phase, 0) + 1
            time.sleep(0.01)


def until(deadline, func):
    while time.monotonic() < deadline:
        try:
            func()
        except (xmlrpc.client.Error, OSError, http.client.HTTPException):
            pass


def wrong_password_multicall(url, deadline):
    proxy = xmlrpc.client.ServerProxy(url)
    calls = [{'methodName': 'checkConnection',
              'params': ['victim0', 'wrong%d' % i]} for i in range(400)]
    until(deadline, lambda: proxy.system.multicall(calls))


def wrong_passwords_paced(url, deadline):
    def attacker(n):
        proxy = xmlrpc.client.ServerProxy(url)
        i = 0
        while time.monotonic() < deadline:
            try:
                proxy.checkConnection('victim%d' % n, 'wrong%d' % i)
            except (xmlrpc.client.Error, OSError):
                pass
            i += 1
            time.sleep(1 / 15)
    threads = [threading.Thread(target=attacker, args=(n,))
               for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def secret_guessing(url, deadline):
    proxy = xmlrpc.client.ServerProxy(url)
    calls = [{'methodName': 'admin.pack', 'params': ['guess%d' % i, 1.0]}
             for i in range(1000)]
    parts = urllib.parse.urlsplit(url)

    def login():
        conn = http.client.HTTPConnection(parts.hostname, parts.port,
                                          timeout=30)
        conn.request('POST', '/login', body='secret=guess&next=%2F',
                     headers={'Content-Type':
                              'application/x-www-form-urlencoded'})
        conn.getresponse().read()
        conn.close()
    other = threading.Thread(target=until, args=(deadline, login))
    other.start()
    until(deadline, lambda: proxy.system.multicall(calls))
    other.join()


def huge_multicalls(url, deadline):
    parts = urllib.parse.urlsplit(url)
    body = xmlrpc.client.dumps(
        ([{'methodName': 'system.listMethods', 'params': []}] * 30_000,),
        'system.multicall').encode()
    sockets = []
    for _ in range(15):
        s = socket.create_connection((parts.hostname, parts.port))
        s.sendall(b'POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: '
                  b'text/xml\r\nContent-Length: %d\r\n\r\n' % len(body)
                  + body)
        sockets.append(s)
    time.sleep(max(0.0, deadline - time.monotonic()))
    for s in sockets:
        s.close()


def big_register(url, deadline, urls=100_000):
    parts = urllib.parse.urlsplit(url)
    body = xmlrpc.client.dumps(
        ('big', 'big-password', ['http://bench%d.example/page/%d' % (i % 997, i)
                                 for i in range(urls)]),
        'registerURLs').encode()
    started = time.perf_counter()
    conn = http.client.HTTPConnection(parts.hostname, parts.port,
                                      timeout=600)
    conn.request('POST', '/RPC2', body=body,
                 headers={'Content-Type': 'text/xml'})
    answer = conn.getresponse().read()
    conn.close()
    took = time.perf_counter() - started
    assert xmlrpc.client.loads(answer)[0] == ([],), answer[:200]
    NOTES.append('100,000-URL registerURLs answered in %.1f s (%d bytes '
                 'sent)' % (took, len(body)))
    time.sleep(max(0.0, deadline - time.monotonic()))


def half_sent_bodies(url, deadline, count=300, length=1024 * 1024):
    parts = urllib.parse.urlsplit(url)
    half = b'x' * (length // 2)
    sockets = []
    for n in range(count):
        s = socket.socket()
        # 75 per source address: the server takes 100 from each.
        s.bind(('127.0.0.%d' % (2 + n % 4), 0))
        s.connect((parts.hostname, parts.port))
        s.sendall(b'POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: '
                  b'text/xml\r\nContent-Length: %d\r\n\r\n' % length
                  + half)
        sockets.append(s)
    time.sleep(max(0.0, deadline - time.monotonic()))
    held = 0
    for s in sockets:
        s.setblocking(False)
        try:
            held += s.recv(1) == b''
        except BlockingIOError:
            held += 1
        s.close()
    NOTES.append('half-sent bodies: %d of %d connections still open at '
                 'the end' % (held, count))


NOTES = []

ATTACKS = [('wrong-password multicall', wrong_password_multicall),
           ('wrong passwords 4x15/s', wrong_passwords_paced),
           ('secret guessing', secret_guessing),
           ('30,000-call multicalls', huge_multicalls),
           ('100,000-URL registerURLs', big_register),
           ('300 half-sent bodies', half_sent_bodies)]


def start_server(workdir, log):
    """A `linksync serve` on a free port of 127.0.0.1, once it answers:
    (the process, its XML-RPC URL)."""
    port = free_port()
    url = 'http://127.0.0.1:%d/RPC2' % port
    server = subprocess.Popen(
        [sys.executable, '-m', 'linksync.cli', 'serve', '--data',
         os.path.join(workdir, 'var'), '--secret', SECRET, '--listen',
         'tcp:%d:interface=127.0.0.1' % port], stdout=log, stderr=log)
    proxy = xmlrpc.client.ServerProxy(url)
    for _ in range(600):
        try:
            proxy.system.listMethods()
            break
        except OSError:
            time.sleep(0.1)
    return server, url


def registered_memory(urls, batch):
    """(RSS before, RSS 4 s after) of a fresh quiet server one client
    gives `urls` in calls of `batch` URLs."""
    workdir = tempfile.mkdtemp(prefix='linksync-memory-')
    log = open(os.path.join(workdir, 'serve.log'), 'w')
    server, url = start_server(workdir, log)
    try:
        proxy = xmlrpc.client.ServerProxy(url)
        proxy.registerClient(SECRET, 'big', 'http://127.0.0.1:9/', 'Big',
                             'big@example.com', 'big-password')
        time.sleep(2)
        before = rss_mib(server.pid)
        for i in range(0, len(urls), batch):
            proxy.registerURLs('big', 'big-password', urls[i:i + batch])
        time.sleep(4)
        return before, rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(60)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main_registered_memory(count):
    urls = ['http://host%d.example/page/%d' % (i % 997, i)
            for i in range(count)]
    print('%d URLs; load average %.1f' % (count, os.getloadavg()[0]))
    for label, batch in (('in batches of 1,000', 1000),
                         ('in one call', len(urls))):
        before, after = registered_memory(urls, batch)
        print('  %-20s %4.0f -> %4.0f MiB (%.2fx, +%.0f MiB)' % (
            label, before, after, after / before, after - before))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=5.0)
    parser.add_argument('--registered-memory', action='store_true',
                        help='measure what registering URLs costs a quiet '
                             'server instead')
    parser.add_argument('--urls', type=int, default=100_000,
                        help='with --registered-memory: how many')
    args = parser.parse_args()
    if args.registered_memory:
        return main_registered_memory(args.urls)
    workdir = tempfile.mkdtemp(prefix='linksync-hostile-')
    log = open(os.path.join(workdir, 'serve.log'), 'w')
    server, url = start_server(workdir, log)
    try:
        proxy = xmlrpc.client.ServerProxy(url)
        for client_id in ['good', 'big'] + ['victim%d' % n
                                            for n in range(4)]:
            proxy.registerClient(SECRET, client_id, 'http://127.0.0.1:9/',
                                 'Bench', 'bench@example.com',
                                 client_id + '-password')
        good = WellBehaved(url)
        good.start()
        time.sleep(args.seconds)
        quiet_rss = rss_mib(server.pid)
        rows = [('quiet', quiet_rss, quiet_rss)]
        loads = [os.getloadavg()[0]]
        for name, attack in ATTACKS:
            before = rss_mib(server.pid)
            good.phase = name
            attack(url, time.monotonic() + args.seconds)
            rows.append((name, before, rss_mib(server.pid)))
            loads.append(os.getloadavg()[0])
        good.stop.set()
        good.join()
        print('load average: %.2f %.2f %.2f (1-min figure over the run: '
              '%.1f-%.1f)' % (os.getloadavg() + (min(loads), max(loads))))
        print('%-26s %8s %9s %6s %7s %17s' % (
            'phase', 'median', 'worst', 'calls', 'failed',
            'RSS MiB start-end'))
        for name, before, rss in rows:
            lat = good.latencies.get(name, [0.0])
            print('%-26s %6.1fms %7.1fms %6d %7d %6.0f-%4.0f (%.2fx)' % (
                name, statistics.median(lat) * 1000, max(lat) * 1000,
                len(lat), good.failures.get(name, 0), before, rss,
                rss / quiet_rss))
        for note in NOTES:
            print(note)
    finally:
        server.terminate()
        server.wait(60)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    main()
