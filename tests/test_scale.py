"""Scale-out: roles, checker workers sharing the hosts, ZEO and PostgreSQL.

The end-to-end tests run real processes: a ZEO server (or a PostgreSQL
server of the test's own) and three `linksync serve` processes on it (the
API, and two checker workers) checking URLs of local HTTP servers on
loopback addresses, whose request logs show who asked what, and when.
"""

import collections
import subprocess
import sys
import time
import xmlrpc.client

import pytest
import zope.component
from BTrees.OOBTree import OOTreeSet
from ZODB.MappingStorage import MappingStorage

from linksync import states, testing
from linksync.server import database, storage
from linksync.server.model import partition, registration
from linksync.testing import servers as testservers
from linksync.server.interfaces import IClientProvider, ISchedule, IURLProvider
from linksync.server.model.client import Client
from linksync.server.model.url import URL
from linksync.server.model.partition import Worker
from linksync.server.model.due import Schedule, Timing

LINKSYNC = testing.LINKSYNC_COMMAND


# -- the partition ------------------------------------------------------------------

def test_the_partition_is_stable_across_processes():
    # Python's hash() of a str changes with every process: the shard of a
    # host must not (every process must agree on who checks what).
    code = ('from linksync.server.model.partition import shard_of; '
            'print([shard_of(u) for u in %r])')
    urls = ['http://example.com/', 'https://www.example.org:8443/x',
            'mailto:fred@example.com', 'http://127.0.0.7:8080/']
    seen = set()
    for seed in ('1', '2'):
        result = subprocess.run(
            [sys.executable, '-c', code % urls], capture_output=True,
            text=True, env={'PYTHONHASHSEED': seed}, check=True)
        seen.add(result.stdout)
    assert seen == {'%s\n' % [partition.shard_of(u) for u in urls]}
    # CRC-32 of the host: a change of the function is a change of format.
    assert partition.shard_of('http://example.com/anything') == \
        3069857465 % partition.SHARDS == partition.shard_of(
            'https://EXAMPLE.COM:443/')


def test_every_shard_has_exactly_one_worker():
    for count in (1, 2, 3, 4, 7, 120):
        owners = collections.Counter()
        for index in range(1, count + 1):
            owners.update(Worker(index, count).shards())
        assert owners == collections.Counter(range(partition.SHARDS))
    with pytest.raises(ValueError, match='at most 120 workers'):
        Worker.parse('1/121')
    for bad in ('0/2', '2', 'a/b', '1/0', '-1/2', ''):
        with pytest.raises(ValueError):
            Worker.parse(bad)


def _schedule_with(urls):
    s = Schedule()
    for n, url in enumerate(urls):
        s.add(URL(url), 10 + n % 7)
    return s


def test_a_worker_reads_only_the_indexes_of_its_shards():
    urls = ['http://h%d.test/%d' % (n % 40, n) for n in range(2000)]
    s = _schedule_with(urls)
    everything = list(s.due_keys(100))
    assert everything == sorted(everything) and len(everything) == 2000
    shares = []
    for index in (1, 2, 3):
        worker = Worker(index, 3)
        own = list(s.due_keys(100, worker=worker))
        assert own == sorted(own)
        assert all(worker.owns_url(url) for _, url in own)
        # Resuming after a key of its own share.
        assert list(s.due_keys(100, own[10], worker)) == own[11:]
        shares.append(own)
        # The other shards' indexes are never touched: take them away.
        trees = s._trees
        s._trees = tuple(tree if worker.owns_shard(n) else None
                         for n, tree in enumerate(trees))
        try:
            assert list(s.due_keys(100, worker=worker)) == own
        finally:
            s._trees = trees
    assert sorted(k for share in shares for k in share) == everything
    assert all(shares)


