"""The syncer over real sockets, with the failure paths."""

import threading
import xmlrpc.client
import xmlrpc.server

import pytest
import zope.component
import zope.component.event  # noqa: F401 (handlers of the events, below)
from twisted.internet import defer, task

from linksync import testing
from linksync.server.model import registration
from linksync.server.interfaces import (IClientProvider, ISynchronization,
                                        IURLProvider, IURLRegisteredEvent,
                                        IURLUnregisteredEvent)
from linksync.server.model.client import sync_client

# The notifier (role agents) would push states too; these tests watch the
# syncer's calls alone.
SYNC_ROLES = ('api', 'syncer')

YEAR = 365 * 24 * 3600
DAY = 24 * 3600
HOUR = 3600
E = 'http://example.com/'


@pytest.fixture
def server(tmp_path):
    """A server running its API and its syncer, ticking with the clock."""
    return testing.ServerFixture(data=str(tmp_path / 'var'),
                                 roles=SYNC_ROLES).start()


@pytest.fixture
def quiet(tmp_path):
    """A server whose syncer runs only when the test says so."""
    return testing.ServerFixture(data=str(tmp_path / 'var'),
                                 sync_tick=YEAR, roles=SYNC_ROLES).start()


@pytest.fixture
def dummy():
    return testing.install_xmlrpcdummy()


def clients():
    return zope.component.getUtility(IClientProvider)


def urls_of(server, client_id='fred'):
    return server.read(lambda app: list(clients().get(client_id).url_keys()))


def url_count(server):
    return server.read(
        lambda app: len(zope.component.getUtility(IURLProvider)))


def sync_state(server, client_id='fred'):
    def read(app):
        s = ISynchronization(clients().get(client_id))
        return {'last': s.last, 'force': s.force,
                'retry_after': s.retry_after, 'last_error': s.last_error}
    return server.read(read)


def add_fred(server, callback_url, urls=(E + '1', E + '2')):
    proxy = server.proxy()
    proxy.registerClient(server.secret, 'fred', callback_url, 'Fred',
                         'fred@example.com', 'fred-pw')
    if urls:
        proxy.registerURLs('fred', 'fred-pw', list(urls))
    return proxy


def write_meanwhile(server, func, *args):
    """In the reactor thread: func(app, *args) committed by another writer."""
    session = server.service.database.session()
    try:
        session.run(func, *args)
    finally:
        session.close()


def sync_while(server, registered):
    """Synchronise with `registered` handling every URLRegistered event."""
    gsm = zope.component.getGlobalSiteManager()
    gsm.registerHandler(registered, (IURLRegisteredEvent,))
    try:
        [result] = testing.sync_now(server)
    finally:
        gsm.unregisterHandler(registered, (IURLRegisteredEvent,))
    return result


# -- the story, with a client application of its own ---------------------------

class ClientApp:
    """A client application: its link database and a callback endpoint
    served by the standard library's XML-RPC server, in a thread."""

    def __init__(self, links, password='fred-pw', legacy=False):
        self.links = list(links)
        self.password = password
        self.calls = []
        self.states = {}
        self.server = xmlrpc.server.SimpleXMLRPCServer(
            ('127.0.0.1', 0), logRequests=False, allow_none=False)
        name = 'getAllLinks' if legacy else 'xmlrpc_getAllLinks'
        self.server.register_function(self.get_all_links, name)
        self.server.register_function(self.update_many_states,
                                      'updateManyStates')
        self.url = 'http://127.0.0.1:%d/RPC2' % self.server.server_address[1]
        thread = threading.Thread(target=self.server.serve_forever,
                                  kwargs={'poll_interval': 0.05},
                                  daemon=True)
        thread.start()
        testing.on_cleanup(self.stop, thread)

    def stop(self, thread):
        self.server.shutdown()
        self.server.server_close()
        thread.join(10)

    def _check(self, client_id, password):
        if (client_id, password) != ('fred', self.password):
            raise xmlrpc.client.Fault(401, 'who are you?')

    def get_all_links(self, client_id, password):
        self._check(client_id, password)
        self.calls.append('getAllLinks')
        return self.links

    def update_many_states(self, client_id, password, rows):
        self._check(client_id, password)
        self.calls.append('updateManyStates')
        for url, state, reason in rows:
            self.states[url] = state
        return True


