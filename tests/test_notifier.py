"""Client notifications on the track, against real callback servers."""

import pytest
import transaction
import zope.component

from linksync import testing
from linksync.server import notifier
from linksync.server.interfaces import INotifications, IURLProvider
from linksync.server.mail import SMTPMailer

START = 1297082000.0


def make_server(tmp_path, name='var', **kw):
    kw.setdefault('notify_attempts', 1)
    # The tests play the checker's part by hand (set_state), and the daily
    # sync has tests of its own: the server runs its API and its agents.
    kw.setdefault('roles', ('api', 'agents'))
    server = testing.ServerFixture(data=str(tmp_path / name), **kw)
    server.clock.advance(START)
    return server.start()


@pytest.fixture
def server(tmp_path):
    return make_server(tmp_path)


@pytest.fixture
def callback():
    return testing.CallbackServer('fred', 'pw').start()


def agents_of(server):
    return server.service.getServiceNamed('agents')


def tick(server, seconds=15):
    """Let `seconds` pass; wait for the round the clock started."""
    server.advance(seconds)
    return server.rt.call(agents_of(server).idle)


def run_round(server):
    return server.rt.call(agents_of(server).run_round)


def set_state(server, url, state, reason='', when=None):
    def change(app):
        now = server.clock.seconds() if when is None else when
        zope.component.getUtility(IURLProvider).get(url).set_result(
            state, reason, now)
    server.run(change)


def register(server, callback, urls, client_id='fred', password='pw'):
    server.register_client(client_id, password, callback_url=callback.url)
    server.proxy().registerURLs(client_id, password, urls)


def notifications(server, client_id='fred'):
    return server.read(lambda app: (
        INotifications(app.clients.get(client_id)).enabled,
        INotifications(app.clients.get(client_id)).failed))


def pointer(server, client_id='fred'):
    return server.read(lambda app: app.sync.pointer('client:' + client_id))


# -- the agent of a client ---------------------------------------------------------------

def test_a_client_gets_its_agent_and_loses_it_with_the_client(server):
    server.register_client('fred', 'pw')
    assert server.read(lambda app: [
        (a.id, a.kind, a.client_id) for a in app.sync.agents()]) == [
        ('client:fred', 'notifier', 'fred')]
    assert pointer(server) == server.read(lambda app: app.sync.closed)

    def remove(app):
        app.clients.remove('fred', server.clock.seconds())
    server.run(remove)
    assert server.read(lambda app: app.sync.agents()) == []


def test_clients_of_an_older_database_get_their_agents_at_start(tmp_path):
    server = make_server(tmp_path)
    server.register_client('fred', 'pw')
    server.run(lambda app: app.sync.reset())           # as if never made
    assert server.read(lambda app: app.sync.agents()) == []
    server.restart()
    assert server.read(lambda app: [a.id for a in app.sync.agents()]) == [
        'client:fred']


def test_changes_are_recorded_with_the_change_or_not_at_all(server):
    server.register_client('fred', 'pw')
    server.proxy().registerURLs('fred', 'pw', ['http://a.example/'])
    count = server.read(lambda app: app.sync.track.count())
    assert count == 1                                  # the registration

    def change_then_fail(app):
        app.urls.get('http://a.example/').set_result('ok', '200', START)
        raise RuntimeError('the unit of work fails')
    with pytest.raises(RuntimeError):
        server.run(change_then_fail)
    assert server.read(lambda app: app.sync.track.count()) == count
    assert server.read(lambda app: app.urls.get('http://a.example/').state) \
        is None
    set_state(server, 'http://a.example/', 'ok', '200 OK')
    assert server.read(lambda app: sorted(
        r.actions for _, r in app.sync.track.iterate())) == [
        ('registered',), ('state_changed',)]


def test_changes_outside_a_database_are_not_recorded():
    from linksync.server.model.url import URL
    url = URL('http://a.example/')
    assert url.set_result('ok', '200', START)          # no site: no track
    transaction.abort()


# -- delivery --------------------------------------------------------------------------------

def test_state_changes_reach_the_client_under_its_spellings(server,
                                                            callback):
    register(server, callback, ['http://A.example', 'http://a.example/',
                                'http://b.example/', 'http://c.example/'])
    set_state(server, 'http://a.example/', 'unavailable', '404 Not Found')
    set_state(server, 'http://b.example/', 'ok', '200 OK')
    tick(server, 5)
    assert callback.calls == []                       # bucket still open
    tick(server, 15)
    assert sorted(callback.rows()) == [
        ['http://A.example', 'unavailable', '404 Not Found'],
        ['http://a.example/', 'unavailable', '404 Not Found'],
        ['http://b.example/', 'ok', '200 OK']]
    assert notifications(server) == (True, 0)
    tick(server, 30)
    assert len(callback.calls) == 1                   # nothing twice


