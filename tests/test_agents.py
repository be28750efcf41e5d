"""The SyncManager, reduction, the uploader and the agent runner."""

import random

import pytest
import transaction
import ZODB
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, task
from ZODB.FileStorage import FileStorage
from ZODB.MappingStorage import MappingStorage
from ZODB.POSException import ConflictError

from linksync import agents
from linksync.server import database
from linksync.agents.agent import PushSyncAgent, RecordUploader, SyncAgent
from linksync.agents.errors import AgentError, UnknownAgent, UploadError
from linksync.agents.manager import SyncManager
from linksync.agents.reduction import reduce_records
from linksync.agents.runner import AgentRunner, RunContext
from linksync.track.records import ActionWrapper


def rec(name, flags, ts):
    return ActionWrapper('http://%s.example/' % name, flags, ts)


# -- reduction -------------------------------------------------------------------------

@pytest.mark.parametrize('flags, expected', [
    (['created', 'deleted'], None),
    (['created', 'state_changed', 'deleted'], None),
    (['state_changed', 'deleted'], 'deleted'),
    (['deleted'], 'deleted'),
    (['created', 'state_changed'], 'created'),
    (['created'], 'created'),
    (['state_changed'], 'modified'),
    (['state_changed', 'title_changed'], 'modified'),
    (['registered', 'unregistered'], None),
    (['registered'], 'created'),
    (['unregistered', 'state_changed'], 'deleted'),
])
def test_reduction_rules(flags, expected):
    records = [rec('x', flag, ts) for ts, flag in enumerate(flags)]
    changes = reduce_records(records)
    if expected is None:
        assert changes == []
    else:
        [change] = changes
        assert change.action == expected
        assert change.timestamp == len(flags) - 1
        assert set(change.flags) == set(flags) - agents.CREATE_FLAGS - \
            agents.DELETE_FLAGS


def test_reduction_is_per_object():
    changes = reduce_records([
        rec('a', 'created', 1), rec('b', 'state_changed', 2),
        rec('a', 'deleted', 3), rec('c', 'deleted', 0)])
    assert [(c.key[1], c.action) for c in changes] == [
        ('http://c.example/', 'deleted'), ('http://b.example/', 'modified')]


FLAGS = st.sampled_from(['created', 'deleted', 'state_changed',
                         'title_changed', 'registered', 'unregistered'])
RECORDS = st.lists(
    st.builds(rec, st.sampled_from('abcd'), st.sets(FLAGS, min_size=1),
              st.integers(0, 50)), max_size=30)


@given(RECORDS, st.randoms(use_true_random=False))
def test_reduction_does_not_depend_on_record_order(records, rnd):
    shuffled = list(records)
    rnd.shuffle(shuffled)
    assert reduce_records(shuffled) == reduce_records(records)


@given(RECORDS)
def test_reduction_gives_one_change_per_object(records):
    changes = reduce_records(records)
    assert len({c.key for c in changes}) == len(changes)
    assert {c.key for c in changes} <= {r.key for r in records}


# What a consumer ends up with: the records of a window replayed in order
# (the world) against the reduced changes applied (the consumer).

@st.composite
def lives(draw):
    """(existed at the start of the window, per object; the records of a
    valid history of the objects, in time order, with distinct times)."""
    names = draw(st.lists(st.sampled_from('abcd'), min_size=1, max_size=4,
                          unique=True))
    existed = {name: draw(st.booleans()) for name in names}
    exists = dict(existed)
    kinds = {name: draw(st.sampled_from([('created', 'deleted'),
                                         ('registered', 'unregistered')]))
             for name in names}
    records = []
    ts = 0
    for _ in range(draw(st.integers(0, 12))):
        name = draw(st.sampled_from(names))
        ts += draw(st.integers(1, 3))
        create, delete = kinds[name]
        if exists[name]:
            flag = draw(st.sampled_from([delete, 'state_changed']))
        else:
            flag = create
        exists[name] = flag != delete
        records.append(rec(name, flag, ts))
    return existed, exists, records