def test_the_story_over_real_sockets(server):
    app = ClientApp([E + '1', 'HTTP://Example.COM/3', E + '1', 'not a URL'])
    proxy = add_fred(server, app.url)
    server.run(lambda app: zope.component.getUtility(IURLProvider).get(
        E + '1').set_result('ok', 'OK', 0))

    # The syncer looks every minute; fred was never synchronised.
    server.advance(60)
    testing.wait_for_syncer(server)
    assert app.calls == ['getAllLinks', 'updateManyStates']
    assert urls_of(server) == [E + '1', E + '3']
    # States go back under the client's own spellings.
    assert app.states == {E + '1': 'ok', 'HTTP://Example.COM/3': 'unknown'}
    assert sync_state(server) == {'last': 60, 'force': False,
                                  'retry_after': None, 'last_error': ''}
    # Later that day: nothing.
    server.advance(12 * HOUR)
    testing.wait_for_syncer(server)
    assert len(app.calls) == 2
    # Forced: the next tick synchronises, once.
    app.links.append(E + '4')
    assert proxy.forceSynchronization('fred', 'fred-pw') is True
    assert sync_state(server)['force'] is True
    server.advance(60)
    testing.wait_for_syncer(server)
    assert urls_of(server) == [E + '1', E + '3', E + '4']
    assert sync_state(server)['force'] is False
    server.advance(60)
    testing.wait_for_syncer(server)
    assert len(app.calls) == 4
    # The URL the client sent in another spelling is reported so.
    assert proxy.getStatus('fred', 'fred-pw', 'HTTP://Example.COM/3') == [
        'HTTP://Example.COM/3', 'unknown', 'not checked yet']


def test_a_client_without_xmlrpc_getAllLinks(quiet):
    app = ClientApp([E + '3'], legacy=True)
    add_fred(quiet, app.url)
    [result] = testing.sync_now(quiet)
    assert result.status == 'ok', result.error
    assert urls_of(quiet) == [E + '3']


def test_the_callback_can_refuse_a_wrong_credential(quiet):
    app = ClientApp([E + '3'], password='what the client expects')
    add_fred(quiet, app.url)
    [result] = testing.sync_now(quiet)
    assert result.status == 'failed'
    assert 'fault 401: who are you?' in result.error
    assert urls_of(quiet) == [E + '1', E + '2']


# -- what is sent, and how ----------------------------------------------------------

def test_batches_spellings_duplicates_and_invalid_urls(quiet, dummy):
    links = [E + str(i) for i in range(2400)]
    links += [E.upper() + str(i) for i in range(300)]   # other spellings
    links += links[:100]                                # duplicates
    links += ['', 'no scheme', 'http://example.com/\xe4']  # invalid
    dummy.links = links
    add_fred(quiet, dummy.url, [E + '1', E + 'gone'])
    [result] = testing.sync_now(quiet)
    assert result.status == 'ok', result.error
    assert (result.links, result.invalid) == (2803, 3)
    assert (result.registered, result.unregistered, result.kept) == (
        2399, 1, 1)
    assert result.states == 2700
    assert dummy.batches == [1000, 1000, 700]
    assert len(dummy.states) == 2700
    assert dummy.states['HTTP://EXAMPLE.COM/7'] == ['unknown', '']
    assert len(urls_of(quiet)) == 2400
    # The spellings are the client's.
    assert quiet.proxy().getURLStates('fred', 'fred-pw', [
        'HTTP://EXAMPLE.COM/7']) == [['HTTP://EXAMPLE.COM/7', 'unknown',
                                      '', '']]


def test_a_url_with_more_spellings_than_a_batch(quiet, dummy):
    # Host names are case-insensitive: 2,048 spellings of one URL.
    dummy.links = ['http://%s.example/' % ''.join(
        c.upper() if i >> b & 1 else c for b, c in enumerate('abcdefghijk'))
        for i in range(2048)]
    add_fred(quiet, dummy.url, [])
    [result] = testing.sync_now(quiet)
    assert result.status == 'ok', result.error
    assert (result.registered, result.states) == (1, 2048)
    assert dummy.batches == [1000, 1000, 48]


def test_an_empty_client_database(quiet, dummy):
    dummy.links = []
    add_fred(quiet, dummy.url)
    [result] = testing.sync_now(quiet)
    assert (result.status, result.unregistered, result.states) == (
        'ok', 2, 0)
    assert urls_of(quiet) == []
    assert dummy.batches == []