def test_only_the_clients_of_a_url_get_it(server):
    fred = testing.CallbackServer('fred', 'pw').start()
    wilma = testing.CallbackServer('wilma', 'pw2').start()
    register(server, fred, ['http://a.example/', 'http://shared.example/'])
    register(server, wilma, ['http://shared.example/'], 'wilma', 'pw2')
    set_state(server, 'http://a.example/', 'ok', '200 OK')
    set_state(server, 'http://shared.example/', 'unavailable', 'gone')
    tick(server, 30)
    assert sorted(fred.rows()) == [['http://a.example/', 'ok', '200 OK'],
                                   ['http://shared.example/', 'unavailable',
                                    'gone']]
    assert wilma.rows() == [['http://shared.example/', 'unavailable',
                             'gone']]


def test_unregistered_urls_are_not_sent(server, callback):
    register(server, callback, ['http://a.example/', 'http://b.example/'])
    set_state(server, 'http://a.example/', 'ok', '200 OK')
    set_state(server, 'http://b.example/', 'ok', '200 OK')
    server.proxy().unregisterURLs('fred', 'pw', ['http://b.example/'])
    tick(server, 30)
    assert callback.rows() == [['http://a.example/', 'ok', '200 OK']]


def test_several_changes_of_a_url_send_its_latest_state_once(server,
                                                             callback):
    register(server, callback, ['http://a.example/'])
    for state in ('ok', 'unavailable', 'temporary unavailable'):
        set_state(server, 'http://a.example/', state, state)
        server.advance(1)
    tick(server, 30)
    assert callback.rows() == [['http://a.example/', 'temporary unavailable',
                                'temporary unavailable']]


def test_batches_of_at_most_1000_rows(server, callback):
    urls = ['http://h%d.example/' % i for i in range(2300)]
    register(server, callback, urls)

    def check_all(app):
        for url in urls:
            app.urls.get(url).set_result('ok', '200 OK', START + 1)
    server.run(check_all)
    tick(server, 30)
    assert [len(call) for call in callback.calls] == [1000, 1000, 300]
    assert {row[0] for row in callback.rows()} == set(urls)


def test_a_bucket_bigger_than_a_part_is_sent_part_by_part(server, callback):
    # 2,500 state changes in one bucket (one second): read, turned into
    # rows and sent 700 records at a time, so the notifier never holds a
    # whole bucket, however big; the pointer moves once all were sent.
    agents_of(server).chunk_records = 700
    urls = ['http://p%d.example/' % i for i in range(2500)]
    register(server, callback, urls)
    before = pointer(server)

    def check_all(app):
        for url in urls:
            app.urls.get(url).set_result('ok', '200 OK', START + 1)
    server.run(check_all)
    tick(server, 30)
    assert [len(call) for call in callback.calls] == [700, 700, 700, 400]
    assert sorted(row[0] for row in callback.rows()) == sorted(urls)
    assert pointer(server) > before
    tick(server, 30)
    assert len(callback.calls) == 4                    # nothing twice


def test_a_client_failing_within_a_bucket_gets_it_again(server, callback):
    agents_of(server).chunk_records = 700
    urls = ['http://q%d.example/' % i for i in range(2000)]
    register(server, callback, urls)
    before = pointer(server)
    answers = iter([True, RuntimeError('disk full')])
    callback.updated = lambda *args: next(answers, True)

    def check_all(app):
        for url in urls:
            app.urls.get(url).set_result('ok', '200 OK', START + 1)
    server.run(check_all)
    tick(server, 30)
    # The first part was taken, the second refused: the bucket is not
    # done, the pointer stays, and the next attempt sends it whole.
    assert [len(call) for call in callback.calls] == [700, 700]
    assert pointer(server) == before
    assert notifications(server) == (True, 1)
    tick(server, 3600)
    assert [len(call) for call in callback.calls[2:]] == [700, 700, 600]
    assert sorted(row[0] for row in callback.rows()[1400:]) == sorted(urls)
    assert pointer(server) > before
    assert notifications(server) == (True, 0)


# -- outages -------------------------------------------------------------------------------

def test_a_client_down_gets_everything_it_missed_when_back(server,
                                                           callback):
    urls = ['http://u%d.example/' % i for i in range(6)]
    register(server, callback, urls)
    set_state(server, urls[0], 'ok', '200 OK')
    tick(server, 30)
    assert callback.rows() == [[urls[0], 'ok', '200 OK']]

    callback.down()
    expected = {urls[0]: ['ok', '200 OK']}
    for i, url in enumerate(urls[1:], 1):              # changes meanwhile
        set_state(server, url, 'unavailable', 'down %d' % i)
        expected[url] = ['unavailable', 'down %d' % i]
        tick(server, 3600)                             # rounds fail
    set_state(server, urls[0], 'unavailable', 'now broken')
    expected[urls[0]] = ['unavailable', 'now broken']
    before = pointer(server)
    enabled, failed = notifications(server)
    assert enabled and failed >= 4
    assert len(callback.calls) == 1

    callback.up()
    tick(server, 3600)
    assert callback.states == expected                 # everything missed
    assert notifications(server) == (True, 0)
    assert pointer(server) > before
    delivered = len(callback.calls)
    tick(server, 3600)
    tick(server, 3600)
    assert len(callback.calls) == delivered            # and nothing twice


