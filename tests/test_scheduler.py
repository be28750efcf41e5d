"""The schedule index and the checker service of the server."""

import collections
import time

import pytest
import zope.component
from ZODB.MappingStorage import MappingStorage

from linksync import states, testing
from linksync.server import options as config, database
from linksync.server.model import events, registration
from linksync.testing import servers as testservers
from linksync.server.interfaces import IClientProvider, ISchedule, IURLProvider
from linksync.server.model.client import Client
from linksync.server.model.due import Schedule, Timing

LOOPBACK = config.network('127.0.0.0/8')


# -- the index, without a server ------------------------------------------------------

@pytest.fixture
def db():
    d = database.Database(MappingStorage())
    yield d
    d.close()


def _client(app, name):
    clients = zope.component.getUtility(IClientProvider)
    return clients.get(name) or clients.add(Client(name, password='pw'))


def test_the_index_follows_registrations(db):
    session = db.session()

    def register(app, name, urls, now):
        registration.register(_client(app, name), urls, now)

    def unregister(app, name, urls, now):
        registration.unregister(_client(app, name), urls, now)

    def look(app):
        s = zope.component.getUtility(ISchedule)
        return (sorted(s.due_keys(10**12)), sorted(s.orphans(10**12)),
                len(s))
    session.run(register, 'a', ['http://x.test/1', 'http://x.test/2'], 100)
    session.run(register, 'b', ['http://x.test/2'], 200)
    assert session.read(look) == (
        [(100, 'http://x.test/1'), (100, 'http://x.test/2')], [], 2)
    session.run(unregister, 'a', ['http://x.test/2'], 300)
    assert session.read(look)[0] == [(100, 'http://x.test/1'),
                                     (100, 'http://x.test/2')]
    session.run(unregister, 'b', ['http://x.test/2'], 400)
    assert session.read(look) == (
        [(100, 'http://x.test/1')], [(400, 'http://x.test/2')], 1)
    # Registered again: adopted, due at once.
    session.run(register, 'a', ['http://x.test/2'], 500)
    assert session.read(look) == (
        [(100, 'http://x.test/1'), (500, 'http://x.test/2')], [], 2)
    # Removed: forgotten.
    session.run(unregister, 'a', ['http://x.test/2'], 600)
    session.run(lambda app: app.urls.remove('http://x.test/2'))
    assert session.read(look) == ([(100, 'http://x.test/1')], [], 1)
    session.close()


def test_due_work_is_found_without_scanning_everything():
    from linksync.server.model.url import URL
    s = Schedule()
    for i in range(20_000):
        s.add(URL('http://x.test/later/%d' % i), 5000 + i)
    for i in range(3):
        s.add(URL('http://x.test/now/%d' % i), 10 + i)
    visited = list(s.due_keys(100))
    assert visited == [(10, 'http://x.test/now/0'),
                       (11, 'http://x.test/now/1'),
                       (12, 'http://x.test/now/2')]
    assert list(s.due_keys(100, after=visited[0])) == visited[1:]
    assert s.due_count(5001) == 5


def test_add_many_indexes_like_add_one_by_one():
    from linksync.server.model.url import URL
    urls = ['http://a.test/1', 'http://a.test/2', 'https://B.test:8443/x',
            'http://b.test/y', 'mailto:someone@c.test', 'http://a.test:81/']
    one, many = Schedule(), Schedule()
    for i, url in enumerate(urls):
        assert one.add(URL(url), i)
    objects = [URL(url) for url in urls]
    assert many.add_many([(url, i) for i, url in enumerate(objects)]) == 6
    assert many.add_many([(objects[0], 99)]) == 0     # scheduled already
    assert len(many) == len(one) == 6
    assert [list(tree) for tree in many._trees] == \
        [list(tree) for tree in one._trees]
    assert [url.next_check for url in objects] == list(range(6))


