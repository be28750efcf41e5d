"""The per-host delay, held where it counts: at the hosts.

The checker runs in a whole server on the real clock, storing its results
in small batches (commits going on), each commit made 150 ms slower,
longer than the delay, as a big database on a slow disk makes it. The web servers run in a process of their own and
note when each request arrives (the system's monotonic clock, which every
process shares), so their times do not wait for the server's reactor.
No two requests to one host may arrive closer than the delay, less 10 ms
for the scheduling of the servers' own process.
"""

import os
import subprocess
import sys
import textwrap
import time

import pytest

from linksync import testing

DELAY = 0.1
HOSTS = ['127.0.4.%d' % n for n in range(1, 21)]
PER_HOST = 12

# Answers every request at once (200, or 404 for /missing/), keeps the
# connection, and prints "address monotonic-time" when a request's first
# bytes arrive.
_SERVER = textwrap.dedent('''
    import asyncio, sys, time

    class Web(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            self.address = transport.get_extra_info('sockname')[0]
            self.buffer = b''

        def data_received(self, data):
            if not self.buffer:
                print(self.address, time.monotonic(), flush=True)
            self.buffer += data
            while b'\\r\\n\\r\\n' in self.buffer:
                head, _, self.buffer = self.buffer.partition(b'\\r\\n\\r\\n')
                missing = b' /missing/' in head.split(b'\\r\\n')[0]
                status = b'404 Not Found' if missing else b'200 OK'
                self.transport.write(b'HTTP/1.1 ' + status +
                                     b'\\r\\nContent-Length: 0\\r\\n\\r\\n')
                if self.buffer:
                    print(self.address, time.monotonic(), flush=True)

    async def main():
        loop = asyncio.get_running_loop()
        servers = [await loop.create_server(Web, host, 0)
                   for host in sys.argv[1:]]
        ports = [s.sockets[0].getsockname()[1] for s in servers]
        print('ports', *ports, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
''')


@pytest.fixture
def web():
    proc = subprocess.Popen([sys.executable, '-c', _SERVER] + HOSTS,
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().split()
        assert line and line[0] == 'ports', line
        yield proc, [int(p) for p in line[1:]]
    finally:
        proc.kill()
        proc.wait()


def test_no_two_requests_to_a_host_arrive_closer_than_the_delay(web):
    from twisted.internet import reactor
    proc, ports = web
    server = testing.ServerFixture(
        clock=reactor, per_host_delay=DELAY, concurrency=100,
        per_host_connections=1)
    server.start()
    client = server.register_client('wire')
    proxy = server.proxy()
    # A HEAD answered 404 is asked again with GET: two requests per URL.
    urls = ['http://%s:%d/%s/%d' % (host, port,
                                    'missing' if i % 4 == 0 else 'ok', i)
            for i in range(PER_HOST) for host, port in zip(HOSTS, ports)]

    scheduler = server.service.getServiceNamed('checker').scheduler
    write = scheduler._write

    def slow_write(app, batch):
        # Each batch of results held 150 ms longer in its commit, with the
        # reactor (and the GIL): what a big database on a slow disk does.
        # It runs when an answer completes a batch, right after the
        # answers read in the same turn released the next requests.
        end = time.monotonic() + 0.15
        while time.monotonic() < end:
            pass
        return write(app, batch)
    scheduler._write = slow_write
    scheduler.WRITE_BATCH = 8
    try:
        for i in range(0, len(urls), 60):
            proxy.registerURLs(*client, urls[i:i + 60])
        deadline = time.monotonic() + 120
        while scheduler.written < len(urls) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert scheduler.written == len(urls)
    finally:
        server.stop()
    proc.kill()
    arrivals = {}
    for line in proc.stdout.read().splitlines():
        address, when = line.split()
        arrivals.setdefault(address, []).append(float(when))
    assert sorted(arrivals) == sorted(HOSTS)
    for address, times in arrivals.items():
        # HEADs and the GETs after the 404s.
        assert len(times) == PER_HOST + PER_HOST // 4, address
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert min(gaps) >= DELAY - 0.010, (address, min(gaps))