def test_clients_with_notifications_disabled_are_left_alone(quiet, dummy):
    proxy = add_fred(quiet, dummy.url)
    proxy.setClientNotifications('fred', 'fred-pw', False)
    proxy.forceSynchronization('fred', 'fred-pw')
    assert testing.sync_now(quiet) == []
    [result] = testing.sync_now(quiet, 'fred')
    assert (result.status, result.error) == (
        'skipped', 'its notifications are disabled')
    [result] = testing.sync_now(quiet, 'nobody')
    assert (result.status, result.error) == ('failed', "no client 'nobody'")
    assert dummy.log == []
    proxy.setClientNotifications('fred', 'fred-pw', True)
    [result] = testing.sync_now(quiet)
    assert result.status == 'ok'


def test_synchronization_sync_uses_the_running_syncer(quiet, dummy):
    add_fred(quiet, dummy.url)

    @defer.inlineCallbacks
    def go():
        session = quiet.service.database.session()
        try:
            client = session.read(lambda app: clients().get('fred'))
            result = yield ISynchronization(client).sync()
        finally:
            session.close()
        return result
    result = quiet.rt.call(go)
    assert (result.client_id, result.status) == ('fred', 'ok')
    assert urls_of(quiet) == [E + '1', E + '3']
    from linksync.server.model.client import Client
    with pytest.raises(LookupError, match='no syncer runs'):
        sync_client(Client('loose'))


# -- failures: nothing changes, the next attempt comes after the retry -------------

def _check_failed(server, dummy, result, error):
    assert result.status == 'failed'
    assert error in result.error
    assert urls_of(server) == [E + '1', E + '2']
    state = sync_state(server)
    assert state['last'] is None
    assert state['force'] is False
    assert error in state['last_error']
    now = server.clock.seconds()
    assert state['retry_after'] == now + HOUR
    # Not tried again before the retry interval, even when forced...
    server.advance(HOUR - 1)
    assert testing.sync_now(server) == []
    # ...and tried after it: this time the client answers.
    dummy.links = [E + '1', E + '3']
    dummy.updated = True
    server.run(lambda app: setattr(clients().get('fred'), 'callback_url',
                                   dummy.url))
    server.advance(1)
    [result] = testing.sync_now(server)
    assert result.status == 'ok', result.error
    assert urls_of(server) == [E + '1', E + '3']
    assert sync_state(server) == {'last': now + HOUR, 'force': False,
                                  'retry_after': None, 'last_error': ''}


def _fail_with(quiet, dummy, error, links=None, updated=True,
               callback_url=None):
    proxy = add_fred(quiet, callback_url or dummy.url)
    proxy.forceSynchronization('fred', 'fred-pw')
    count = url_count(quiet)
    if links is not None:
        dummy.links = links
    dummy.updated = updated
    [result] = testing.sync_now(quiet)
    assert url_count(quiet) == count
    _check_failed(quiet, dummy, result, error)


def test_client_unreachable(quiet, dummy):
    _fail_with(quiet, dummy, 'connection refused',
               callback_url='http://127.0.0.1:%d/' % testing.free_port())


def test_client_answers_a_fault(quiet, dummy):
    _fail_with(quiet, dummy,
               'answered xmlrpc_getAllLinks with fault 42: no database',
               links=xmlrpc.client.Fault(42, 'no database'))


@pytest.mark.parametrize('links, error', [
    ({'links': [E + '3']}, 'answered getAllLinks with dict, not an array'),
    ('http://example.com/3', 'answered getAllLinks with str, not an array'),
    ([E + '3', 42], 'an array holding 42, not only strings'),
])
def test_client_answers_no_list_of_strings(quiet, dummy, links, error):
    _fail_with(quiet, dummy, error, links=links)


def test_client_answers_a_million_urls(quiet, dummy):
    million = [E + str(i) for i in range(10 ** 6)]
    _fail_with(quiet, dummy, 'the answer holds more than 500000 values',
               links=lambda *args: million)


def test_client_fails_while_taking_the_states(quiet, dummy):
    # The second batch fails: nothing of the first is applied either.
    calls = []

    def updated(client_id, password, rows):
        calls.append(len(rows))
        if len(calls) == 2:
            raise xmlrpc.client.Fault(500, 'disk full')
        return True
    _fail_with(quiet, dummy, 'answered updateManyStates with fault 500',
               links=[E + str(i) for i in range(1500)], updated=updated)
    assert calls[:2] == [1000, 500]