def test_what_a_client_missed_survives_a_restart(tmp_path, callback):
    server = make_server(tmp_path)
    register(server, callback, ['http://a.example/'])
    callback.down()
    set_state(server, 'http://a.example/', 'unavailable', '503')
    tick(server, 30)
    assert notifications(server)[1] == 1
    server.restart()
    callback.up()
    tick(server, 30)
    assert callback.rows() == [['http://a.example/', 'unavailable', '503']]


def test_failing_clients_wait_longer_and_longer(server, callback):
    register(server, callback, ['http://a.example/'])
    callback.down()
    set_state(server, 'http://a.example/', 'ok', '200 OK')
    tick(server, 30)
    assert notifications(server)[1] == 1
    tick(server, 15)                                   # waits 15 s: due
    assert notifications(server)[1] == 2
    tick(server, 15)                                   # waits 30 s now
    assert notifications(server)[1] == 2
    tick(server, 15)
    assert notifications(server)[1] == 3
    assert [notifier.backoff(15, n) for n in (1, 2, 3, 9, 20)] == [
        15, 30, 60, 3600, 3600]


def test_twenty_failures_disable_and_mail_and_reenabling_resumes(tmp_path,
                                                                 callback):
    smtp = testing.SMTPServer().start()
    rt = testing.reactor_thread()
    server = make_server(tmp_path, mailer=SMTPMailer(
        '127.0.0.1', smtp.port, 'linksync@example.org', reactor=rt.reactor))
    register(server, callback, ['http://a.example/', 'http://b.example/'])
    callback.down()
    set_state(server, 'http://a.example/', 'unavailable', '404')
    for attempt in range(1, 21):
        tick(server, 3600)
        assert notifications(server) == (attempt < 20, attempt)
    assert len(smtp.messages) == 1
    [mail] = smtp.messages
    assert mail.recipient == 'fred@example.com'
    assert mail['Subject'] == 'linksync: notifications to fred stopped'
    body = mail.get_payload(decode=True).decode()
    assert '20 attempts in a row failed' in body
    assert 'connection refused' in body
    assert server.proxy().getClientNotifications('fred', 'pw') is False

    set_state(server, 'http://b.example/', 'ok', '200 OK')
    tick(server, 3600)                                 # disabled: no tries
    assert notifications(server) == (False, 20)
    callback.up()
    tick(server, 3600)
    assert callback.calls == []                        # still disabled
    server.proxy().setClientNotifications('fred', 'pw', True)
    tick(server, 15)
    assert sorted(callback.rows()) == [['http://a.example/', 'unavailable',
                                        '404'],
                                       ['http://b.example/', 'ok', '200 OK']]
    assert notifications(server) == (True, 0)
    assert len(smtp.messages) == 1


def test_a_client_refusing_the_server_counts_as_a_failure(server):
    callback = testing.CallbackServer('fred', 'another password').start()
    register(server, callback, ['http://a.example/'])
    set_state(server, 'http://a.example/', 'ok', '200 OK')
    tick(server, 30)
    assert notifications(server) == (True, 1)
    assert 'wrong credentials' in server.read(
        lambda app: app.sync.get_agent('client:fred').last_error)
    assert callback.calls == []


def test_a_client_without_a_stored_password_fails_clearly(server, callback):
    register(server, callback, ['http://a.example/'])

    def forget(app):
        app.clients.get('fred').callback_password_sealed = None
    server.run(forget)
    set_state(server, 'http://a.example/', 'ok', '200 OK')
    tick(server, 30)
    assert server.read(
        lambda app: app.sync.get_agent('client:fred').last_error) == (
        "cannot call client 'fred' back: no callback credential is stored "
        "for client 'fred'; set it with: linksync credential fred")
    assert notifications(server) == (True, 1)


def test_the_notify_interval_is_an_option(tmp_path):
    server = make_server(tmp_path, notify_interval=60)
    assert agents_of(server).interval == 60
    rounds = agents_of(server).rounds
    tick(server, 59)
    assert agents_of(server).rounds == rounds
    tick(server, 1)
    assert agents_of(server).rounds == rounds + 1