@given(lives(), st.randoms(use_true_random=False))
@settings(max_examples=500)
def test_reduction_leaves_a_consumer_where_the_records_leave_the_world(
        life, rnd):
    existed, exists, records = life
    shuffled = list(records)
    rnd.shuffle(shuffled)
    changes = reduce_records(shuffled)
    consumer = {'http://%s.example/' % n: e for n, e in existed.items()}
    changed = set()
    for change in changes:
        url = change.key[1]
        changed.add(url)
        if change.action == 'created':
            consumer[url] = True
        elif change.action == 'deleted':
            assert consumer[url], 'a delete of what the consumer never had'
            consumer[url] = False
        else:
            assert change.action == 'modified' and consumer[url]
    world = {'http://%s.example/' % n: e for n, e in exists.items()}
    assert consumer == world
    touched = {r.key[1] for r in records}
    for name in existed:
        url = 'http://%s.example/' % name
        if url in touched and world[url]:
            # It exists and something happened to it: the consumer hears.
            assert url in changed
        if not existed[name] and not world[url]:
            # It came and went within the window: nothing to say.
            assert url not in changed


@pytest.mark.parametrize('flags, expected', [
    # An editor saves a page twice: a new link added, dropped, added again.
    (['registered', 'unregistered', 'registered'], 'created'),
    # A known link dropped, restored, dropped again.
    (['unregistered', 'registered', 'unregistered'], 'deleted'),
    (['deleted', 'created'], 'created'),
    (['deleted', 'created', 'state_changed'], 'created'),
    (['created', 'deleted', 'created', 'deleted'], None),
])
def test_reduction_follows_the_order_of_creates_and_deletes(flags, expected):
    records = [rec('x', flag, ts) for ts, flag in enumerate(flags)]
    for order in (records, records[::-1]):
        changes = reduce_records(order)
        assert [c.action for c in changes] == \
            ([] if expected is None else [expected])


# -- the manager ------------------------------------------------------------------------

def manager_with_agent(start_time=1000):
    manager = SyncManager(granularity=10)
    manager.register_agent(SyncAgent('a'), now=start_time)
    return manager


def test_granularity_is_checked():
    for bad in (0, -1, 2.5, True, '10'):
        with pytest.raises(ValueError):
            SyncManager(bad)
    assert SyncManager(100).bucket(1297082086) == 12970820


def test_new_agent_starts_at_the_open_bucket():
    manager = SyncManager(granularity=10)
    manager.add(995, rec('old', 'state_changed', 995))
    manager.register_agent(SyncAgent('a'), now=1003)
    assert manager.pointer('a') == 99
    manager.add(1004, rec('new', 'state_changed', 1004))
    manager.close(1020)
    end, records = manager.query('a')
    assert end == 101 and [r.timestamp for r in records] == [1004]
    with pytest.raises(AgentError):
        manager.register_agent(SyncAgent('a'))


def test_agent_ids_are_checked():
    for bad in ('', '  ', 'a\nb', None):
        with pytest.raises(AgentError):
            SyncAgent(bad)
    with pytest.raises(AgentError):
        SyncAgent('a', update_time=0)


def test_the_open_bucket_is_never_read():
    manager = manager_with_agent()
    manager.add(1001, rec('a', 'state_changed', 1001))
    manager.close(1005)                        # bucket 100 is open
    assert manager.query('a') == (99, [])
    manager.close(1010)                        # now it is closed
    end, records = manager.query('a')
    assert end == 100 and len(records) == 1


def test_window_part_reads_a_big_bucket_a_part_at_a_time():
    manager = manager_with_agent()
    for i in range(25):                        # bucket 100: 25 records
        manager.add(1001, rec('big%02d' % i, 'state_changed', 1001))
    for ts in (1011, 1021, 1022):              # buckets 101 and 102
        manager.add(ts, rec('s%d' % ts, 'state_changed', ts))
    manager.close(1030)

    def keys(records):
        return [r.key for r in records]
    everything = keys(manager.window(99)[1])
    parts = []
    end, records, skip = manager.window_part(99, limit=10)
    parts.append((end, keys(records), skip))
    while skip:
        end, records, skip = manager.window_part(99, limit=10, skip=skip)
        parts.append((end, keys(records), skip))
    # Parts of the big bucket, then its rest with the buckets that fit.
    assert [(e, len(k), s) for e, k, s in parts] == [
        (100, 10, 10), (100, 10, 20), (102, 8, 0)]
    assert [k for _, part, _ in parts for k in part] == everything
    assert manager.window_part(99, limit=30)[0::2] == (102, 0)
    # A bucket that does not fit after others waits for the next part.
    end, records, skip = manager.window_part(100, limit=2)
    assert (end, len(records), skip) == (101, 1, 0)
    assert manager.window_part(102, limit=2) == (102, [], 0)


