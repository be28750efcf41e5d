"""The cost of the URLs' history: a week of daily checks of N URLs.

``python bench/history_cost.py N`` stores 7 daily results for N URLs (one
in ten breaks on the fourth day), a day per transaction, in a FileStorage
in a temporary directory, packs it, and prints the bytes on disk and the
memory of all histories loaded (tracemalloc), in total and per URL.
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


def measure(n, directory):
    path = os.path.join(directory, 'Data.fs')
    db = ZODB.DB(FileStorage(path))
    conn = db.open()
    root = conn.root()
    root['h'] = History()
    transaction.commit()
    empty = os.path.getsize(path)
    for day in range(7):
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
    urls = conn.root()['h']._urls
    for key in urls.keys():
        urls[key].results
    gc.collect()
    memory = tracemalloc.get_traced_memory()[0]
    conn.close()
    db.close()
    return size, memory


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('urls', type=int, nargs='?', default=10_000)
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix='linksync-history-')
    try:
        size, memory = measure(args.urls, directory)
    finally:
        shutil.rmtree(directory)
    print('n=%d disk=%d bytes (%.1f/URL) memory=%d bytes (%.1f/URL)' % (
        args.urls, size, size / args.urls, memory, memory / args.urls))


if __name__ == '__main__':
    main()
