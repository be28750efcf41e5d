"""Benchmark of tracked structures (linksync.tracked).

    .venv/bin/python bench/tracked.py [--sizes 10000,100000] [--quick]

1. The cost of one mutation of a tracked structure (no persistence, no
   callback; then with a callback) against the same mutation of the plain
   dict, list or set.
2. The cost of saving a structure of N top-level keys after one change,
   per format, at two sizes, against the plain way of keeping the same data
   in that format (the library's own dump to a file; the standard shelve
   module, whose dbm here is the only one every Python has; a ZODB
   PersistentMapping). Ours includes what makes a save safe (atomic
   replacement and fsync for whole files, a transaction for shelve and
   ZODB). The ratio between the two sizes shows whether a save grows with
   the structure.
"""

import argparse
import contextlib
import gc
import json
import os
import pickle
import shelve
import statistics
import sys
import tempfile
import time
import timeit

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'src'))

from linksync.tracked import track, tracker_of  # noqa: E402
from linksync.tracked.persistence import FORMATS  # noqa: E402


# -- 1. mutations -------------------------------------------------------------------

MUTATIONS = [
    # (what, statement on d, plain structure)
    ('d[k] = v', "d['k'] = 1", lambda: {'k': 0}),
    ("d['a']['b'] = v", "d['a']['b'] = 1", lambda: {'a': {'b': 0}}),
    ('lst[0] = v', 'd[0] = 1', lambda: [0, 1, 2]),
    ('lst.append(v)', 'd.append(1)', lambda: []),
    ('s.add(v)', 'd.add(1)', lambda: set()),
    ('d.update(10 keys)', 'd.update(batch)', lambda: {}),
    ('lst.sort() (100 items)', 'd.sort()', lambda: list(range(100))),
]


def mutations(number, repeat):
    """(what, plain, tracked, tracked with a callback): seconds per op."""
    batch = {'k%d' % i: i for i in range(10)}
    rows = []
    for what, statement, make in MUTATIONS:
        variants = [make(), track(make(), persist=False),
                    track(make(), persist=False, callback=lambda c: None)]
        times = []
        for data in variants:
            timer = timeit.Timer(statement, globals={'d': data,
                                                     'batch': batch})
            times.append(min(timer.repeat(repeat=repeat, number=number)) /
                         number)
        rows.append((what, *times))
    return rows


# -- 2. saves ---------------------------------------------------------------------------

def structure(size):
    return {'key%06d' % i: {'n': i, 'name': 'item %d' % i}
            for i in range(size)}