def test_timing_and_confirmation_in_record(db):
    timing = Timing(recheck=1000, temporary=100, permanent=500, confirm=60)
    session = db.session()
    seen = []
    zope.component.provideHandler(
        lambda e: seen.append((e.object.url, e.old_state, e.object.state)),
        (events.URLStateChanged,))
    url = 'http://x.test/'

    def setup(app):
        registration.register(_client(app, 'a'), [url], 0)

    def record(app, state, now):
        s = zope.component.getUtility(ISchedule)
        obj = zope.component.getUtility(IURLProvider).get(url)
        s.record(obj, state, 'why', now, timing)
        return obj.state, s.due_at(obj)
    session.run(setup)
    try:
        assert session.run(record, states.OK, 10) == (states.OK, 1010)
        # ok -> failing: not published, re-checked after the confirm delay.
        assert session.run(record, states.UNAVAILABLE, 1010) == (
            states.OK, 1070)
        # Confirmed: published.
        assert session.run(record, states.UNAVAILABLE, 1070) == (
            states.UNAVAILABLE, 1570)
        # Temporary failures back off: 100, 200, 400, ... up to 1000.
        assert session.run(record, states.TEMPORARY, 2000) == (
            states.TEMPORARY, 2100)
        assert session.run(record, states.TEMPORARY, 2100)[1] == 2300
        assert session.run(record, states.TEMPORARY, 2300)[1] == 2700
        assert session.run(record, states.TEMPORARY, 2700)[1] == 3500
        assert session.run(record, states.TEMPORARY, 3500)[1] == 4500
        assert session.run(record, states.OK, 4500) == (states.OK, 5500)
        # A failure after ok is confirmed only by a failure: ok again clears.
        assert session.run(record, states.TEMPORARY, 5500) == (
            states.OK, 5560)
        assert session.run(record, states.OK, 5560) == (states.OK, 6560)
    finally:
        zope.component.getGlobalSiteManager().unregisterHandler(
            None, (events.URLStateChanged,))
    assert [s for s in seen if s[0] == url] == [
        (url, None, states.OK), (url, states.OK, states.UNAVAILABLE),
        (url, states.UNAVAILABLE, states.TEMPORARY),
        (url, states.TEMPORARY, states.OK)]
    session.close()


# -- the service in a running server ---------------------------------------------------

def start_server(tmp_path, **settings):
    settings.setdefault('allow_network', [LOOPBACK])
    settings.setdefault('per_host_delay', 0.0)
    settings.setdefault('timeout', 10_000.0)
    settings.setdefault('connect_timeout', 10_000.0)
    return testing.ServerFixture(data=str(tmp_path / 'var'), **settings).start()


def service_of(server):
    return server.service.getServiceNamed('checker')


def run_until(server, webs, done, step=1.0, max_steps=5000, watch=None):
    """Advance the server's clock (only while every started request has
    reached a server) until done() is true."""
    service = service_of(server)

    def settled():
        if watch is not None:
            watch()
        arrived = sum(w.in_progress for w in webs)
        return service.checker.politeness.active == arrived
    for _ in range(max_steps):
        if done():
            return
        if server.rt.call(settled):
            server.advance(step)
        time.sleep(0.002)
    raise AssertionError('not done in time')


def states_of(server, urls):
    def read(app):
        provider = zope.component.getUtility(IURLProvider)
        return {u: (provider.get(u).state, provider.get(u).reason)
                for u in urls if provider.get(u) is not None}
    return server.read(read)


def all_checked(server, urls):
    return lambda: all(state is not None for state, _ in
                       states_of(server, urls).values())


@pytest.fixture
def web():
    # The web server's clock is set to the server's in each test.
    return testservers.HTTPTestServer('127.0.0.2')


def test_registered_urls_are_checked_once_and_stored(tmp_path, web):
    server = start_server(tmp_path)
    web.clock = server.clock
    web.start()
    urls = [web.url('/status/200'), web.url('/status/404'),
            web.url('/status/503'), 'gopher://x.test/']
    fred = server.register_client('fred')
    ann = server.register_client('ann')
    assert server.proxy().registerURLs(*fred, urls) == []
    assert server.proxy().registerURLs(*ann, urls[:2]) == []
    run_until(server, [web], all_checked(server, urls))
    assert states_of(server, urls) == {
        urls[0]: (states.OK, '200 OK'),
        urls[1]: (states.UNAVAILABLE, '404 Not Found'),
        urls[2]: (states.TEMPORARY, '503 Service Unavailable'),
        urls[3]: (states.UNSUPPORTED, 'unsupported protocol: gopher')}
    # Shared by two clients, checked once (one HEAD each).
    assert [h.path for h in web.log if h.method == 'HEAD'] == [
        '/status/200', '/status/404', '/status/503']
    assert server.proxy().getStatus(*ann, urls[1]) == [
        urls[1], 'unavailable', '404 Not Found']
    # Known now: registering again returns the states.
    assert sorted(server.proxy().registerURLs(*ann, urls[2:3])) == [
        [urls[2], 'temporary unavailable', '503 Service Unavailable']]


def test_registered_urls_are_checked_without_waiting_for_the_next_tick(
        tmp_path, web):
    server = start_server(tmp_path)
    web.clock = server.clock
    web.start()
    fred = server.register_client('fred')
    # The first tick, at the start, finds nothing; the next is a second
    # away on the server's clock, which stands still here.
    server.advance(0)
    started = server.clock.seconds()
    api = server.service.getServiceNamed('api').api
    # A list in one unit of work, then one longer than a unit, registered
    # in slices (once the tick the last write asked for found nothing).
    for slice_urls, expected in (
            (api.slice_urls, {'/status/200': (states.OK, '200 OK'),
                              '/status/404': (states.UNAVAILABLE,
                                              '404 Not Found')}),
            (1, {'/status/204': (states.OK, '204 No Content'),
                 '/status/410': (states.UNAVAILABLE, '410 Gone')})):
        server.advance(0)
        api.slice_urls = slice_urls
        urls = [web.url(path) for path in expected]
        assert server.proxy().registerURLs(*fred, urls) == []
        run_until(server, [web], all_checked(server, urls), step=0.0,
                  max_steps=1000)
        assert server.clock.seconds() == started
        assert states_of(server, urls) == {
            web.url(path): verdict for path, verdict in expected.items()}