def test_client_times_out(quiet, dummy):
    proxy = add_fred(quiet, dummy.url)
    proxy.forceSynchronization('fred', 'fred-pw')
    dummy.links = lambda *args: defer.Deferred()     # never answers
    results = []

    def start():
        testing.syncer_of(quiet).sync().addCallback(results.extend)
    quiet.rt.call(start)
    quiet.advance(119)
    assert results == []
    quiet.advance(1)
    testing.wait_for_syncer(quiet)
    [result] = results
    _check_failed(quiet, dummy, result, 'no answer within 120')


def test_a_failure_in_the_middle_of_the_changes(quiet, dummy):
    # Registering breaks after a few units (and savepoints) of changes.
    quiet.service.getServiceNamed('syncer').syncer.unit_size = 100
    count = []

    def boom(event):
        if event.client.id == 'fred':
            count.append(1)
            if len(count) == 550:
                raise RuntimeError('boom')
    gsm = zope.component.getGlobalSiteManager()
    gsm.registerHandler(boom, (IURLRegisteredEvent,))
    try:
        _fail_with(quiet, dummy, 'internal error: RuntimeError: boom',
                   links=[E + 'new/%d' % i for i in range(1000)])
    finally:
        gsm.unregisterHandler(boom, (IURLRegisteredEvent,))


def test_each_unit_registers_and_unregisters_as_one_batch(quiet, dummy):
    # Like registerURLs, a unit of the sync hands its registrations (and
    # its unregistrations) to the event handlers together: batch handlers
    # (the change track, the due index) see one run per unit.
    quiet.service.getServiceNamed('syncer').syncer.unit_size = 100
    add_fred(quiet, dummy.url, [E + 'a/%03d' % i for i in range(150)])
    dummy.links = [E + 'b/%03d' % i for i in range(250)]
    runs = []

    def seen(kind):
        def handler(event):
            handler.many([event])

        def many(events):
            mine = [e for e in events if e.client.id == 'fred']
            if mine:
                runs.append((kind, len(mine)))
        handler.many = many
        return handler
    handlers = [(seen('+'), IURLRegisteredEvent),
                (seen('-'), IURLUnregisteredEvent)]
    gsm = zope.component.getGlobalSiteManager()
    for handler, kind in handlers:
        gsm.registerHandler(handler, (kind,))
    try:
        [result] = testing.sync_now(quiet)
    finally:
        for handler, kind in handlers:
            gsm.unregisterHandler(handler, (kind,))
    assert result.status == 'ok', result.error
    assert (result.registered, result.unregistered) == (250, 150)
    # 'a/' sorts first: 100 gone; 50 gone and 50 new; 100 new; 100 new.
    assert runs == [('-', 100), ('+', 50), ('-', 50), ('+', 100),
                    ('+', 100)]
    assert urls_of(quiet) == dummy.links


# -- a big client, and the rest of the server meanwhile ------------------------------

def test_the_server_keeps_working_during_a_big_sync(quiet, dummy):
    kept = [E + 'kept/%05d' % i for i in range(8000)]
    gone = [E + 'gone/%05d' % i for i in range(4000)]
    new = [E + 'new/%05d' % i for i in range(8000)]
    proxy = add_fred(quiet, dummy.url, kept + gone)
    dummy.links = kept + new
    rt = quiet.rt
    beats = []
    heart = task.LoopingCall(lambda: beats.append(1))
    held = defer.Deferred()
    at_batch = []

    def updated(client_id, password, rows):
        at_batch.append(len(beats))
        return held if len(at_batch) == 1 else True
    dummy.updated = updated
    results = []

    def start():
        # Often enough to show the reactor never stalls for long, without
        # spinning it (that would slow the sync it watches).
        heart.start(0.002)
        testing.syncer_of(quiet).sync().addCallback(results.extend)
    rt.call(start)
    try:
        # While the client holds the first batch of states, the server
        # answers, and commits, as usual.
        while not at_batch:
            rt.call(task.deferLater, rt.reactor, 0.01, lambda: None)
        assert proxy.checkConnection('fred', 'fred-pw') == 2
        proxy.registerClient(quiet.secret, 'bob', dummy.url, 'Bob',
                             'bob@example.com', 'bob-pw')
        assert proxy.registerURLs('bob', 'bob-pw', [E + 'bob']) == []
        assert results == []
        rt.call(held.callback, True)
        testing.wait_for_syncer(quiet)
        [result] = results
        done = len(beats)
    finally:
        rt.call(heart.stop)
    assert result.status == 'ok', result.error
    assert (result.registered, result.unregistered, result.kept) == (
        8000, 4000, 8000)
    # Bob's registration may land in an index bucket the sync split (the
    # due-time index, the URL index): then the sync's commit conflicts and
    # it is done again, from the fetch; nothing is lost either way.
    assert result.attempts in (1, 2)
    assert dummy.batches == [1000] * 16 * result.attempts
    # The changes (20 units of 1,000) let the reactor run in between.
    assert done - at_batch[-1] >= 15
    assert urls_of(quiet) == sorted(kept + new)
    assert urls_of(quiet, 'bob') == [E + 'bob']