def test_a_batch_of_results_stores_a_small_shard_of_the_due_index_whole():
    # Rescheduling the 100 URLs of one host (a batch of results) stores
    # the URLs and one object of the due index: the shard's tree, whose
    # buckets of up to 120 keys make it one bucket stored inline.
    from ZODB.DB import DB
    from ZODB.utils import get_pickle_metadata
    import transaction
    db = DB(MappingStorage())
    conn = db.open()
    urls = [URL('http://one.test/%d' % n) for n in range(100)]
    schedule = conn.root()['schedule'] = Schedule()
    conn.root()['urls'] = urls
    schedule.add_many([(url, 10.0) for url in urls])
    transaction.commit()
    for n, url in enumerate(urls):
        schedule.reschedule(url, 1000.0 + n)
    transaction.commit()
    last = list(db.storage.iterator())[-1]
    stored = collections.Counter(get_pickle_metadata(record.data)[1]
                                 for record in last)
    assert stored == {'URL': 100, 'DueTree': 1}
    assert [key[1] for key in schedule.due_keys(2000)] == [
        url.url for url in urls]
    conn.close()
    db.close()


def test_a_schedule_stored_before_the_shards_is_split_at_its_first_change():
    urls = ['http://h%d.test/%d' % (n % 9, n) for n in range(300)]
    new = _schedule_with(urls)
    expected = list(new.due_keys(100))
    old = Schedule()
    old._trees = None  # as stored before: one index
    old._queue = OOTreeSet(expected)
    old._count.change(len(expected))
    assert list(old.due_keys(100)) == expected
    worker = Worker(2, 2)
    assert list(old.due_keys(100, worker=worker)) == \
        list(new.due_keys(100, worker=worker))
    url = URL('http://late.test/')
    old.add(url, 50)
    assert old._trees is not None and not hasattr(old, '_queue')
    assert list(old.due_keys(100)) == sorted(expected + [(50, url.url)])
    assert len(old) == 301


def _registered_by_fred(urls):
    """(database, session) of a memory database where the client fred has
    registered `urls` at time 0."""
    db = database.Database(MappingStorage())
    session = db.session()

    def setup(app):
        clients = zope.component.getUtility(IClientProvider)
        registration.register(clients.add(Client('fred', password='pw')),
                              urls, 0)
    session.run(setup)
    return db, session


def test_orphans_are_removed_by_the_worker_of_their_host():
    from linksync.server.checker.service import Scheduler
    urls = ['http://h%d.test/' % n for n in range(30)]
    db, session = _registered_by_fred(urls)
    session.run(lambda app: registration.unregister(
        app.clients.get('fred'), urls, 10))
    removed = []
    for index in (1, 2):
        scheduler = Scheduler(session, None, None, Timing(),
                              orphan_grace=5, worker=Worker(index, 2))
        scheduler._remove_orphans(100)
        left = session.read(lambda app: set(app.urls.keys()))
        removed.append(set(urls) - left - set().union(*removed))
        assert all(Worker(index, 2).owns_url(u) for u in removed[-1])
    assert removed[0] and removed[1]
    assert session.read(lambda app: len(app.urls)) == 0
    session.close()
    db.close()


def test_a_fleet_of_workers_commits_about_as_often_as_one_checker():
    from twisted.internet.task import Clock
    from linksync.server.checker.service import Scheduler
    urls = ['http://h%d.test/' % n for n in range(4)]
    db, session = _registered_by_fred(urls)

    def transactions():
        return sum(1 for _ in db.db.storage.iterator())
    held = {}
    for worker in (None, Worker(1, 4)):
        clock = Clock()
        scheduler = Scheduler(session, None, clock, Timing(), worker=worker)
        scheduler.running = True
        # Two checks under way, one of them done: its result waits.
        scheduler.inflight = {urls[0]: 'h0.test', urls[1]: 'h1.test'}
        scheduler._checked((states.OK, '200 OK'), urls[0])
        before = transactions()
        for second in range(1, 10):
            clock.advance(1)
            if transactions() > before:
                held[worker] = second
                break
    assert held == {None: 2, Worker(1, 4): 8}
    session.close()
    db.close()


# -- the command line ------------------------------------------------------------------

