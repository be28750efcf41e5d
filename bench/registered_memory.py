"""Benchmark: what a server's memory grows by when it gets URLs, politely or
in one call.

    .venv/bin/python bench/registered_memory.py [--urls 100000]

Starts ``linksync serve`` (all roles, FileStorage in a temporary
directory) twice; each time one client registers URLS URLs, once in
batches of 1,000 and once in one ``registerURLs``, and the server's
resident memory (VmRSS) is read before and 4 s after. The difference is
what holding (and starting to check) those URLs costs: the figure
bench/hostile.py's big-call phase is to be read against.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# bench/xmlrpc.py would hide the standard library's xmlrpc package.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != HERE]

import xmlrpc.client  # noqa: E402

LINKSYNC = [sys.executable, '-m', 'linksync.cli']


def rss_mib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return 0.0


def run(urls, batch):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    data = tempfile.mkdtemp(prefix='linksync-memory-')
    env = dict(os.environ, PYTHONPATH=os.path.join(HERE, '..', 'src'))
    server = subprocess.Popen(
        LINKSYNC + ['serve', '--data', data, '--secret', 's3cret',
                    '--listen', 'tcp:%d:interface=127.0.0.1' % port],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        proxy = xmlrpc.client.ServerProxy('http://127.0.0.1:%d/RPC2' % port)
        for _ in range(300):
            try:
                proxy.system.listMethods()
                break
            except OSError:
                time.sleep(0.1)
        proxy.registerClient('s3cret', 'big', 'http://127.0.0.1:9/', 'Big',
                             'big@example.com', 'big-password')
        time.sleep(2)
        before = rss_mib(server.pid)
        for i in range(0, len(urls), batch):
            proxy.registerURLs('big', 'big-password', urls[i:i + batch])
        time.sleep(4)
        return before, rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(data, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--urls', type=int, default=100_000)
    args = parser.parse_args()
    urls = ['http://host%d.example/page/%d' % (i % 997, i)
            for i in range(args.urls)]
    print('%d URLs; load average %.1f' % (args.urls, os.getloadavg()[0]))
    for label, batch in (('in batches of 1,000', 1000),
                         ('in one call', len(urls))):
        before, after = run(urls, batch)
        print('  %-20s %4.0f -> %4.0f MiB (%.2fx, +%.0f MiB)' % (
            label, before, after, after / before, after - before))


if __name__ == '__main__':
    main()