def test_a_checker_result_during_the_sync_is_kept(quiet, dummy):
    # Another writer changes URLs the sync changes too: both changes stay.
    add_fred(quiet, dummy.url, [E + '%04d' % i for i in range(2000)])
    dummy.links = [E + '%04d' % i for i in range(1000, 3000)]
    seen = []

    def check(app):
        provider = zope.component.getUtility(IURLProvider)
        for i in (5, 1500, 2500):
            provider.add(E + '%04d' % i).set_result('ok', 'OK', 7)

    def registered(event):
        seen.append(1)
        if len(seen) == 10:
            quiet.rt.reactor.callLater(0, write_meanwhile, quiet, check)
    result = sync_while(quiet, registered)
    assert result.status == 'ok', result.error
    # The checker created URL 2500 first: the sync started again.
    assert result.attempts == 2
    assert urls_of(quiet) == [E + '%04d' % i for i in range(1000, 3000)]

    def states(app):
        provider = zope.component.getUtility(IURLProvider)
        return [(provider.get(E + '%04d' % i).state,
                 sorted(provider.get(E + '%04d' % i).clients))
                for i in (5, 1500, 2500)]
    assert quiet.read(states) == [('ok', []), ('ok', ['fred']),
                                  ('ok', ['fred'])]


def test_stopping_the_server_during_a_sync(tmp_path, dummy):
    server = testing.ServerFixture(data=str(tmp_path / 'var'),
                                   roles=SYNC_ROLES).start()
    add_fred(server, dummy.url)
    asked = threading.Event()

    def never(*args):
        asked.set()
        return defer.Deferred()
    dummy.links = never
    server.advance(60)
    assert asked.wait(30)
    server.stop()
    server.restart()
    # Nothing was recorded: fred is still due.
    assert sync_state(server) == {'last': None, 'force': False,
                                  'retry_after': None, 'last_error': ''}
    dummy.links = [E + '3']
    server.advance(60)
    testing.wait_for_syncer(server)
    assert urls_of(server) == [E + '3']


def test_what_the_client_registers_during_its_sync_stays(quiet, dummy):
    add_fred(quiet, dummy.url, [E + '%04d' % i for i in range(2000)])
    dummy.links = [E + '%04d' % i for i in range(1000, 3000)]
    seen = []

    def client_registers():
        # The client adds a link to its database and registers it.
        dummy.links.append(E + '2500x')
        write_meanwhile(quiet, lambda app: registration.register(
            clients().get('fred'), [E + '2500x']))

    def registered(event):
        seen.append(1)
        if len(seen) == 10:
            quiet.rt.reactor.callLater(0, client_registers)
    result = sync_while(quiet, registered)
    assert result.status == 'ok', result.error
    assert result.attempts == 2
    assert urls_of(quiet) == sorted(
        [E + '%04d' % i for i in range(1000, 3000)] + [E + '2500x'])


