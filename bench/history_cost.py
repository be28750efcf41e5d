"""The cost of the URLs' history: a week of daily checks of N URLs.

``python bench/history_cost.py N`` stores 7 daily results for N URLs (one
in ten breaks on the fourth day) in a FileStorage under /tmp/h19m, packs
it, and prints the bytes on disk and the memory of all histories loaded
(tracemalloc), in total and per URL.
"""
import os, sys, tracemalloc, gc
import transaction, ZODB
from ZODB.FileStorage import FileStorage
from linksync.server.model.history import History
DIR = os.environ.get('TMPDIR', '/tmp')
n = int(sys.argv[1]); path = os.path.join(DIR, 'h%d.fs' % n)
for f in os.listdir(DIR):
    if f.startswith('h%d.fs' % n): os.remove(os.path.join(DIR, f))
db = ZODB.DB(FileStorage(path)); conn = db.open(); root = conn.root()
root['h'] = History(); transaction.commit()
empty = os.path.getsize(path)
DAY = 86400
for day in range(7):
    h = root['h']
    for i in range(n):
        state = 'unavailable' if (i % 10 == 0 and day >= 3) else 'ok'
        h.record('https://site%d.example/page/%d' % (i % 1000, i), state,
                 '404 Not Found' if state != 'ok' else '200 OK', day * DAY, 0.123)
    transaction.commit()
db.pack(); size = os.path.getsize(path) - empty
conn.close(); db.close()
db = ZODB.DB(FileStorage(path, read_only=True), cache_size=10 * n); conn = db.open()
gc.collect(); tracemalloc.start()
h = conn.root()['h']
for key in h._urls.keys():
    x = h._urls[key]; x.results
gc.collect(); mem = tracemalloc.get_traced_memory()[0]
print('n=%d disk=%d bytes (%.1f/URL) memory=%d bytes (%.1f/URL)' % (n, size, size / n, mem, mem / n))