def test_the_checker_stores_results_of_registered_urls_without_loading_them(
        tmp_path, web):
    # The parts of a server share one session: the checker finds the URLs
    # the API registered in its connection's cache.
    server = start_server(tmp_path)
    web.clock = server.clock
    web.start()
    scheduler = service_of(server).scheduler
    api = server.service.getServiceNamed('api').api
    assert scheduler.session is api.session is server.service.session
    fred = server.register_client('fred')
    urls = [web.url('/status/200?n=%d' % n) for n in range(50)]
    connection = scheduler.session.connection
    server.rt.call(connection.getTransferCounts, True)
    assert server.proxy().registerURLs(*fred, urls) == []
    run_until(server, [web], all_checked(server, urls))
    assert scheduler.written == len(urls)
    loads, stores = server.rt.call(connection.getTransferCounts, True)
    assert stores > len(urls)      # registered, then their results
    assert loads < 5


def test_due_times_follow_the_state(tmp_path, web):
    server = start_server(tmp_path, recheck_interval=1000.0,
                          temporary_interval=100.0, permanent_interval=500.0)
    web.clock = server.clock
    web.start()
    urls = [web.url('/status/200'), web.url('/status/404'),
            web.url('/status/503')]
    fred = server.register_client('fred')
    server.proxy().registerURLs(*fred, urls)
    run_until(server, [web], all_checked(server, urls))

    def due(app):
        s = zope.component.getUtility(ISchedule)
        provider = zope.component.getUtility(IURLProvider)
        return [s.due_at(provider.get(u)) - provider.get(u).last_check
                for u in urls]
    assert server.read(due) == [1000, 500, 100]
    # Not checked again before due; checked again once due.
    hits = len(web.log)
    run_until(server, [web], lambda: len(web.log) > hits)
    # (Asked GET at once: the host's two HEAD answers were not taken.)
    assert [h.path for h in web.log[hits:]] == ['/status/503']


def test_confirmation_before_alarm(tmp_path, web):
    server = start_server(tmp_path, recheck_interval=1000.0,
                          confirm_delay=600.0)
    web.clock = server.clock
    web.start()
    url = web.url('/toggle/a')
    fred = server.register_client('fred')
    server.proxy().registerURLs(*fred, [url])
    run_until(server, [web], all_checked(server, [url]))
    web.toggles['a'] = 404
    def heads():
        return [h for h in web.log if h.method == 'HEAD']
    run_until(server, [web], lambda: len(heads()) == 2)
    first_failure = heads()[-1].time
    assert states_of(server, [url])[url] == (states.OK, '200 OK')
    run_until(server, [web], lambda: states_of(server, [url])[url][0] !=
              states.OK)
    assert len(heads()) == 3
    assert web.log[-1].time - first_failure >= 600
    assert states_of(server, [url])[url] == (states.UNAVAILABLE,
                                             '404 Not Found')


def test_orphans_are_not_checked_and_removed_after_grace(tmp_path, web):
    server = start_server(tmp_path, orphan_grace=3600.0)
    web.clock = server.clock
    web.start()
    kept, dropped = web.url('/status/200'), web.url('/status/204')
    fred = server.register_client('fred')
    server.proxy().registerURLs(*fred, [kept, dropped])
    server.proxy().unregisterURLs(*fred, [dropped])
    run_until(server, [web], all_checked(server, [kept]))
    assert [h.path for h in web.log] == ['/status/200']
    assert dropped in states_of(server, [dropped])
    server.advance(3601)
    run_until(server, [web],
              lambda: dropped not in states_of(server, [dropped]))
    assert kept in states_of(server, [kept])
    assert [h.path for h in web.log] == ['/status/200']


def test_results_are_written_in_batches(tmp_path, web):
    server = start_server(tmp_path)
    web.clock = server.clock
    web.start()
    urls = [web.url('/status/200?n=%d' % i) for i in range(60)]
    fred = server.register_client('fred')
    server.proxy().registerURLs(*fred, urls)
    storage = server.service.database.db.storage

    def transactions():
        return sum(1 for _ in storage.iterator())
    before = transactions()
    run_until(server, [web], all_checked(server, urls), step=0.25)
    # 60 results, a handful of transactions (not one per URL).
    assert transactions() - before <= 6


