"""The cost of the URLs' history: a week of daily checks of N URLs.

``python bench/history_cost.py N`` stores 7 daily results for N URLs
(``--days``; one in ten breaks on the fourth day), a day per transaction,
in a FileStorage in a temporary directory, packs it, and prints the bytes
on disk and the memory of all histories loaded (tracemalloc), in total and
per URL.

``--clients C`` measures the trends the status pages draw instead: the
series of URLs per state and of checks, full, and C clients with 31 days
of hourly samples each (their bound), in total and per client.
"""

import argparse
import gc
import os
import shutil
import sys
import tempfile
import tracemalloc

# bench/xmlrpc.py is named like the standard library's xmlrpc package:
# a script run from here has this directory first on sys.path, and
# Twisted's or linksync's `import xmlrpc.client` would get that file.
sys.path[:] = [p for p in sys.path
               if os.path.abspath(p or '.') != os.path.dirname(
                   os.path.abspath(__file__))]
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'src'))

import transaction  # noqa: E402
import ZODB  # noqa: E402
from ZODB.FileStorage import FileStorage  # noqa: E402

from linksync.server.model.history import History  # noqa: E402

DAY = 86400


def measure(n, directory, days=7):
    path = os.path.join(directory, 'Data.fs')
    db = ZODB.DB(FileStorage(path))
    conn = db.open()
    root = conn.root()
    root['h'] = History()
    transaction.commit()
    empty = os.path.getsize(path)
    for day in range(days):
        history = root['h']
        for i in range(n):
            state = 'unavailable' if i % 10 == 0 and day >= 3 else 'ok'
            history.record(
                'https://site%d.example/page/%d' % (i % 1000, i), state,
                '404 Not Found' if state != 'ok' else '200 OK', day * DAY,
                0.123)
        transaction.commit()
    db.pack()
    size = os.path.getsize(path) - empty
    conn.close()
    db.close()
    db = ZODB.DB(FileStorage(path, read_only=True), cache_size=10 * n)
    conn = db.open()
    gc.collect()
    tracemalloc.start()
    for tree in conn.root()['h']._shards:
        for history in tree.values():
            # (A URL checked once has a tuple there, loaded with its
            # bucket; the others a URLHistory, loaded here.)
            if not isinstance(history, tuple):
                history.results
    gc.collect()
    memory = tracemalloc.get_traced_memory()[0]
    conn.close()
    db.close()
    return size, memory


def measure_trends(clients, directory):
    """Bytes on disk and in memory of full trends with `clients` clients."""
    from linksync.server.model import trends as model

    path = os.path.join(directory, 'Data.fs')
    db = ZODB.DB(FileStorage(path))
    conn = db.open()
    root = conn.root()
    root['t'] = trends = model.Trends()
    transaction.commit()
    empty = os.path.getsize(path)
    end = 40 * DAY
    for t in range(end - model.STATE_KEEP, end, model.STATE_STEP):
        trends.states.put(t, (900_000, 50_000, 30_000, 5_000, 15_000))
    total = 0
    for t in range(end - model.CHECK_KEEP, end, model.CHECK_STEP):
        total += 600
        trends.check_totals.put(t, (total,))
    transaction.commit()
    for hour, t in enumerate(range(end - model.CLIENT_KEEP, end,
                                   model.CLIENT_STEP)):
        for c in range(clients):
            trends.client_series('client-%05d' % c, create=True).put(
                t, (t, c % 7, hour % 3, 1, 1000 + c))
        if hour % 24 == 0:
            transaction.commit()
    transaction.commit()
    db.pack()
    size = os.path.getsize(path) - empty
    conn.close()
    db.close()
    db = ZODB.DB(FileStorage(path, read_only=True), cache_size=10 ** 7)
    conn = db.open()
    gc.collect()
    tracemalloc.start()
    loaded = conn.root()['t']
    loaded.states.items(0, end)
    loaded.check_totals.items(0, end)
    for c in range(clients):
        loaded.client_samples('client-%05d' % c, 0, end)
    gc.collect()
    memory = tracemalloc.get_traced_memory()[0]
    conn.close()
    db.close()
    return size, memory


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('urls', type=int, nargs='?', default=10_000)
    parser.add_argument('--days', type=int, default=7,
                        help='daily results stored per URL (a history keeps '
                             'the last 20)')
    parser.add_argument('--clients', type=int,
                        help='measure the trends of this many clients')
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix='linksync-history-')
    try:
        if args.clients:
            size, memory = measure_trends(args.clients, directory)
            print('trends of %d clients: disk=%d bytes (%.1f/client) '
                  'memory=%d bytes (%.1f/client)' % (
                      args.clients, size, size / args.clients, memory,
                      memory / args.clients))
            return
        size, memory = measure(args.urls, directory, args.days)
    finally:
        shutil.rmtree(directory)
    print('n=%d days=%d disk=%d bytes (%.1f/URL) memory=%d bytes '
          '(%.1f/URL)' % (args.urls, args.days, size, size / args.urls,
                          memory, memory / args.urls))


if __name__ == '__main__':
    main()
