"""Benchmark of the change track: appends per second, and the cost of an
agent's query as the track grows (10^4 ... 10^7 records).

    .venv/bin/python bench/track.py [--max 10000000] [--seed-max 1000000]

Ours is linksync.agents.SyncManager over a FileStorage, as the server uses
it: records appended in units of work of 1,000 (each commit like one of the
API's or the checker's), buckets closed as the agents service does, one
agent left at the start (so nothing is pruned and the track really grows)
and one reading the last buckets. The baseline is the seed's design (its
Indico livesync track): every record a persistent object in an OOSet per
bucket, under an OOBTree of reversed timestamps.

For each size it prints the appends per second while the track grew to
that size, and the time of an agent query of the newest 1,000 and 10,000
records (read and reduced), from a cold cache (objects loaded from the
storage) and a warm one. A query must cost what it reads, not what the
track holds: the query columns stay flat down the table.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import persistent
import transaction
import ZODB
from BTrees.OOBTree import OOBTree, OOSet
from ZODB.FileStorage import FileStorage

# bench/xmlrpc.py is named like the standard library's xmlrpc package:
# a script run from here has this directory first on sys.path, and
# Twisted's or linksync's `import xmlrpc.client` would get that file.
sys.path[:] = [p for p in sys.path
               if os.path.abspath(p or '.') != os.path.dirname(
                   os.path.abspath(__file__))]
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'src'))

from linksync.agents.agent import SyncAgent
from linksync.agents.manager import SyncManager
from linksync.agents.reduction import reduce_records  # noqa
from linksync.server.model.url import URL  # noqa
from linksync.track.records import ActionWrapper  # noqa

GRANULARITY = 10
#: Records per second of simulated time: 100 records a bucket.
RATE = 10
UNIT = 1000
OBJECTS = 10_000
START = 1_297_000_000.0


def open_db(directory, name):
    path = os.path.join(directory, name + '.fs')
    return ZODB.DB(FileStorage(path), cache_size=200_000,
                   large_record_size=1 << 26), path


# -- the two tracks -----------------------------------------------------------------

class Track:
    """A database with URL objects and a track; appends in units of work."""

    name = None

    def __init__(self, directory):
        self.db, self.path = open_db(directory, self.name)
        self.tm = transaction.TransactionManager()
        self.conn = self.db.open(transaction_manager=self.tm)
        root = self.conn.root()
        root['urls'] = [URL('http://host%d.example/page' % i)
                        for i in range(OBJECTS)]
        self.setup(root)
        self.tm.commit()
        self.count = 0

    def append(self, n):
        root = self.conn.root()
        urls = root['urls']
        for i in range(self.count, self.count + n, UNIT):
            self.tm.begin()
            for j in range(i, min(i + UNIT, self.count + n)):
                url = urls[j % OBJECTS]
                ts = START + j / RATE
                self.add(root, url, ts)
            self.tm.commit()
            self.after_unit(root, ts)
        self.count += n

    def after_unit(self, root, ts):
        pass

    def cool(self):
        self.tm.abort()
        self.conn.cacheMinimize()

    def close(self):
        self.tm.abort()
        self.conn.close()
        self.db.close()


class Ours(Track):
    name = 'ours'

    def setup(self, root):
        root['sync'] = manager = SyncManager(GRANULARITY)
        manager.register_agent(SyncAgent('slow'), start=0)
        manager.register_agent(SyncAgent('reader'), start=0)

    def add(self, root, url, ts):
        root['sync'].add(ts, ActionWrapper(url, 'state_changed', ts,
                                           key=('URL', url.url)))

    def after_unit(self, root, ts):
        self.tm.begin()
        root['sync'].close(ts)                   # the service's close
        self.tm.commit()

    def query(self, records):
        manager = self.conn.root()['sync']
        self.tm.begin()
        buckets = records // (RATE * GRANULARITY)
        manager.rewind('reader', manager.closed - buckets)
        self.tm.commit()
        self.tm.begin()
        end, found = manager.query('reader')
        changes = reduce_records(found)
        self.tm.abort()
        assert len(found) == records, (len(found), records)
        return len(changes)


class SeedRecord(persistent.Persistent):
    """The seed's ActionWrapper: a persistent object per record, ordered by
    its time and object."""

    def __init__(self, obj, actions, timestamp, key):
        self.obj = obj
        self.actions = actions
        self.timestamp = timestamp
        self.key = key

    def __lt__(self, other):
        return (self.timestamp, self.key) < (other.timestamp, other.key)

    def __eq__(self, other):
        return (self.timestamp, self.key) == (other.timestamp, other.key)

    def __hash__(self):
        return hash((self.timestamp, self.key))


class Seed(Track):
    name = 'seed'

    def setup(self, root):
        root['track'] = OOBTree()              # -bucket -> OOSet

    def add(self, root, url, ts):
        track = root['track']
        key = -int(ts // GRANULARITY)
        entry = track.get(key)
        if entry is None:
            entry = track[key] = OOSet()
        entry.add(SeedRecord(url, ('state_changed',), ts, url.url))

    def query(self, records):
        track = self.conn.root()['track']
        self.tm.begin()
        newest = -track.minKey()
        pointer = newest - 1 - records // (RATE * GRANULARITY)
        found = []
        # The seed's iterate(): newest first, ]pointer, newest - 1].
        for key, entry in track.items(-(newest - 1), -pointer):
            if key == -pointer:
                break
            for record in entry:
                found.append(ActionWrapper(record.obj, record.actions,
                                           record.timestamp,
                                           key=('URL', record.key)))
        changes = reduce_records(found)
        self.tm.abort()
        assert len(found) == records, (len(found), records)
        return len(changes)


# -- the run ---------------------------------------------------------------------------------

def timed(func, *args):
    started = time.perf_counter()
    func(*args)
    return time.perf_counter() - started


def measure(track, size):
    grown = size - track.count
    seconds = timed(track.append, grown)
    row = {'appends': grown / seconds,
           'bytes': os.path.getsize(track.path) / size}
    for records in (1000, 10_000):
        if records * 4 > size:
            continue
        track.cool()
        row['cold%d' % records] = timed(track.query, records) * 1000
        row['warm%d' % records] = min(
            timed(track.query, records) for _ in range(3)) * 1000
    return row


def fmt(value, pattern):
    return '-' if value is None else pattern % value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--max', type=int, default=10_000_000,
                        help='largest track size (records)')
    parser.add_argument('--seed-max', type=int, default=1_000_000,
                        help='largest size for the seed baseline')
    parser.add_argument('--dir', help='where the FileStorages go (default: '
                        'a temporary directory, removed after)')
    args = parser.parse_args(argv)
    directory = args.dir or tempfile.mkdtemp(prefix='linksync-bench-')
    sizes = [n for n in (10_000, 100_000, 1_000_000, 10_000_000,
                         100_000_000) if n <= args.max]
    print('change track benchmark: %d records a bucket, units of work of '
          '%d, FileStorage in %s' % (RATE * GRANULARITY, UNIT, directory))
    print('query = an agent reading the newest N records and reducing '
          'them; ms, cold cache / warm')
    header = ('%-10s %-5s %11s %9s %16s %16s' % (
        'records', 'track', 'appends/s', 'bytes/rec', 'query 1k ms',
        'query 10k ms'))
    print(header)
    print('-' * len(header))
    results = {}
    tracks = [Ours(directory), Seed(directory)]
    try:
        for size in sizes:
            for track in tracks:
                if track.name == 'seed' and size > args.seed_max:
                    continue
                row = results[track.name, size] = measure(track, size)
                print('%-10d %-5s %11.0f %9.0f %16s %16s' % (
                    size, track.name, row['appends'], row['bytes'],
                    '%s / %s' % (fmt(row.get('cold1000'), '%.1f'),
                                 fmt(row.get('warm1000'), '%.1f')),
                    '%s / %s' % (fmt(row.get('cold10000'), '%.1f'),
                                 fmt(row.get('warm10000'), '%.1f'))))
                sys.stdout.flush()
    finally:
        for track in tracks:
            track.close()
        if not args.dir:
            shutil.rmtree(directory, ignore_errors=True)
    print()
    print('ratios (ours / seed): appends/s, and query time (lower is '
          'better for ours)')
    for size in sizes:
        ours, seed = results.get(('ours', size)), results.get(('seed', size))
        if not ours or not seed:
            continue
        parts = ['%-10d appends x%.2f' % (size, ours['appends'] /
                                          seed['appends'])]
        for key in ('cold1000', 'warm1000', 'cold10000', 'warm10000'):
            if key in ours and key in seed:
                parts.append('%s x%.2f' % (key, ours[key] / seed[key]))
        print('  '.join(parts))
    first, last = sizes[0], sizes[-1]
    for key in ('warm1000', 'cold1000'):
        a, b = results[('ours', first)].get(key), \
            results[('ours', last)].get(key)
        if a and b:
            print('ours: %s query at %d records / at %d records: x%.2f '
                  '(track %dx larger)' % (key, last, first, b / a,
                                          last // first))


if __name__ == '__main__':
    main()
