#!/usr/bin/env python
"""XML-RPC throughput: linksync vs the standard library, side by side.

    .venv/bin/python bench/xmlrpc.py              # full run (1,000,000 URLs)
    .venv/bin/python bench/xmlrpc.py --urls 100000 --seconds 5   # quicker
    .venv/bin/python bench/xmlrpc.py --ingest-only --ingest-clients 1

Both servers run as separate processes on 127.0.0.1 and get the same load
from one asyncio load generator (pre-marshalled requests over keep-alive
HTTP/1.1 connections, so the client side costs little CPU):

* linksync: ``linksync serve`` on a fresh FileStorage (durable: every call
  commits), logging one line per request to a file as it does by default;
* baseline: ``SimpleXMLRPCServer`` with ``ThreadingMixIn`` (one thread per
  connection, HTTP/1.1 keep-alive, the stronger of its two modes) serving the
  same methods from dicts in memory, checking passwords with a constant-time
  compare.

Measured: checkConnection calls/s, and URLs/s ingested by registerURLs
(batches of 1,000), each with 1 and with 50 concurrent clients; the peak
memory (VmHWM) of each server. Prints a table with the ratios.

With ``--floor`` the calls/s figures also show what a bare Twisted server
does on this machine in the same run: a protocol reading each request's
head and body and writing one canned answer (no XML, no database, no log):
the most any Twisted server's calls/s can be here.
"""

import os
import sys

# This file is named like the standard library's xmlrpc package; run as a
# script, its own directory comes first on sys.path and would shadow it.
if sys.path and os.path.abspath(sys.path[0] or '.') == os.path.dirname(
        os.path.abspath(__file__)):
    del sys.path[0]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import hmac  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import socketserver  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import xmlrpc.client  # noqa: E402
from xmlrpc.server import (SimpleXMLRPCRequestHandler,  # noqa: E402
                           SimpleXMLRPCServer)

SECRET = 'bench-secret'
BATCH = 1000


# -- the baseline server (runs in its own process) --------------------------

