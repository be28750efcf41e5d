"""Benchmark: the longest reactor stall of one big registerURLs.

    .venv/bin/python bench/stall.py [--urls 100000] [--slices 2000,1000,500]

A linksync server (API only, FileStorage, the real clock) runs in this
process with a heartbeat in its reactor every 5 ms; one client registers
URLS URLs in one ``registerURLs`` call over XML-RPC. Printed per slice size
(the URLs per unit of work of a long call, ``LinkSyncAPI.slice_urls``; the
first is the server's default when none is given): the call's wall time
and the longest gap between two heartbeats, i.e. the longest time every
other client waited. Each slice size gets a fresh server.
"""

import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# bench/xmlrpc.py would hide the standard library's xmlrpc package.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != HERE]
sys.path.insert(0, os.path.join(HERE, '..', 'src'))

import xmlrpc.client  # noqa: E402

from linksync import testing  # noqa: E402


def measure(reactor, rt, urls, slice_urls=None):
    from twisted.internet import task
    server = testing.ServerFixture(data=tempfile.mkdtemp(
        prefix='linksync-stall-'), clock=reactor, roles=('api',))
    server.start()
    api = server.service.api.api
    if slice_urls:
        api.slice_urls = slice_urls
    client = server.register_client('big', 'big-password')
    gaps = {'max': 0.0, 'last': None}

    def beat():
        now = time.monotonic()
        if gaps['last'] is not None:
            gaps['max'] = max(gaps['max'], now - gaps['last'])
        gaps['last'] = now
    loop = task.LoopingCall(beat)
    rt.call(lambda: (loop.start(0.005), None)[1])
    proxy = xmlrpc.client.ServerProxy(server.url)
    time.sleep(0.5)
    gaps['max'] = 0.0
    started = time.monotonic()
    proxy.registerURLs(*client, urls)
    wall = time.monotonic() - started
    rt.call(loop.stop)
    server.stop()
    return api.slice_urls, wall, gaps['max']


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--urls', type=int, default=100_000)
    parser.add_argument('--slices', default='',
                        help='slice sizes to compare, after the default')
    args = parser.parse_args()
    rt = testing.reactor_thread()
    from twisted.internet import reactor
    urls = ['http://host%d.example/page/%d' % (i % 997, i)
            for i in range(args.urls)]
    sizes = [None] + [int(s) for s in args.slices.split(',') if s]
    print('one registerURLs of %d URLs; load average %.1f' % (
        args.urls, os.getloadavg()[0]))
    for size in sizes:
        used, wall, stall = measure(reactor, rt, urls, size)
        print('  slices of %5d URLs%s: %5.1f s, longest reactor stall '
              '%4.0f ms' % (used, ' (default)' if size is None else '',
                            wall, stall * 1000))
    testing.cleanup()


if __name__ == '__main__':
    main()