def test_late_records_go_to_the_open_bucket():
    manager = manager_with_agent()
    manager.close(1030)                        # 100..102 closed
    manager.add(1001, rec('late', 'state_changed', 1001))
    # The open bucket, and those of the next minute made ahead.
    assert list(manager.track.positions()) == list(range(103, 111))
    assert manager.track[103] and not manager.track[104]
    [record] = manager.track[103]
    assert record.timestamp == 1001            # the exact time is kept
    assert manager.open_timestamp() == 1030


def test_close_never_goes_back_and_precreates_buckets():
    manager = manager_with_agent()
    assert manager.close(1050) == 104
    assert manager.close(1020) == 104
    assert set(range(105, 112)) <= set(manager.track.positions())


def test_writers_find_their_buckets_made_until_the_next_close():
    """The server's agents close every --notify-interval (15 s): every
    bucket a writer adds to until then exists, so writers in other
    processes never make one (two making one at once conflict)."""
    from linksync.agents.manager import PREPARE_AHEAD
    manager = manager_with_agent()
    for now in range(1000, 1300, 15):
        manager.close(now)
        made = set(manager.track.positions())
        for later in range(now, now + PREPARE_AHEAD):
            assert manager.bucket(later) in made, (now, later)


def test_query_with_a_limit_reads_whole_buckets():
    manager = manager_with_agent()
    for ts in (1001, 1002, 1011, 1012, 1021):
        manager.add(ts, rec('x%d' % ts, 'state_changed', ts))
    manager.close(1050)
    assert manager.query('a', limit=3)[0] == 101    # 4 records, 2 buckets
    assert len(manager.query('a', limit=3)[1]) == 4
    assert manager.query('a', limit=100)[0] == 104
    assert manager.query('a', till=100)[0] == 100
    assert manager.pending('a') == 5


def test_advance_moves_forward_only_and_prunes():
    manager = manager_with_agent()
    manager.register_agent(SyncAgent('b'), now=1000)
    for ts in (1001, 1011, 1021):
        manager.add(ts, rec('x%d' % ts, 'state_changed', ts))
    manager.close(1040)
    manager.advance('a', 102)
    manager.advance('a', 100)
    assert manager.pointer('a') == 102
    manager.advance('b', 101)
    assert manager.prune() == 2                # 100, 101 (b is at 101)
    # 103 was empty when closed; 104 is open, the rest made ahead.
    assert list(manager.track.positions()) == [102] + list(range(104, 112))
    manager.rewind('b', 99)
    assert manager.pointer('b') == 99
    manager.remove_agent('b')                  # removing prunes too
    assert list(manager.track.positions()) == list(range(104, 112))


def test_unknown_agents():
    manager = manager_with_agent()
    for call in (manager.get_agent, manager.pointer, manager.remove_agent,
                 manager.query, lambda aid: manager.advance(aid, 1)):
        with pytest.raises(UnknownAgent, match="no agent 'nope'"):
            call('nope')
    assert 'a' in manager and 'nope' not in manager


def test_reset():
    manager = manager_with_agent()
    manager.add(1001, rec('x', 'state_changed', 1001))
    manager.reset(track_only=True)
    assert manager.track.is_empty() and manager.pointer('a') == 99
    manager.add(1001, rec('x', 'state_changed', 1001))
    manager.reset(agents_only=True)
    assert manager.agents() == [] and manager.track.count() == 1
    manager.register_agent(SyncAgent('a'), now=1000)
    manager.reset()
    assert manager.agents() == [] and manager.track.is_empty()
    with pytest.raises(ValueError):
        manager.reset(agents_only=True, track_only=True)


def exclude_b(obj):
    return obj == 'http://b.example/'


def test_policy_excludes_objects():
    manager = manager_with_agent()
    manager.set_policy(exclude_b)
    assert manager.excluded('http://b.example/')
    assert not manager.add(1001, rec('b', 'state_changed', 1001))
    assert manager.add(1001, rec('a', 'state_changed', 1001))
    manager.set_policy(None)
    assert manager.add(1001, rec('b', 'state_changed', 1001))


def test_seed_names_of_the_manager():
    manager = manager_with_agent()
    assert manager.getGranularity() == 10
    assert manager.getTrack() is manager.track
    assert manager.getAllAgents() == manager.agents()
    manager.registerNewAgent(SyncAgent('b'))
    manager.removeAgent('b')
    assert not manager.objectExcluded('x')


# -- the watermark in a database: late writers move after it ------------------------

@pytest.fixture
def db(tmp_path):
    database_ = ZODB.DB(FileStorage(str(tmp_path / 'Data.fs')))
    yield database_
    database_.close()