class _ThreadingServer(socketserver.ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True
    # The default backlog of 5 resets connections when 50 clients connect
    # at once; give the baseline a fair chance.
    request_queue_size = 128


class _KeepAliveHandler(SimpleXMLRPCRequestHandler):
    protocol_version = 'HTTP/1.1'
    rpc_paths = ('/', '/RPC2')


def run_baseline(port):
    passwords = {}
    client_urls = {}
    states = {}

    def auth(client_id, password):
        expected = passwords.get(client_id)
        if expected is None or not hmac.compare_digest(
                expected.encode(), password.encode()):
            raise xmlrpc.client.Fault(401, 'unauthorized')

    def registerClient(secret, client_id, callback, name, email, password):
        if secret != SECRET:
            raise xmlrpc.client.Fault(401, 'unauthorized')
        passwords[client_id] = password
        client_urls[client_id] = set()
        return True

    def checkConnection(client_id, password):
        auth(client_id, password)
        return 2

    def registerURLs(client_id, password, urls):
        auth(client_id, password)
        mine = client_urls[client_id]
        known = []
        for url in urls:
            state = states.get(url)
            if state is None:
                states[url] = None
            else:
                known.append([url, state, ''])
            mine.add(url)
        return known

    server = _ThreadingServer(('127.0.0.1', port), _KeepAliveHandler,
                              logRequests=False, allow_none=False)
    for func in (registerClient, checkConnection, registerURLs):
        server.register_function(func)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    server.serve_forever()


# -- the floor: a bare Twisted server (runs in its own process) -------------

def run_floor(port):
    from twisted.internet import protocol, reactor

    body = xmlrpc.client.dumps((2,), methodresponse=True).encode()
    answer = (b'HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n'
              b'Content-Length: %d\r\n\r\n%s' % (len(body), body))

    class Canned(protocol.Protocol):
        buffer = b''

        def connectionMade(self):
            self.transport.setTcpNoDelay(True)

        def dataReceived(self, data):
            self.buffer += data
            while True:
                end = self.buffer.find(b'\r\n\r\n')
                if end < 0:
                    return
                length = 0
                for line in self.buffer[:end].split(b'\r\n')[1:]:
                    name, _, value = line.partition(b':')
                    if name.lower() == b'content-length':
                        length = int(value)
                if len(self.buffer) < end + 4 + length:
                    return
                self.buffer = self.buffer[end + 4 + length:]
                self.transport.write(answer)

    factory = protocol.Factory.forProtocol(Canned)
    reactor.listenTCP(port, factory, backlog=128, interface='127.0.0.1')
    signal.signal(signal.SIGTERM, lambda *a: reactor.stop())
    reactor.run()


# -- processes ------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_for(port, process, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError('server exited with %s' % process.returncode)
        try:
            socket.create_connection(('127.0.0.1', port), 1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError('server did not start on port %d' % port)


def cpu_seconds(pid):
    """The CPU time (user and system) process `pid` has used so far."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rpartition(')')[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def peak_memory_mib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return float('nan')


class Server:
    def __init__(self, kind, workdir, serve_args=()):
        self.kind = kind
        self.serve_args = list(serve_args)
        self.port = free_port()
        self.workdir = workdir

    def __enter__(self):
        if self.kind == 'linksync':
            data = os.path.join(self.workdir, 'var-%d' % self.port)
            self.log = open(os.path.join(self.workdir, 'serve.log'), 'a')
            cmd = [sys.executable, '-m', 'linksync.cli', 'serve', '--data',
                   data, '--secret', SECRET, '--listen',
                   'tcp:%d:interface=127.0.0.1' % self.port] + \
                self.serve_args
        else:
            self.log = subprocess.DEVNULL
            cmd = [sys.executable, os.path.abspath(__file__),
                   '--%s-server' % self.kind, str(self.port)]
        self.process = subprocess.Popen(cmd, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        wait_for(self.port, self.process)
        return self

    def __exit__(self, *exc):
        self.peak = peak_memory_mib(self.process.pid)
        self.cpu = cpu_seconds(self.process.pid)
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)
        if self.log is not subprocess.DEVNULL:
            self.log.close()


# -- the load generator ------------------------------------------------------

def request_bytes(method, *params):
    body = xmlrpc.client.dumps(params, method).encode('utf-8')
    return (b'POST /RPC2 HTTP/1.1\r\nHost: 127.0.0.1\r\n'
            b'Content-Type: text/xml\r\nContent-Length: %d\r\n\r\n%s'
            % (len(body), body))


class Connection:
    def __init__(self, port):
        self.port = port
        self.reader = self.writer = None

    async def call(self, request):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                '127.0.0.1', self.port)
        self.writer.write(request)
        status = await self.reader.readline()
        length, close = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b'\r\n', b''):
                break
            name, _, value = line.partition(b':')
            name = name.strip().lower()
            if name == b'content-length':
                length = int(value)
            elif name == b'connection' and b'close' in value.lower():
                close = True
        body = await self.reader.readexactly(length)
        if not status.startswith(b'HTTP/1.1 200') or b'<fault>' in body:
            raise RuntimeError('call failed: %r %r' % (status, body[:300]))
        if close or status.startswith(b'HTTP/1.0'):
            self.writer.close()
            self.writer = None
        return body

    def close(self):
        if self.writer is not None:
            self.writer.close()


async def _calls_per_second(port, concurrency, seconds, request):
    count = 0
    deadline = time.perf_counter() + seconds

    async def worker():
        nonlocal count
        conn = Connection(port)
        try:
            while time.perf_counter() < deadline:
                await conn.call(request)
                count += 1
        finally:
            conn.close()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


async def _ingest(port, concurrency, total, clients):
    """Send `total` URLs in batches over `concurrency` connections."""
    batches = total // BATCH
    queue = asyncio.Queue()
    for i in range(batches):
        queue.put_nowait(i)

    async def worker(n):
        client_id, password = clients[n % len(clients)]
        conn = Connection(port)
        try:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                urls = ['http://host%d.example/page/%d' % (i % 1000, i * BATCH + j)
                        for j in range(BATCH)]
                await conn.call(request_bytes('registerURLs', client_id,
                                              password, urls))
        finally:
            conn.close()
    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return batches * BATCH / (time.perf_counter() - started)


def register_clients(port, count):
    proxy = xmlrpc.client.ServerProxy('http://127.0.0.1:%d/RPC2' % port)
    clients = []
    for n in range(count):
        client_id, password = 'client%d' % n, 'password-of-client-%d' % n
        proxy.registerClient(SECRET, client_id, 'http://127.0.0.1:9/',
                             'Bench', 'bench@example.com', password)
        clients.append((client_id, password))
    return clients


# -- the run -------------------------------------------------------------------

def _plural(n):
    return '%d client%s' % (n, 's' if n > 1 else '')


def calls_scenario(kind, args, workdir, concurrency):
    with Server(kind, workdir, args.serve_args if kind == "linksync" else ()) as server:
        if kind == 'floor':
            clients = [('client0', 'password-of-client-0')]
        else:
            clients = register_clients(server.port, 1)
        request = request_bytes('checkConnection', *clients[0])
        # Warm up (connections, caches, remembered credentials).
        asyncio.run(_calls_per_second(server.port, concurrency, 0.5,
                                      request))
        return asyncio.run(_calls_per_second(
            server.port, concurrency, args.seconds, request))


def ingest_scenario(kind, args, workdir, concurrency):
    with Server(kind, workdir, args.serve_args if kind == "linksync" else ()) as server:
        clients = register_clients(server.port, concurrency)
        # The server's CPU time for the ingest alone: what it would take
        # on a core of its own, whatever else the machine runs.
        cpu = cpu_seconds(server.process.pid)
        rate = asyncio.run(_ingest(server.port, concurrency, args.urls,
                                   clients))
        cpu = cpu_seconds(server.process.pid) - cpu
    return rate, server.peak, cpu


def measure(args, workdir):
    """{figure: {kind: value}}, linksync and baseline alternating, so that
    both see the same machine."""
    results = {}
    kinds = ('linksync', 'baseline')
    for concurrency in () if args.ingest_only else (1, 50):
        key = 'checkConnection calls/s, ' + _plural(concurrency)
        results[key] = {}
        for kind in kinds + (('floor',) if args.floor else ()):
            print('%s: %s ...' % (kind, key), file=sys.stderr)
            results[key][kind] = calls_scenario(kind, args, workdir,
                                                concurrency)
    for concurrency in args.ingest_clients:
        key = 'registerURLs URLs/s, ' + _plural(concurrency)
        memory = 'peak server MiB, ingest ' + _plural(concurrency)
        cpu = 'server CPU s, ingest ' + _plural(concurrency)
        results[key], results[memory], results[cpu] = {}, {}, {}
        for kind in kinds:
            print('%s: %s ...' % (kind, key), file=sys.stderr)
            results[key][kind], results[memory][kind], \
                results[cpu][kind] = ingest_scenario(kind, args, workdir,
                                                     concurrency)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--urls', type=int, default=1_000_000,
                        help='URLs to ingest per scenario')
    parser.add_argument('--seconds', type=float, default=10,
                        help='duration of each calls/s measurement')
    parser.add_argument('--floor', action='store_true',
                        help='also measure the calls/s of a bare Twisted '
                        'server answering a canned response')
    parser.add_argument('--ingest-only', action='store_true',
                        help='measure the registerURLs ingest only (no '
                        'checkConnection calls/s)')
    parser.add_argument('--ingest-clients', default='1,50',
                        type=lambda text: [int(n) for n in text.split(',')],
                        metavar='N,N', help='the concurrent clients of '
                        'each ingest scenario (default 1,50)')
    parser.add_argument('--serve-args', default='', type=str.split,
                        metavar='"ARGS"', help='further options of '
                        '`linksync serve` (e.g. "--cache-mib 64")')
    parser.add_argument('--baseline-server', type=int, metavar='PORT',
                        help=argparse.SUPPRESS)
    parser.add_argument('--floor-server', type=int, metavar='PORT',
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        return run_baseline(args.baseline_server)
    if args.floor_server:
        return run_floor(args.floor_server)
    workdir = tempfile.mkdtemp(prefix='linksync-bench-')
    try:
        results = measure(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print('\nXML-RPC benchmark: %d URLs ingested per scenario, %g s per '
          'calls/s figure (Python %s, %d cores)' % (
              args.urls, args.seconds, sys.version.split()[0],
              os.cpu_count()))
    print('%-40s %12s %12s %7s%s' % ('', 'linksync', 'stdlib', 'ratio',
                                     '   bare Twisted' if args.floor else ''))
    for key, values in results.items():
        ours, base = values['linksync'], values['baseline']
        ratio = ours / base if base else float('nan')
        floor = values.get('floor')
        number = '%12.1f' if key.startswith('server CPU') else '%12.0f'
        print(('%-40s ' + number + ' ' + number + ' %6.2fx%s') % (
            key, ours, base, ratio, '' if floor is None else
            ' %8.0f (%.2fx)' % (floor, floor / base)))
    if 1 in args.ingest_clients:
        rate = results['registerURLs URLs/s, 1 client']['linksync']
        cpu = results['server CPU s, ingest 1 client']['linksync']
        print('\nlinksync ingested %d URLs from 1 client in %.1f s, using '
              '%.1f s of CPU (%.1f us per URL)' % (
                  args.urls, args.urls / rate, cpu, cpu / args.urls * 1e6))
    print('load average at the end: %.2f %.2f %.2f' % os.getloadavg())


if __name__ == '__main__':
    sys.exit(main())