@contextlib.contextmanager
def no_gc():
    """Timings without the cyclic GC's pauses (as timeit does)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def ours(fmt, size, directory, repeat):
    backend = FORMATS[fmt](os.path.join(directory, 'ours' + FORMATS[
        fmt].extension))
    root = track(structure(size), 'bench', persist=backend)
    root['key000000']['n'] = 0  # warm up: the first save is not timed
    with no_gc():
        times = _changes(root, size, repeat)
    tracker_of(root).close()
    return statistics.median(times)


def _changes(root, size, repeat):
    times = []
    for r in range(repeat):
        key = 'key%06d' % ((r * 7919) % size)
        start = time.perf_counter()
        root[key]['n'] = -r
        times.append(time.perf_counter() - start)
    return times


def baseline(fmt, size, directory, repeat):
    with no_gc():
        return _baseline(fmt, size, directory, repeat)


def _baseline(fmt, size, directory, repeat):
    data = structure(size)
    path = os.path.join(directory, 'plain-' + fmt)
    times = []
    if fmt in ('yaml', 'full-yaml', 'json', 'pickle'):
        dump = {
            'yaml': lambda f: f.write(yaml.dump(
                data, Dumper=yaml.CSafeDumper,
                default_flow_style=False).encode()),
            'full-yaml': lambda f: f.write(yaml.dump(
                data, Dumper=yaml.CDumper,
                default_flow_style=False).encode()),
            'json': lambda f: f.write(json_dumps(data)),
            'pickle': lambda f: pickle.dump(data, f),
        }[fmt]
        for r in range(repeat):
            data['key%06d' % ((r * 7919) % size)]['n'] = -r
            start = time.perf_counter()
            with open(path, 'wb') as f:
                dump(f)
            times.append(time.perf_counter() - start)
    elif fmt == 'shelve':
        with shelve.open(path) as shelf:
            for key, value in data.items():
                shelf[key] = value
            shelf.sync()
            for r in range(repeat):
                key = 'key%06d' % ((r * 7919) % size)
                start = time.perf_counter()
                value = shelf[key]
                value['n'] = -r
                shelf[key] = value
                shelf.sync()
                times.append(time.perf_counter() - start)
    else:
        import transaction
        import ZODB
        import ZODB.FileStorage
        from persistent.mapping import PersistentMapping
        db = ZODB.DB(ZODB.FileStorage.FileStorage(path + '.fs'))
        tm = transaction.TransactionManager()
        connection = db.open(transaction_manager=tm)
        connection.root()['data'] = mapping = PersistentMapping(data)
        tm.commit()
        for r in range(repeat):
            key = 'key%06d' % ((r * 7919) % size)
            start = time.perf_counter()
            value = dict(mapping[key])
            value['n'] = -r
            mapping[key] = value
            tm.commit()
            times.append(time.perf_counter() - start)
        connection.close()
        db.close()
    return statistics.median(times)


def json_dumps(data):
    return json.dumps(data, indent=2).encode()


SAVE_FORMATS = ('yaml', 'json', 'full-yaml', 'pickle', 'shelve', 'zodb')


# -- main ---------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', default='10000,100000',
                        help='the two structure sizes (keys)')
    parser.add_argument('--formats', default=','.join(SAVE_FORMATS),
                        help='the formats to time saves of')
    parser.add_argument('--quick', action='store_true',
                        help='fewer repetitions (a smoke run)')
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(',')]
    number = 20000 if args.quick else 200000
    repeat = 3 if args.quick else 5

    print('Python %s, linksync.tracked; %s' % (
        sys.version.split()[0], 'quick run' if args.quick else 'full run'))
    print()
    print('1. One mutation (ns per operation, best of %d x %d)' % (
        repeat, number))
    print('%-24s %8s %8s %8s %8s %8s' % (
        'operation', 'plain', 'tracked', 'ratio', '+callbk', 'ratio'))
    for what, plain, tracked, callback in mutations(number, repeat):
        print('%-24s %8.0f %8.0f %7.1fx %8.0f %7.1fx' % (
            what, plain * 1e9, tracked * 1e9, tracked / plain,
            callback * 1e9, callback / plain))
    print()
    print('2. Save after one change (ms, median); baseline: the plain way')
    print('%-10s %8s %10s %10s %8s' % (
        'format', 'keys', 'ours', 'baseline', 'ratio'))
    scaling = {}
    for fmt in args.formats.split(','):
        lazy = fmt in ('shelve', 'zodb')
        repeats = (10 if args.quick else 30) if lazy else \
            (2 if args.quick else 3)
        for size in sizes:
            with tempfile.TemporaryDirectory() as directory:
                mine = ours(fmt, size, directory, repeats)
                theirs = baseline(fmt, size, directory, repeats)
            scaling.setdefault(fmt, []).append(mine)
            print('%-10s %8d %10.2f %10.2f %7.2fx' % (
                fmt, size, mine * 1e3, theirs * 1e3, mine / theirs))
    print()
    print('Growth of a save from %d to %d keys (ours; 1.0 = independent of '
          'size, %.0f = proportional):' % (sizes[0], sizes[-1],
                                            sizes[-1] / sizes[0]))
    for fmt, times in scaling.items():
        print('  %-10s %6.1fx' % (fmt, times[-1] / times[0]))


if __name__ == '__main__':
    main()