def test_a_url_changed_again_after_the_window_is_sent_once(server, callback):
    register(server, callback, ['http://a.example/'])
    set_state(server, 'http://a.example/', 'ok', '200 OK', START + 1)
    server.advance(12)                                 # the next bucket
    set_state(server, 'http://a.example/', 'unavailable', '410 Gone')
    tick(server, 3)            # the first change is closed, not the second
    assert callback.calls == []
    tick(server, 15)
    tick(server, 15)
    assert callback.calls == [[['http://a.example/', 'unavailable',
                                '410 Gone']]]


def test_export_sends_the_state_of_every_checked_url(server, callback,
                                                     capsys):
    from linksync import cli
    register(server, callback, ['http://a.example/', 'http://A.example',
                                'http://b.example/', 'http://c.example/'])
    set_state(server, 'http://a.example/', 'ok', '200 OK')
    set_state(server, 'http://c.example/', 'unavailable', '404')
    server.advance(12)             # the bucket of the changes is closing
    status = cli.main(['agent', 'export', 'client:fred', '--data',
                       server.data, '--server', server.url, '--secret',
                       server.secret])
    assert status == 0, capsys.readouterr()
    assert sorted(callback.rows()) == [
        ['http://A.example', 'ok', '200 OK'],
        ['http://a.example/', 'ok', '200 OK'],
        ['http://c.example/', 'unavailable', '404']]
    # The export covered the changes of the buckets it closed: the next
    # rounds send nothing more.
    tick(server, 30)
    assert len(callback.calls) == 1


def test_exports_are_read_in_pages(server):
    from linksync.server.model import records as changes
    server.register_client('fred', 'pw')
    urls = ['http://u%d.example/' % i for i in range(5)]
    server.proxy().registerURLs('fred', 'pw', urls)
    for url in urls:
        set_state(server, url, 'ok', '200 OK')

    def pages(app, page):
        after, seen = None, []
        while True:
            items, after = page(after)
            seen.append(len(items))
            if after is None:
                return seen
    def client_page(app):
        client = app.clients.get('fred')
        return pages(app, lambda after: changes.client_rows_page(
            client, after, 2))
    assert server.read(client_page) == [2, 2, 1]

    def url_page(app):
        return pages(app, lambda after: changes.snapshot_page(
            after, START, 2))
    assert server.read(url_page) == [4, 4, 2]   # URL and registration


def test_a_zero_notify_interval_is_refused(tmp_path):
    from twisted.internet import task

    from linksync.server import options as config
    from linksync.server.notifier import AgentService
    from linksync.server.service import LinkSyncService
    server = LinkSyncService(
        config.defaults(data=str(tmp_path / 'var'), notify_interval=0),
        reactor=testing.reactor_thread().reactor, clock=task.Clock(),
        secret='s')
    with pytest.raises(config.ConfigError, match='--notify-interval must be'):
        AgentService(server)


def test_the_notify_timeout_is_an_option(tmp_path):
    # A callback that accepts the connection and never answers: the
    # notification gives up after --notify-timeout, not the 120 s default.
    import socket
    silent = socket.socket()
    silent.bind(('127.0.0.1', 0))
    silent.listen(5)
    try:
        server = make_server(tmp_path, notify_timeout=0.2)
        assert agents_of(server).context.timeout == 0.2
        server.register_client('fred', 'pw', callback_url='http://127.0.0.1:'
                               '%d/' % silent.getsockname()[1])
        server.proxy().registerURLs('fred', 'pw', ['http://a.example/'])
        set_state(server, 'http://a.example/', 'ok', '200 OK')
        tick(server, 30)
        assert notifications(server) == (True, 1)
        error = server.read(
            lambda app: app.sync.get_agent('client:fred').last_error)
        assert error.endswith('(updateManyStates): no answer within 0.2 '
                              'seconds'), error
    finally:
        silent.close()


def test_a_stop_during_an_upload_retry_loses_nothing_and_counts_no_failure(
        tmp_path, callback):
    import gc

    from twisted.logger import globalLogPublisher
    errors = []

    def observe(event):
        if event.get('log_failure') is not None or event.get('isError'):
            errors.append(event)
    server = make_server(tmp_path, notify_attempts=3)
    register(server, callback, ['http://a.example/'])
    callback.down()
    set_state(server, 'http://a.example/', 'unavailable', '503')
    globalLogPublisher.addObserver(observe)
    try:
        # The round's first upload fails; the retry waits on the clock,
        # which does not move: the server stops meanwhile.
        server.advance(30)
        server.stop()
        gc.collect()
    finally:
        globalLogPublisher.removeObserver(observe)
    assert [e for e in errors if 'Unhandled' in str(e.get('log_format', '')) +
            str(e.get('log_text', '')) or e.get('log_failure') is not None
            and 'Cancelled' in repr(e['log_failure'])] == []
    server.restart()
    assert notifications(server) == (True, 0)          # no failure counted
    callback.up()
    tick(server, 30)
    assert callback.rows() == [['http://a.example/', 'unavailable', '503']]