def test_conflicting_again_and_again_changes_nothing(quiet, dummy):
    add_fred(quiet, dummy.url, [E + '%04d' % i for i in range(2000)])
    dummy.links = [E + '%04d' % i for i in range(1000, 3000)]
    count = url_count(quiet)
    seen = []

    def checker_adds(app, url):
        # Another writer creates a URL the sync is about to create too.
        zope.component.getUtility(IURLProvider).add(url)

    def registered(event):
        seen.append(event.object.url)
        if len(seen) % 1000 == 10:      # in every attempt
            quiet.rt.reactor.callLater(
                0, write_meanwhile, quiet, checker_adds,
                E + '%04d' % (2990 + len(seen) // 1000))
    result = sync_while(quiet, registered)
    assert result.status == 'failed'
    assert 'conflicted with other writers 3 times in a row' in result.error
    assert urls_of(quiet) == [E + '%04d' % i for i in range(2000)]
    # Only the other writer's three URLs were added.
    assert url_count(quiet) == count + 3
    assert sync_state(quiet)['retry_after'] == quiet.clock.seconds() + HOUR


# -- several clients at once ------------------------------------------------------

def _add_client(server, client_id, callback_url):
    proxy = server.proxy()
    proxy.registerClient(server.secret, client_id, callback_url, 'X',
                         client_id + '@example.com', client_id + '-pw')
    proxy.forceSynchronization(client_id, client_id + '-pw')


def _wait(condition, what):
    """Wait (a bounded while) for condition(), true once the reactor did
    work the test handed to it."""
    for _ in range(3000):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError('never happened: ' + what)


def test_a_hanging_client_does_not_hold_up_the_others(quiet):
    hanging = testing.install_xmlrpcdummy()
    answering = testing.install_xmlrpcdummy(links=[E + 'b1', E + 'b2'])
    asked = threading.Event()

    def never(*args):
        asked.set()
        return defer.Deferred()
    hanging.links = never
    # 'alice' comes first in the clients' order: before, 'bob' waited
    # for her callback's time limit.
    _add_client(quiet, 'alice', hanging.url)
    _add_client(quiet, 'bob', answering.url)
    results = []
    quiet.rt.call(lambda: testing.syncer_of(quiet).sync().addCallback(
        results.extend) and None)
    assert asked.wait(30)
    _wait(lambda: sync_state(quiet, 'bob')['last'] is not None,
          "bob's synchronisation")
    assert urls_of(quiet, 'bob') == [E + 'b1', E + 'b2']
    assert answering.batches == [2]
    assert results == [] and sync_state(quiet, 'alice')['last'] is None
    # Bob asked for twice meanwhile: done then, one after the other (the
    # second finds nothing left to change).
    answering.links = [E + 'b1', E + 'b3']
    again = []
    quiet.rt.call(lambda: testing.syncer_of(quiet).sync_clients(
        ['bob', 'bob']).addCallback(again.extend) and None)
    _wait(lambda: again, "bob's synchronisations asked by name")
    assert [(r.status, r.registered, r.unregistered) for r in again] == [
        ('ok', 1, 1), ('ok', 0, 0)]
    assert urls_of(quiet, 'bob') == [E + 'b1', E + 'b3']
    assert results == [] and sync_state(quiet, 'alice')['last'] is None
    quiet.advance(120)
    testing.wait_for_syncer(quiet)
    assert [(r.client_id, r.status) for r in results] == [
        ('alice', 'failed'), ('bob', 'ok')]
    assert 'no answer within 120' in results[0].error


def test_the_clients_synchronised_at_once_are_bounded(tmp_path):
    server = testing.ServerFixture(data=str(tmp_path / 'var'),
                                   sync_tick=YEAR, roles=SYNC_ROLES,
                                   sync_concurrency=2).start()
    dummy = testing.install_xmlrpcdummy()
    asked = []

    def never(client_id, password):
        asked.append(client_id)
        return defer.Deferred()
    dummy.links = never
    for client_id in ('c1', 'c2', 'c3'):
        _add_client(server, client_id, dummy.url)
    results = []
    server.rt.call(lambda: testing.syncer_of(server).sync().addCallback(
        results.extend) and None)
    _wait(lambda: len(asked) == 2, 'two callbacks asked')
    # Nothing frees a slot but a time limit passing: the third waits
    # however long the reactor runs.
    for _ in range(20):
        server.rt.call(task.deferLater, server.rt.reactor, 0.005,
                       lambda: None)
    assert sorted(asked) == ['c1', 'c2'] and results == []
    server.advance(120)
    _wait(lambda: len(asked) == 3, 'the third callback asked')
    assert results == []
    server.advance(120)
    testing.wait_for_syncer(server)
    assert [(r.client_id, r.status) for r in results] == [
        ('c1', 'failed'), ('c2', 'failed'), ('c3', 'failed')]


def test_a_tick_starts_the_due_clients_while_one_hangs(server):
    hanging = testing.install_xmlrpcdummy()
    answering = testing.install_xmlrpcdummy(links=[E + 'b1'])
    asked = threading.Event()

    def never(*args):
        asked.set()
        return defer.Deferred()
    hanging.links = never
    _add_client(server, 'alice', hanging.url)
    server.advance(60)      # a tick: alice's synchronisation starts
    assert asked.wait(30)
    # Bob registers after that tick; the next one starts him at once.
    _add_client(server, 'bob', answering.url)
    server.advance(60)
    _wait(lambda: sync_state(server, 'bob')['last'] is not None,
          "bob's synchronisation")
    assert urls_of(server, 'bob') == [E + 'b1']
    assert sync_state(server, 'alice')['last'] is None
