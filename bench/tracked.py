"""Benchmark of tracked structures (linksync.tracked).

    .venv/bin/python bench/tracked.py [--sizes 10000,100000] [--quick]
                                      [--runs N] [--mutations-only]

1. The cost of one mutation of a tracked structure (no persistence, no
   callback; then with a callback) against the same mutation of the plain
   dict, list or set, with both implementations: the C one
   (linksync.tracked._speedups, when it was built) timed in this process,
   the pure-Python one in a child process run with LINKSYNC_PURE_PYTHON=1,
   which times the plain operations again: each ratio compares timings of
   one process. With --runs N, the figures are the medians of N runs, the
   ratios' ranges in brackets.
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
import subprocess
import sys
import tempfile
import time
import timeit

import yaml

# bench/xmlrpc.py is named like the standard library's xmlrpc package:
# a script run from here has this directory first on sys.path, and
# Twisted's or linksync's `import xmlrpc.client` would get that file.
sys.path[:] = [p for p in sys.path
               if os.path.abspath(p or '.') != os.path.dirname(
                   os.path.abspath(__file__))]
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'src'))

from linksync.tracked import track, tracker_of, wrappers  # noqa: E402
from linksync.tracked.formats import FORMATS  # noqa: E402


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


def pure_python_mutations(number, repeat):
    """mutations() of the pure-Python implementation, in a child process."""
    env = dict(os.environ, LINKSYNC_PURE_PYTHON='1')
    output = subprocess.run(
        [sys.executable, __file__, '--mutations-json', str(number),
         str(repeat)], env=env, check=True, capture_output=True,
        text=True).stdout
    return [tuple(row) for row in json.loads(output)]


def mutation_table(number, repeat, runs):
    """Section 1: print plain, C and pure Python, without and with a
    callback."""
    c = wrappers.SPEEDUPS
    results = []        # per run: [(what, plain, C, C+cb, plain', Py, Py+cb)]
    for _ in range(runs):
        here = mutations(number, repeat)
        there = pure_python_mutations(number, repeat) if c else here
        results.append([(a[0], a[1], a[2], a[3], b[1], b[2], b[3])
                        for a, b in zip(here, there)])
    print('1. One mutation, no persistence (ns per operation, best of %d x '
          '%d%s)' % (repeat, number, '; medians of %d runs, ratio ranges '
                     'in brackets' % runs if runs > 1 else ''))
    if not c:
        print('   (the C extension is not in use: pure Python only)')
    median = statistics.median

    def cell(times, base):
        ratios = [t / b for t, b in zip(times, base)]
        text = '%7.0f %6.1fx' % (median(times) * 1e9, median(ratios))
        if runs > 1:
            text += ' (%4.1f-%4.1f)' % (min(ratios), max(ratios))
        return text
    width = 15 + (12 if runs > 1 else 0)
    for title, c_col, py_col in (('no callback', 2, 5),
                                 ('with a callback', 3, 6)):
        print()
        print('%-24s %7s  %-*s  %-*s' % (
            title, 'plain', width, 'C: ns, ratio', width,
            'pure Python: ns, ratio'))
        for i, (what, *_) in enumerate(results[0]):
            column = [[run[i][k] for run in results] for k in range(7)]
            print('%-24s %7.0f  %s  %s' % (
                what, median(column[1]) * 1e9,
                cell(column[c_col], column[1]) if c else
                '%-*s' % (width, '   -'),
                cell(column[py_col], column[4])))
    return results


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
    parser.add_argument('--runs', type=int, default=1,
                        help='run section 1 N times: medians and ranges')
    parser.add_argument('--mutations-only', action='store_true',
                        help='section 1 only')
    parser.add_argument('--mutations-json', nargs=2, type=int,
                        metavar=('NUMBER', 'REPEAT'),
                        help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.mutations_json:
        json.dump(mutations(*args.mutations_json), sys.stdout)
        return
    sizes = [int(s) for s in args.sizes.split(',')]
    number = 20000 if args.quick else 200000
    repeat = 3 if args.quick else 5

    print('Python %s, linksync.tracked (%s); %s' % (
        sys.version.split()[0],
        'C extension in use' if wrappers.SPEEDUPS else 'pure Python',
        'quick run' if args.quick else 'full run'))
    print()
    mutation_table(number, repeat, args.runs)
    if args.mutations_only:
        return
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