@pytest.fixture
def two(db):
    """Two connections on a manager whose buckets up to 100 are closed."""
    tm1, tm2 = transaction.TransactionManager(), transaction.TransactionManager()
    c1, c2 = db.open(transaction_manager=tm1), db.open(transaction_manager=tm2)
    tm1.begin()
    c1.root()['sync'] = manager_with_agent()
    c1.root()['sync'].close(1010)
    tm1.commit()
    return (tm1, c1), (tm2, c2)


def close_while_adding(two, timestamp):
    """The writer (the second connection) adds a record of `timestamp`;
    the agent side closes the buckets up to 101 and commits before the
    writer commits."""
    (tm1, c1), (tm2, c2) = two
    tm2.begin()
    c2.root()['sync'].add(timestamp, rec('w', 'state_changed', timestamp))
    tm1.begin()
    assert c1.root()['sync'].close(1025) == 101
    tm1.commit()


def test_a_writer_committing_after_close_lands_after_the_watermark(two):
    (tm1, c1), (tm2, c2) = two
    # The writer adds to bucket 101 while it is open, and the agent side
    # closes it before the writer commits.
    close_while_adding(two, 1012)
    with pytest.raises(ConflictError):
        tm2.commit()
    tm2.abort()
    tm2.begin()                                # the retry
    c2.root()['sync'].add(1012, rec('w', 'state_changed', 1012))
    tm2.commit()
    tm1.begin()
    [(position, record)] = list(c1.root()['sync'].track.iterate())
    assert position == 102 and record.timestamp == 1012


def test_writers_in_one_open_bucket_do_not_conflict(two):
    (tm1, c1), (tm2, c2) = two
    tm1.begin()
    tm2.begin()
    c1.root()['sync'].add(1011, rec('one', 'state_changed', 1011))
    c2.root()['sync'].add(1012, rec('two', 'state_changed', 1012))
    tm1.commit()
    tm2.commit()
    tm1.begin()
    assert c1.root()['sync'].track.count() == 2


def test_a_close_does_not_fail_writers_adding_to_open_buckets(two):
    """Checker workers commit all the time: a close (every 15 s) fails only
    the commits adding to a bucket it closes."""
    (tm1, c1), (tm2, c2) = two
    close_while_adding(two, 1031)
    tm2.commit()                               # bucket 103: still open
    tm1.begin()
    assert [(p, r.key[-1]) for p, r in c1.root()['sync'].track.iterate()] \
        == [(103, 'http://w.example/')]


def test_a_writer_making_its_bucket_reads_the_watermark(two):
    """Beyond the buckets made ahead, a writer makes its own: a close
    committed meanwhile fails it (it cannot see the bucket to close)."""
    (tm1, c1), (tm2, c2) = two
    tm2.begin()
    manager = c2.root()['sync']
    assert manager.bucket(1500) not in manager.track
    manager.add(1500, rec('w', 'state_changed', 1500))
    tm1.begin()
    c1.root()['sync'].close(1025)
    tm1.commit()
    with pytest.raises(ConflictError):
        tm2.commit()
    tm2.abort()


# -- the uploader ---------------------------------------------------------------------------

class ListUploader(RecordUploader):
    """Keeps batches; fails the attempts listed in `failing` (numbered from
    0)."""

    def __init__(self, failing=(), **kw):
        super().__init__(**kw)
        self.failing = set(failing)
        self.attempts = 0
        self.batches = []

    def _upload_batch(self, batch):
        attempt = self.attempts
        self.attempts += 1
        if attempt in self.failing:
            return defer.fail(OSError('attempt %d failed' % attempt))
        self.batches.append(batch)


def test_uploader_cuts_batches():
    uploader = ListUploader(batch_size=3, clock=task.Clock())
    d = uploader.iterate_over(range(7))
    assert d.result == 7
    assert uploader.batches == [[0, 1, 2], [3, 4, 5], [6]]
    assert uploader.iterateOver([]).result == 0


def test_uploader_retries_with_exponential_backoff():
    clock = task.Clock()
    uploader = ListUploader(failing={1, 2}, batch_size=2, retries=2,
                            backoff=1.0, clock=clock)
    d = uploader.iterate_over(range(4))
    assert not d.called and uploader.attempts == 2
    clock.advance(0.99)
    assert uploader.attempts == 2
    clock.advance(0.01)                        # after 1 s
    assert uploader.attempts == 3 and not d.called
    clock.advance(1.99)
    assert uploader.attempts == 3
    clock.advance(0.01)                        # after 2 s more
    assert d.result == 4
    assert uploader.batches == [[0, 1], [2, 3]]