def test_bounded_queue_never_hands_a_url_out_twice(tmp_path, web):
    server = start_server(tmp_path, check_queue=4, per_host_connections=2)
    web.clock = server.clock
    web.start()
    urls = [web.url('/hold/30?n=%d' % i) for i in range(12)]
    fred = server.register_client('fred')
    server.proxy().registerURLs(*fred, urls)
    scheduler = service_of(server).scheduler
    peak = []

    def watch():
        peak.append(len(scheduler.inflight))
    run_until(server, [web], all_checked(server, urls), step=5.0,
              watch=watch)
    assert max(peak) == 4
    # Each URL requested once.
    assert sorted(h.path for h in web.log) == sorted(
        u[len(web.url('')):] for u in urls)


def test_urls_of_an_older_database_are_indexed(tmp_path, web):
    server = start_server(tmp_path)
    web.clock = server.clock
    web.start()
    urls = [web.url('/status/200'), web.url('/status/410')]

    def older_database(app):
        # As before the schedule existed: URLs registered, nothing indexed.
        registration.register(_client(app, 'old'), urls, 0)
        app.schedule.__init__()
        app.schedule.complete = False
        for url in app.urls:
            del url.next_check
    server.run(older_database)
    run_until(server, [web], all_checked(server, urls))
    assert states_of(server, urls)[urls[1]][0] == states.UNAVAILABLE
    assert server.read(lambda app: app.schedule.complete)


def test_a_check_that_crashes_does_not_stop_the_service(tmp_path, web):
    server = start_server(tmp_path)
    web.clock = server.clock
    web.start()
    scheduler = service_of(server).scheduler
    fred = server.register_client('fred')
    # A result whose writing raises (no check time) makes its batch fail;
    # the others are written one by one and the loop goes on.
    bad, good = 'gopher://x.test/bad', web.url('/status/200?good')
    server.proxy().registerURLs(*fred, [bad])
    server.rt.call(scheduler.stop)  # hold the loop while injecting

    def inject():
        scheduler.results.append((bad, states.OK, 'x', None))
        scheduler.start()
    server.rt.call(inject)
    server.proxy().registerURLs(*fred, [good])
    run_until(server, [web], all_checked(server, [good]))
    # The broken result stored nothing; the URL was checked for real.
    assert states_of(server, [bad])[bad] == (
        states.UNSUPPORTED, 'unsupported protocol: gopher')
    later = web.url('/status/204')
    server.proxy().registerURLs(*fred, [later])
    run_until(server, [web], all_checked(server, [later]))
    assert states_of(server, [later])[later] == (states.OK, '204 No Content')


def test_due_keys_skip_run_skips_one_host_at_one_due_time():
    from linksync.server.model.due import Schedule
    s = Schedule()
    urls = ['http://a.example/%d' % n for n in range(50)] + \
        ['http://b.example/%d' % n for n in range(5)] + \
        ['mailto:x%d@example.com' % n for n in range(3)]
    for url in urls:
        s._tree(url).add((10, url))
    s._tree('http://a.example/late').add((20, 'http://a.example/late'))
    everything = list(s.due_keys(100))
    assert len(everything) == len(urls) + 1
    seen = []
    keys = s.due_keys(100)
    for key in keys:
        seen.append(key)
        if key[1].startswith('http://a.example/') or key[1].startswith('mailto'):
            keys.skip_run(key)  # no effect on host-less URLs
    a_first = min(k for k in everything if 'a.example' in k[1])
    assert seen == [k for k in everything if 'a.example' not in k[1]
                    or k in (a_first, (20, 'http://a.example/late'))]
    # A skip at the last key of a due time, and past the end, is harmless.
    keys = s.due_keys(10)
    last = None
    for key in keys:
        last = key
        keys.skip_run(key)
    assert last is not None
    assert list(s.due_keys(5, after=(50, ''))) == []


def test_the_queue_spans_the_hosts_when_each_has_much_due(tmp_path):
    # 100 hosts with 50 URLs due each, a queue of 1,000, 0.1 s between two
    # requests to a host: a host gets two ticks of work (20 URLs), so the
    # queue holds 50 hosts. (Ten seconds of work a host let 20 hosts fill
    # it, each checked at 10 a second: the checker idled at scale.)
    server = start_server(tmp_path, check_queue=1000, per_host_delay=0.1)
    fred = server.register_client('fred')
    urls = ['http://h%03d.test/%d' % (h, i) for h in range(100)
            for i in range(50)]
    server.proxy().registerURLs(*fred, urls)
    scheduler = service_of(server).scheduler
    server.advance(1)
    hosts = collections.Counter(server.rt.call(
        lambda: list(scheduler.inflight.values())))
    assert sum(hosts.values()) == 1000
    assert max(hosts.values()) <= 20
    assert len(hosts) >= 50
