"""Benchmark of the Synchronizer (linksync.stores).

    .venv/bin/python bench/stores.py [--n 500] [--batch 100] [--repeat 1]
                            [--targets sqlite,zodb,tracked-yaml,tracked-shelve]

1. Propagation. An application writes to a MemoryStore: N data added in
   batches of --batch (``put_many``, as when a page's links come in at
   once), then every second one changed, then every fourth one removed
   (batches too), and once more with every write on its own (batch 1).
   Each change goes to a target store of each kind, either through the
   Synchronizer or the naive way: an observer writing each change to the
   other store by itself (the same ``Store.put`` / ``delete``, so the
   same matching by id or name), that is one write, one transaction or
   one save of the file, per change.
2. ``sync()``: two stores of N data each, half of them differing, made to
   agree, against the naive way: every datum of each store put into the
   other one by one (newest first, so that it happens to be right).

The naive way's saves of a whole file grow with the file: with YAML the
run takes about 70 s at N=500 and four times that at N=1000.

Both ways must end with the same data in both stores (checked). Times are
the best of --repeat runs; the ratio is naive / Synchronizer (above 1: the
Synchronizer is faster).
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

# bench/xmlrpc.py is named like the standard library's xmlrpc package:
# a script run from here has this directory first on sys.path, and
# Twisted's or linksync's `import xmlrpc.client` would get that file.
sys.path[:] = [p for p in sys.path
               if os.path.abspath(p or '.') != os.path.dirname(
                   os.path.abspath(__file__))]
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'src'))

from twisted.internet.task import Clock  # noqa: E402

from linksync.stores import (Data, MemoryStore, SQLiteStore,  # noqa: E402
                             Synchronizer, TrackedStore, ZODBStore)


class Page(Data):
    type_name = 'pages'
    fields = {'text': '', 'tags': []}


def make_store(kind, directory, name):
    clock = Clock()
    clock.advance(1000)
    if kind == 'memory':
        return MemoryStore([Page], name=name, clock=clock).connect()
    if kind == 'sqlite':
        return SQLiteStore([Page], os.path.join(directory, name + '.sqlite'),
                           clock=clock).connect()
    if kind == 'zodb':
        return ZODBStore([Page], path=os.path.join(directory, name + '.fs'),
                         clock=clock).connect()
    if kind.startswith('tracked-'):
        extension = {'yaml': 'yaml', 'json': 'json', 'shelve': 'shelve',
                     'zodb': 'fs'}[kind[8:]]
        return TrackedStore([Page], path=os.path.join(
            directory, '%s.%s' % (name, extension)), clock=clock).connect()
    raise SystemExit('unknown store kind %r' % kind)


class Naive:
    """The naive way: each change heard in `source`, written to `target`
    by itself."""

    def __init__(self, source, target):
        self.target = target
        source.observe(self.heard)

    def heard(self, events):
        for event in events:
            if event.origin is self:
                continue
            if event.action == 'removed':
                self.target.delete(event.data.copy(), origin=self)
            else:
                self.target.put(event.data.copy(), origin=self)


def contents(store):
    return sorted((d.name, d.text, tuple(d.tags)) for d in store.find(Page))


def in_batches(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def workload(source, n, batch):
    """Add n pages, change every second one, remove every fourth one."""
    names = ['page %05d' % i for i in range(n)]
    for chunk in in_batches(names, batch):
        if batch == 1:
            source.add(Page(name=chunk[0], text='first'))
        else:
            source.put_many([Page(name=name, text='first')
                             for name in chunk])
    pages = {p.name: p for p in source.find(Page)}
    changed = [pages[name] for name in names[::2]]
    for page in changed:
        page.text = 'second'
        page.tags = ['changed']
    for chunk in in_batches(changed, batch):
        if batch == 1:
            source.update(chunk[0])
        else:
            source.put_many(chunk)
    gone = [pages[name] for name in names[::4]]
    for chunk in in_batches(gone, batch):
        if batch == 1:
            source.remove(chunk[0])
        else:
            source.delete_many(chunk)


def propagate(kind, how, n, batch):
    directory = tempfile.mkdtemp(prefix='linksync-bench-')
    try:
        source = make_store('memory', directory, 'source')
        target = make_store(kind, directory, 'target')
        if how == 'naive':
            Naive(source, target)
        else:
            sync = Synchronizer([source, target])
        start = time.perf_counter()
        workload(source, n, batch)
        elapsed = time.perf_counter() - start
        if how != 'naive':
            assert sync.pending == [], sync.pending[:3]
        assert contents(target) == contents(source), 'they differ'
        target.disconnect()
        return elapsed
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def fill(store, n, text):
    store.put_many([Page(id='p%05d' % i, name='page %05d' % i,
                         text=text if i % 2 else 'same')
                    for i in range(n)])


def agree(kind, how, n):
    directory = tempfile.mkdtemp(prefix='linksync-bench-')
    try:
        a = make_store('memory', directory, 'a')
        b = make_store(kind, directory, 'b')
        fill(a, n, 'from a')
        b.clock.advance(10)              # b's versions are the newer ones
        fill(b, n, 'from b')
        start = time.perf_counter()
        if how == 'naive':
            for store, other in ((b, a), (a, b)):
                for page in store.find(Page):
                    other.put(page.copy())
        else:
            report = Synchronizer([a, b]).sync()
            assert report.ok
        elapsed = time.perf_counter() - start
        assert contents(a) == contents(b), 'they differ'
        b.disconnect()
        return elapsed
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def best(repeat, func, *args):
    return min(func(*args) for _ in range(repeat))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--n', type=int, default=500)
    parser.add_argument('--batch', type=int, default=100)
    parser.add_argument('--repeat', type=int, default=1)
    parser.add_argument('--targets', default='sqlite,zodb,tracked-yaml,'
                                             'tracked-shelve')
    args = parser.parse_args()
    kinds = args.targets.split(',')
    changes = args.n + args.n // 2 + args.n // 4
    print('%d changes (%d adds, %d updates, %d removals) from a memory '
          'store; best of %d' % (changes, args.n, args.n // 2, args.n // 4,
                                 args.repeat))
    print('%-16s %6s %12s %12s %7s' % ('target', 'batch', 'naive s',
                                       'Synchronizer', 'ratio'))
    for kind in kinds:
        for batch in (args.batch, 1):
            naive = best(args.repeat, propagate, kind, 'naive', args.n,
                         batch)
            ours = best(args.repeat, propagate, kind, 'sync', args.n, batch)
            print('%-16s %6d %12.3f %12.3f %6.1fx' % (kind, batch, naive,
                                                      ours, naive / ours),
                  flush=True)
    print()
    print('sync(): a memory store and another, %d data each, half '
          'differing' % args.n)
    print('%-16s %12s %12s %7s' % ('other store', 'naive s', 'sync() s',
                                   'ratio'))
    for kind in kinds:
        naive = best(args.repeat, agree, kind, 'naive', args.n)
        ours = best(args.repeat, agree, kind, 'sync', args.n)
        print('%-16s %12.3f %12.3f %6.1fx' % (kind, naive, ours,
                                              naive / ours), flush=True)


if __name__ == '__main__':
    main()
