"""How the hosts are shared among checker workers (``--worker I/N``).

Every URL belongs to one of :data:`SHARDS` shards, by a stable hash
(CRC-32, the same in every process and every Python run, unlike
``hash()``) of its host; host-less URLs (mailto:) by the whole URL. The
schedule keeps one due index per shard (linksync.server.model.due), and worker
``I/N`` owns the shards ``s`` with ``s % N == I - 1``: it reads only their
indexes, so N workers do not each scan all the due work, and it alone
ever contacts the hosts of its shards, so the per-host politeness rules of
its checker hold for the whole installation.

>>> worker = Worker.parse('2/3')
>>> worker, worker.index, worker.count
(Worker('2/3'), 2, 3)
>>> shard_of('http://example.com/a') == shard_of('https://EXAMPLE.com:8443/b')
True
>>> [Worker(i, 3).owns_url('http://example.com/') for i in (1, 2, 3)].count(True)
1
>>> Worker.parse('3/2')
Traceback (most recent call last):
...
ValueError: not a worker I/N with 1 <= I <= N: '3/2'
"""

import zlib

from linksync.server.checker.check import host_of

#: Shards of the due index of a new schedule: at most this many workers
#: share the work. 120 divides evenly among 2, 3, 4, 5, 6, 8, 10 and 12
#: workers; reading all of them (one worker alone) costs 120 index look-ups
#: per scheduler tick, a fraction of a millisecond.
SHARDS = 120


def partition_key(url):
    """What decides the shard of a URL: its host, else the URL itself."""
    return host_of(url) or url


def shard_of(url, shards=SHARDS):
    """The shard (0 <= shard < `shards`) of the URL string `url`."""
    return zlib.crc32(partition_key(url).encode('utf-8', 'surrogatepass')) \
        % shards


def sharded(factory, shards=SHARDS):
    """A tuple of `shards` new trees made by `factory`: the per-shard
    trees of an index that checker workers write to (each its own)."""
    return tuple(factory() for _ in range(shards))


def tree_of(trees, url):
    """The tree of the shard of the URL string `url` among `trees`."""
    return trees[shard_of(url, len(trees))]


class Worker:
    """Checker worker `index` of `count` (1-based, as on the command line)."""

    __slots__ = ('index', 'count')

    def __init__(self, index, count):
        if not (isinstance(index, int) and isinstance(count, int)
                and 1 <= index <= count):
            raise ValueError('not a worker I/N with 1 <= I <= N: %r' % (
                '%s/%s' % (index, count),))
        self.index = index
        self.count = count

    @classmethod
    def parse(cls, text):
        """'I/N' -> Worker; ValueError naming the problem."""
        index, sep, count = str(text).strip().partition('/')
        if not (sep and index.isdigit() and count.isdigit()):
            raise ValueError('not a worker I/N (such as 1/2): %r' % (text,))
        if int(count) > SHARDS:
            raise ValueError('at most %d workers share the work: %r' % (
                SHARDS, text))
        try:
            return cls(int(index), int(count))
        except ValueError:
            raise ValueError('not a worker I/N with 1 <= I <= N: %r' % (
                text,)) from None

    def __repr__(self):
        return 'Worker(%r)' % str(self)

    def __str__(self):
        return '%d/%d' % (self.index, self.count)

    def __eq__(self, other):
        return isinstance(other, Worker) and \
            (self.index, self.count) == (other.index, other.count)

    def __hash__(self):
        return hash((self.index, self.count))

    @property
    def alone(self):
        """True when this worker does all the work (1/1)."""
        return self.count == 1

    def owns_shard(self, shard):
        return shard % self.count == self.index - 1

    def shards(self, total=SHARDS):
        """The shards of this worker among `total`."""
        return [s for s in range(total) if self.owns_shard(s)]

    def owns_url(self, url, total=SHARDS):
        return self.owns_shard(shard_of(url, total))


#: The worker that does everything (no --worker given).
ALONE = Worker(1, 1)