def test_uploader_gives_up_after_its_retries():
    clock = task.Clock()
    uploader = ListUploader(failing={1, 2, 3}, batch_size=2, retries=2,
                            clock=clock)
    d = uploader.iterate_over(range(4))
    clock.advance(1)
    clock.advance(2)
    failure = []
    d.addErrback(failure.append)
    [f] = failure
    assert f.check(UploadError)
    assert f.value.uploaded == 2 and 'attempt 3 failed' in str(f.value)


def test_uploader_checks_batch_size():
    with pytest.raises(ValueError):
        ListUploader(batch_size=0)


# -- the runner: at least once, and never again after success ---------------------------

#: What recording agents delivered: {agent id: [batch, ...]} (in memory).
SINKS = {}


class RecordingAgent(PushSyncAgent):
    """Delivers (key, timestamp) pairs to SINKS; fails on demand."""

    kind = 'test-recording'

    def _generate_records(self, changes, app, till):
        return [(c.key[1], c.timestamp) for c in changes]

    def export_page(self, app, after, now):
        return [], None

    def uploader(self, app, context):
        return SinkUploader(context.failures, SINKS.setdefault(self.id, []),
                            batch_size=2, retries=0, clock=context.clock)


class SinkUploader(RecordUploader):
    def __init__(self, failures, sink, **kw):
        super().__init__(**kw)
        self.failures = failures
        self.sink = sink

    def _upload_batch(self, batch):
        if self.failures and self.failures.pop(0):
            raise OSError('consumer down')
        self.sink.append(list(batch))


class Context(RunContext):
    def __init__(self, failures):
        super().__init__(reactor=None, clock=task.Clock())
        self.failures = failures


@pytest.fixture
def session(tmp_path):
    db = database.Database(FileStorage(str(tmp_path / 'Data.fs')))
    session = db.session()
    yield session
    session.close()
    db.close()


def run_agent(session, now, failures, chunk=None):
    runner = AgentRunner(session, 'rec', Context(failures))
    if chunk:
        runner.chunk_records = chunk
    d = runner.run(now)
    assert d.called                            # all synchronous here
    return d.result


STEPS = st.lists(st.one_of(
    # add a record: (object number, seconds back from now)
    st.tuples(st.just('add'), st.integers(0, 30), st.integers(0, 25)),
    # time passes
    st.tuples(st.just('wait'), st.integers(1, 30)),
    # run, with a failure pattern for its batches
    st.tuples(st.just('run'), st.lists(st.booleans(), max_size=6),
              st.sampled_from([None, 1, 3]))),
    max_size=40)


@settings(max_examples=80, deadline=None)
@given(STEPS)
def test_failing_agent_delivers_everything_at_least_once_never_after_success(
        steps):
    db = database.Database(MappingStorage())
    session = db.session()
    try:
        check_delivery(session, steps)
    finally:
        session.close()
        db.close()


def check_delivery(session, steps):
    session.run(lambda app: app.sync.register_agent(RecordingAgent('rec'),
                                                    now=1000))
    SINKS.clear()
    now = 1000.0
    added = []
    acknowledged = set()
    serial = 0
    for step in steps:
        if step[0] == 'add':
            serial += 1
            name, back = 'o%d-%d' % (step[1], serial), step[2]
            ts = max(now - back, 0)
            record = ActionWrapper(name, 'state_changed', ts)
            session.run(lambda app: app.sync.add(ts, record))
            added.append((name, ts))
        elif step[0] == 'wait':
            now += step[1]
        else:
            before = len(SINKS.get('rec', []))
            result = run_agent(session, now, list(step[1]), step[2])
            attempted = [item for batch in SINKS.get('rec', [])[before:]
                         for item in batch]
            # Nothing acknowledged is ever sent again.
            assert not acknowledged.intersection(attempted)
            if not result.error:
                acknowledged.update(attempted)
    # Finally the consumer is up: everything added so far is delivered.
    now += 30
    result = run_agent(session, now, [])
    assert not result.error
    delivered = {item for batch in SINKS.get('rec', []) for item in batch}
    assert set(added) <= delivered
    # And a further run sends nothing.
    before = len(SINKS['rec']) if 'rec' in SINKS else 0
    assert run_agent(session, now + 30, []).sent == 0
    assert len(SINKS.get('rec', [])) == before