def _run(*args):
    return subprocess.run(LINKSYNC + list(args), capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize('args, message', [
    (['--role', 'api,cooking'], "unknown role 'cooking'"),
    (['--role', ''], 'unknown role'),
    (['--worker', '3/2'], 'not a worker I/N with 1 <= I <= N'),
    (['--worker', 'half'], 'not a worker I/N (such as 1/2)'),
    (['--worker', '1/2'], 'they need a shared database'),
    (['--role', 'api', '--worker', '1/1'], 'needs the checker role'),
])
def test_bad_roles_and_workers_are_usage_errors(tmp_path, args, message):
    result = _run('serve', '--data', str(tmp_path), *args)
    assert result.returncode == 2
    assert message in result.stderr.strip().splitlines()[-1]
    assert not list(tmp_path.iterdir())  # nothing made, nothing touched


def test_roles_in_one_process_and_no_secret_for_a_checker(tmp_path):
    data = tmp_path / 'var'
    checker = testing.Command('serve', '--role', 'checker', '--data', data,
                              '--listen', 'tcp:0:interface=127.0.0.1').start()
    assert checker.stop() == 0
    assert 'linksync running: checker\n' in checker.text
    assert 'listening' not in checker.text
    assert not (data / 'secret').exists()
    both = testing.Command('serve', '--role', 'agents,syncer', '--data',
                           data).start()
    assert both.stop() == 0
    assert 'linksync running: syncer, agents\n' in both.text
    assert (data / 'secret').exists()  # the agents unseal credentials


def test_the_twist_plugin_takes_roles_and_workers_too():
    from twisted.python import usage

    from linksync.server.twist import Options
    options = Options()
    options.parseOptions(['--role', 'checker', '--worker', '2/3', '--zeo',
                          '127.0.0.1:8100'])
    assert options.settings.role == ('checker',)
    assert options.settings.worker == Worker(2, 3)
    with pytest.raises(usage.UsageError, match='need a shared database'):
        Options().parseOptions(['--role', 'checker', '--worker', '2/3'])


# -- conflicts between processes ----------------------------------------------------------

def start_postgresql():
    """A started testing.PostgreSQLServer; the test is skipped, saying
    why, where none can start."""
    reason = testing.PostgreSQLServer.unavailable()
    if reason:
        pytest.skip('no PostgreSQL server: %s' % reason)
    try:
        return testing.PostgreSQLServer().start()
    except RuntimeError as e:
        pytest.skip('PostgreSQL cannot start here: %s' % e)


def _shared_databases(kind, tmp_path):
    """Two Databases on one ZEO or PostgreSQL database, as two processes
    have (each its own storage connection and cache)."""
    if kind == 'zeo':
        server = testing.zeo_server(str(tmp_path / 'zeo'))
        open_ = lambda: storage.open_storage(zeo=server.address)  # noqa
    else:
        server = start_postgresql()
        open_ = lambda: storage.open_storage(dsn=server.dsn)  # noqa
    dbs = [database.Database(open_()) for _ in range(2)]
    for db in dbs:
        testing.on_cleanup(db.close)
    return dbs


def _client(app, name='fred'):
    clients = zope.component.getUtility(IClientProvider)
    return clients.get(name) or clients.add(Client(name, password='pw'))


def _record(app, url, state, now):
    obj = zope.component.getUtility(IURLProvider).get(url)
    zope.component.getUtility(ISchedule).record(
        obj, state, 'why', now, Timing())


@pytest.mark.parametrize('kind', ['zeo', 'postgresql'])
def test_concurrent_changes_are_merged_or_retried_never_lost(kind, tmp_path):
    first, second = _shared_databases(kind, tmp_path)
    a, b = first.session(), second.session()
    urls = ['http://one.test/', 'http://two.test/', 'http://three.test/']

    def setup(app):
        registration.register(_client(app), urls[:2], 1)
        registration.register(_client(app, 'wilma'), urls[2:], 1)
    a.run(setup)
    b.read(lambda app: None)

    def concurrently(mine, theirs):
        """Run mine(app) on `a`; while its first attempt is under way, `b`
        runs theirs(app) and commits. Returns how many attempts `a` made."""
        attempts = []

        def work(app):
            attempts.append(1)
            mine(app)
            if len(attempts) == 1:
                b.run(theirs)
        a.run(work)
        return len(attempts)

    # A checker stores a result while the API registers the same URL for a
    # second client: different fields of one URL, merged without a retry.
    assert concurrently(
        lambda app: _record(app, urls[0], states.OK, 2),
        lambda app: registration.register(
            _client(app, 'wilma'), urls[:1], 2)) == 1

    # Two workers publish the first 'unavailable' of two URLs at once:
    # the counter of that state exists from the start, and both changes
    # of it add up: merged without a retry.
    before = dict(first.transactions)
    assert concurrently(
        lambda app: _record(app, urls[1], states.UNAVAILABLE, 3),
        lambda app: _record(app, urls[2], states.UNAVAILABLE, 3)) == 1

    # Two results for one URL at once (the same fields changed both
    # ways): a real conflict, retried on top of the other.
    assert concurrently(
        lambda app: _record(app, urls[2], states.TEMPORARY, 4),
        lambda app: _record(app, urls[2], states.OK, 4)) == 2
    # Each process counts its own: the retried conflict, and the commits.
    assert first.transactions == {
        'committed': before['committed'] + 2,
        'conflict': before['conflict'] + 1}

    def look(app):
        provider = zope.component.getUtility(IURLProvider)
        return ({u: (provider.get(u).state, sorted(provider.get(u).clients))
                 for u in provider.keys()},
                {k: v for k, v in app.state_counts.counts().items() if v},
                len(zope.component.getUtility(ISchedule)))
    for session in (a, b):
        assert session.read(look) == ({
            'http://one.test/': (states.OK, ['fred', 'wilma']),
            'http://two.test/': (states.UNAVAILABLE, ['fred']),
            'http://three.test/': (states.OK, ['wilma'])},
            {states.OK: 2, states.UNAVAILABLE: 1}, 3)
        # The retry ran on top of the other result: an ok URL failing
        # awaits its confirmation.
        assert session.read(lambda app: zope.component.getUtility(
            IURLProvider).get(urls[2]).pending) == states.TEMPORARY
    a.close()
    b.close()


# -- three processes checking a local URL set --------------------------------------------

#: path -> expected state.
KINDS = {'/status/200': states.OK, '/status/404': states.UNAVAILABLE,
         '/status/503': states.TEMPORARY, '/redirect/1': states.OK}
HOSTS = ['127.0.0.%d' % n for n in range(2, 14)]
URLS_PER_HOST = 16
PER_HOST_CONNECTIONS = 2


def _checks(methods, failing):
    """The checks in the requests to one path (methods in order): a GET
    right after a HEAD of a failing path is the same check."""
    count = 0
    previous = None
    for method in methods:
        if not (failing and method == 'GET' and previous == 'HEAD'):
            count += 1
        previous = method
    return count


def _url_set(servers):
    urls = {}
    kinds = sorted(KINDS)
    for server in servers:
        for n in range(URLS_PER_HOST):
            path = kinds[n % len(kinds)]
            urls[server.url('%s?n=%d' % (path, n))] = KINDS[path]
    return urls


def _wait_for_states(proxy, urls, seconds=120):
    deadline = time.monotonic() + seconds
    while True:
        rows = proxy.getURLStates('fred', 'pw', list(urls))
        got = {row[0]: row[1] for row in rows}
        if len(got) == len(urls) and states.UNKNOWN not in got.values():
            return got
        assert time.monotonic() < deadline, 'unchecked after %d s: %d' % (
            seconds, sum(1 for s in got.values() if s == states.UNKNOWN))
        time.sleep(0.2)


def _consistency(database_storage, workers):
    """What the database holds, read by the test itself."""
    db = database.Database(database_storage)
    session = db.session()

    def look(app):
        schedule = zope.component.getUtility(ISchedule)
        provider = zope.component.getUtility(IURLProvider)
        every = list(schedule.due_keys(float('inf')))
        shares = [list(schedule.due_keys(float('inf'), worker=w))
                  for w in workers]
        expected = sorted((provider.get(u).next_check, u)
                          for u in provider.keys())
        counted = collections.Counter(provider.get(u).state
                                      for u in provider.keys())
        return {
            'index': every == expected,
            'shares': sorted(k for s in shares for k in s) == every,
            'length': len(schedule) == len(every),
            'counts': {k: v for k, v in app.state_counts.counts().items()
                       if v} == dict(counted),
            'states': {u: provider.get(u).state for u in provider.keys()},
        }
    try:
        return session.read(look)
    finally:
        session.close()
        db.close()


def run_three_processes(tmp_path, storage_args, open_storage):
    """API + two checker workers on one database check a URL set."""
    servers = [testservers.HTTPTestServer(host).start() for host in HOSTS]
    urls = _url_set(servers)
    workers = [Worker(1, 2), Worker(2, 2)]
    owners = {host: [w.index for w in workers
                     if w.owns_url('http://%s/' % host)] for host in HOSTS}
    assert {1, 2} == {o[0] for o in owners.values()}, owners
    processes = []
    api = testing.Command(
        'serve', '--role', 'api', *storage_args, '--data', tmp_path / 'api',
        '--listen', 'tcp:%d:interface=127.0.0.1' % testing.free_port(),
        '--secret', 'sesame', ready='listening on')
    processes.append(api.start())
    port = int(api.text.split('listening on http://127.0.0.1:')[1]
               .split('/')[0])
    proxy = xmlrpc.client.ServerProxy('http://127.0.0.1:%d/RPC2' % port)
    proxy.registerClient('sesame', 'fred', 'http://127.0.0.1:9/', 'Fred',
                         'fred@example.com', 'pw')
    for worker in workers:
        processes.append(testing.Command(
            'serve', '--role', 'checker', '--worker', str(worker),
            *storage_args, '--allow-network', '127.0.0.0/8',
            '--per-host-delay', '0.05', '--per-host-connections',
            str(PER_HOST_CONNECTIONS), '--user-agent',
            'linksync-worker-%d' % worker.index, '--log-level', 'debug',
            ).start())
    # Registered in batches while the workers check the earlier ones.
    listed = list(urls)
    for start in range(0, len(listed), 50):
        proxy.registerURLs('fred', 'pw', listed[start:start + 50])
    got = _wait_for_states(proxy, urls)
    # The API process serves its pages without a checker of its own.
    overview = testing.fetch('http://127.0.0.1:%d/' % port, password='sesame')
    assert overview.status == 200
    assert 'no checker in this process' in overview.text
    for process in processes:
        assert process.stop() == 0, process.text
    for process in processes[1:]:
        assert 'Traceback' not in process.text, process.text

    # Every state stored, as the API reports it and in the database.
    assert got == urls
    found = _consistency(open_storage(), workers)
    assert found.pop('states') == {u: s for u, s in urls.items()}
    assert found == dict.fromkeys(found, True)
    # Every URL checked once (and the target of each redirect, on the
    # same host, once more for each): a check is a HEAD, a HEAD then a GET
    # when the answer to HEAD was no good one (4xx, 5xx), or a GET alone
    # (its host's answers to HEAD were not taken lately).
    for server in servers:
        asked = collections.defaultdict(list)
        for h in server.log:
            asked[h.path].append(h.method)
        requested = collections.Counter(
            {path: _checks(methods, path.startswith(('/status/4',
                                                     '/status/5')))
             for path, methods in asked.items()})
        expected = collections.Counter(
            u.split('%d' % server.port, 1)[1] for u in urls
            if u.startswith(server.url('/')))
        expected['/redirect/0'] = sum(
            n for u, n in expected.items() if u.startswith('/redirect/1'))
        assert requested == expected, server.host
        # Politeness: one worker only ever asks a host (its owner), never
        # more than the per-host connections at once.
        agents = {h.user_agent for h in server.log}
        assert agents == {b'linksync-worker-%d' % owners[server.host][0]}
        assert max(h.in_progress for h in server.log) <= \
            PER_HOST_CONNECTIONS
        assert max(h.connections for h in server.log) <= \
            PER_HOST_CONNECTIONS
    return processes


def test_api_and_two_checker_workers_on_zeo(tmp_path):
    zeo = testing.zeo_server(str(tmp_path / 'zeo'))
    run_three_processes(
        tmp_path, ['--zeo', zeo.address],
        lambda: storage.open_storage(zeo=zeo.address, read_only=True))
    assert zeo.stop() == 0


def test_api_and_two_checker_workers_on_postgresql(tmp_path):
    pg = start_postgresql()
    run_three_processes(
        tmp_path, ['--storage', pg.dsn],
        lambda: storage.open_storage(dsn=pg.dsn, read_only=True))