def test_run_acknowledges_only_after_the_upload(session):
    session.run(lambda app: app.sync.register_agent(RecordingAgent('rec'),
                                                    now=1000))
    SINKS.clear()
    session.run(lambda app: app.sync.add(1001, ActionWrapper(
        'x', 'state_changed', 1001)))
    result = run_agent(session, 1020, [True])
    assert result.error == 'consumer down' and result.sent == 0
    assert session.read(lambda app: app.sync.pointer('rec')) == 99
    assert session.read(lambda app: app.sync.get_agent('rec').failures) == 1
    result = run_agent(session, 1020, [])
    assert (result.sent, result.till, result.error) == (1, 101, '')
    assert session.read(lambda app: (app.sync.pointer('rec'),
                                     app.sync.get_agent('rec').failures,
                                     app.sync.get_agent('rec').delivered)) \
        == (101, 0, 1)
    assert SINKS['rec'] == [[('x', 1001)]]


def test_a_bucket_bigger_than_a_chunk_is_sent_in_parts(session):
    session.run(lambda app: app.sync.register_agent(RecordingAgent('rec'),
                                                    now=1000))
    SINKS.clear()
    names = ['x%d' % i for i in range(7)]
    session.run(lambda app: [app.sync.add(1001, ActionWrapper(
        name, 'state_changed', 1001)) for name in names])
    # Parts of 3, 3 and 1 records, uploaded in batches of 2: the second
    # part fails, so the bucket is not done and the pointer stays.
    result = run_agent(session, 1020, [False, False, True], chunk=3)
    assert (result.sent, result.error) == (0, 'consumer down')
    assert [len(batch) for batch in SINKS['rec']] == [2, 1]
    assert session.read(lambda app: app.sync.pointer('rec')) == 99
    # The next run sends the whole bucket, part by part, and moves on.
    SINKS.clear()
    result = run_agent(session, 1020, [], chunk=3)
    assert (result.sent, result.till, result.error) == (7, 101, '')
    assert [len(batch) for batch in SINKS['rec']] == [2, 1, 2, 1, 1]
    assert sorted(name for batch in SINKS['rec'] for name, _ in batch) == \
        names
    assert session.read(lambda app: app.sync.pointer('rec')) == 101


def test_a_window_of_only_cancelled_changes_still_moves_the_pointer(session):
    session.run(lambda app: app.sync.register_agent(RecordingAgent('rec'),
                                                    now=1000))
    SINKS.clear()
    for flag, ts in (('created', 1001), ('deleted', 1002)):
        session.run(lambda app: app.sync.add(ts, ActionWrapper('x', flag,
                                                               ts)))
    result = run_agent(session, 1020, [])
    assert (result.sent, result.till) == (0, 101) and 'rec' not in SINKS
    assert session.read(lambda app: app.sync.pointer('rec')) == 101


def test_run_of_an_unknown_agent_fails_clearly(session):
    d = AgentRunner(session, 'nope', Context([])).run(1000)
    failures = []
    d.addErrback(failures.append)
    assert failures[0].check(UnknownAgent)
    assert str(failures[0].value) == "no agent 'nope'"


def test_push_agent_base_needs_subclassing():
    agent = PushSyncAgent('p')
    for call in (lambda: agent._generate_records([], None, 0),
                 lambda: agent.export_page(None, None, 0),
                 lambda: agent.uploader(None, None)):
        with pytest.raises(NotImplementedError):
            call()
    with pytest.raises(NotImplementedError):
        RecordUploader(clock=task.Clock())._upload_batch([])
    assert agent.enabled(None) and agent.item_str((1,)) == '(1,)'
    assert SyncAgent('s', description='d').describe() == 'd'
    assert random is not None


def test_the_components_provide_their_interfaces():
    from zope.interface.verify import verifyObject

    from linksync import interfaces
    from linksync.server.model import events
    from linksync.server.exporters import JSONLinesAgent
    from linksync.server.model.client import Client
    from linksync.server.notifier import ClientNotifierAgent
    assert verifyObject(interfaces.ISyncManager, SyncManager())
    assert verifyObject(interfaces.ISyncAgent, SyncAgent('a'))
    for agent in (ClientNotifierAgent('fred'),
                  JSONLinesAgent('j', file='f')):
        assert verifyObject(interfaces.IPushSyncAgent, agent)
    client = Client('fred')
    assert verifyObject(interfaces.IClientAddedEvent,
                        events.ClientAdded(client, 1))
    assert verifyObject(interfaces.IClientRemovedEvent,
                        events.ClientRemoved(client))
