"""What the parts of the server record into its metrics (GET /metrics)."""

import re

import pytest
from twisted.internet import task

from linksync import testing
from linksync.server import options as config
from linksync.testing import servers as testservers
from linksync.server.checker.check import Checker
from linksync.server.web.metrics import RATE_WINDOW, Metrics

LOOPBACK = config.network('127.0.0.0/8')


def sample(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, labels or None)


# -- the Metrics object -------------------------------------------------------

def test_gauges_are_read_at_scrape_time_and_replaced_when_declared_again():
    metrics = Metrics()
    value = {'n': 1}
    metrics.gauge('linksync_thing', 'A thing', lambda: value['n'])
    metrics.gauge('linksync_thing', 'A thing', lambda: value['n'] * 10)
    metrics.gauge('linksync_broken', 'Cannot be read', lambda: 1 / 0)
    value['n'] = 2
    text = metrics.exposition().decode()
    assert text.count('# HELP linksync_thing ') == 1
    assert 'linksync_thing 20.0' in text
    assert 'linksync_broken' not in text
    assert metrics.read('linksync_thing') == 20
    assert metrics.read('linksync_broken') is None
    assert metrics.read('linksync_nothing') is None


def test_counts_kept_elsewhere_are_served_as_counters():
    metrics = Metrics()
    counts = {'committed': 3, 'conflict': 0}
    metrics.counter('linksync_things', 'Things done',
                    lambda: {(k,): v for k, v in counts.items()},
                    labels=('outcome',))
    counts['conflict'] = 1
    text = metrics.exposition().decode()
    assert re.search(r'^# TYPE linksync_things(_total)? counter$', text,
                     re.MULTILINE)
    assert 'linksync_things_total{outcome="committed"} 3.0' in text
    assert 'linksync_things_total{outcome="conflict"} 1.0' in text


def test_the_check_rate_covers_the_last_five_minutes():
    metrics = Metrics()
    for second in range(0, 600, 2):                 # 30 checks a minute
        metrics.record_check('ok', 0.1, 1000 + second)
    assert metrics.checks_per_minute(1599) == pytest.approx(30, abs=1)
    assert metrics.checks_per_minute(1600 + RATE_WINDOW) == 0
    assert sample(metrics, 'linksync_checks_total', state='ok') == 300


# -- the checker --------------------------------------------------------------

def test_checks_are_counted_by_state_and_timed_on_the_clock():
    clock = task.Clock()
    web = testservers.HTTPTestServer('127.0.0.2', clock=clock).start()
    metrics = Metrics()
    rt = testing.reactor_thread()
    settings = config.defaults(
        allow_network=[LOOPBACK], per_host_delay=0.0, timeout=1000.0,
        connect_timeout=1000.0, dns_server=[('127.0.0.1', 9)])
    checker = rt.call(Checker, settings, rt.reactor, clock, metrics=metrics)
    testing.on_cleanup(rt.call, checker.close)
    urls = [web.url('/status/200'), web.url('/status/404'),
            web.url('/status/503'), web.url('/hold/5'), 'gopher://x.test/']
    testservers.run_checks(checker, urls, [web])
    assert sample(metrics, 'linksync_checks_total', state='ok') == 2
    assert sample(metrics, 'linksync_checks_total', state='unavailable') == 1
    assert sample(metrics, 'linksync_checks_total',
                  state='temporary unavailable') == 1
    assert sample(metrics, 'linksync_checks_total',
                  state='unsupported protocol') == 1
    count = 'linksync_check_duration_seconds_count'
    bucket = 'linksync_check_duration_seconds_bucket'
    assert sample(metrics, count) == 5
    # The held answer took five seconds of the clock, the others none.
    assert sample(metrics, bucket, le='2.5') == 4
    assert sample(metrics, bucket, le='10.0') == 5
    assert sample(metrics, 'linksync_check_duration_seconds_sum') == \
        pytest.approx(5, abs=0.25)
    # A check stopped before its end is no outcome.
    [d] = rt.call(lambda: [checker.check(web.url('/slow'))])
    rt.call(d.cancel)
    assert rt.call(lambda: d) == ('temporary unavailable', 'check cancelled')
    assert sample(metrics, count) == 5


# -- a running server ---------------------------------------------------------

def test_a_running_server_records_checks_syncs_notifications_and_lags(
        tmp_path):
    web = testservers.HTTPTestServer('127.0.0.2')
    server = testing.ServerFixture(
        data=str(tmp_path / 'var'), allow_network=[LOOPBACK],
        per_host_delay=0.0, timeout=10_000.0, connect_timeout=10_000.0,
        notify_attempts=1)
    server.clock.advance(1_760_000_000)
    server.start()
    web.clock = server.clock
    web.start()
    urls = [web.url('/status/200'), web.url('/status/404')]
    callback = testing.CallbackServer('wiki', 'pw', links=urls).start()
    server.register_client('wiki', 'pw', callback_url=callback.url)
    server.register_client('blog', 'pw')              # its callback is down
    server.proxy().registerURLs('wiki', 'pw', urls)
    server.proxy().registerURLs('blog', 'pw', urls[:1])
    testservers.check_registered(server, urls, [web])
    metrics = server.service.metrics
    assert sample(metrics, 'linksync_checks_total', state='ok') == 1
    assert sample(metrics, 'linksync_checks_total', state='unavailable') == 1
    assert sample(metrics, 'linksync_check_queue') == 0
    assert sample(metrics, 'linksync_check_backlog_seconds') == 0
    scheduler = server.service.getServiceNamed('checker').scheduler
    later = server.clock.seconds() + 2 * 86400
    assert server.read(scheduler.backlog, later) == pytest.approx(86400, 2)

    results = testing.sync_now(server, 'wiki', 'blog')
    assert [r.status for r in results] == ['ok', 'failed']
    assert sample(metrics, 'linksync_syncs_total', outcome='ok') == 1
    assert sample(metrics, 'linksync_syncs_total', outcome='failed') == 1
    assert sample(metrics, 'linksync_sync_duration_seconds_count') == 2

    server.advance(30)
    server.rt.call(server.service.getServiceNamed('agents').idle)
    # The callback got the states from the sync and from the notifier:
    # those of the notifier are counted.
    notified = len(callback.rows()) - results[0].states
    assert notified == 2
    assert sample(metrics, 'linksync_notifications_sent_total') == notified

    def pointers(app):
        return {aid: app.sync.pointer(aid) for aid in ('client:wiki',
                                                       'client:blog')}
    now = server.clock.seconds()
    expected = {aid: max(int(now // 10) - 1 - position, 0) * 10
                for aid, position in server.read(pointers).items()}
    assert expected['client:wiki'] == 0 < expected['client:blog']
    for aid, lag in expected.items():
        assert sample(metrics, 'linksync_agent_lag_seconds', agent=aid) == \
            lag
    text = testing.fetch(server.base_url + '/metrics').text
    assert 'linksync_agent_lag_seconds{agent="client:blog"} %.1f' % \
        expected['client:blog'] in text


def test_a_checker_worker_serves_the_metrics_of_its_checks(tmp_path):
    """Scaled out, the checks are counted in the checker process: it serves
    its own /metrics on --metrics-listen; the API process's has none."""
    zeo = testing.zeo_server(str(tmp_path / 'zeo'))
    web = testservers.HTTPTestServer('127.0.0.2')
    api = testing.ServerFixture(data=str(tmp_path / 'api'), zeo=zeo.address,
                                roles=('api',))
    api.clock.advance(1_760_000_000)
    api.start()
    checker = testing.ServerFixture(
        data=str(tmp_path / 'checker'), zeo=zeo.address, roles=('checker',),
        clock=api.clock, metrics_listen='tcp:0:interface=127.0.0.1',
        allow_network=[LOOPBACK], per_host_delay=0.0, timeout=10_000.0,
        connect_timeout=10_000.0).start()
    assert checker.url is None
    web.clock = api.clock
    web.start()
    urls = [web.url('/status/200'), web.url('/status/404')]
    api.register_client('wiki', 'pw')
    api.proxy().registerURLs('wiki', 'pw', urls)
    testservers.check_registered(checker, urls, [web])

    def samples(url, name):
        return [line for line in testing.fetch(url).text.splitlines()
                if line.startswith(name)]
    assert samples(checker.metrics_url, 'linksync_checks_total') == [
        'linksync_checks_total{state="ok"} 1.0',
        'linksync_checks_total{state="unavailable"} 1.0']
    assert samples(checker.metrics_url, 'linksync_check_queue') == [
        'linksync_check_queue 0.0']
    assert samples(api.base_url + '/metrics', 'linksync_checks_total') == []
    # Each process counts the transactions of its own sessions: the
    # checker stored its results in at least one.
    committed = [line for line in samples(
        checker.metrics_url, 'linksync_database_transactions_total')
        if 'outcome="committed"' in line]
    assert len(committed) == 1
    assert float(committed[0].split()[-1]) >= 1
    assert checker.service.database.transactions['committed'] == \
        float(committed[0].split()[-1])
    assert samples(api.base_url + '/metrics', 'linksync_clients') == [
        'linksync_clients 1.0']
    # Only the metrics are on that port.
    assert testing.fetch(checker.metrics_url[:-len('metrics')]).status == \
        404
    checker.stop()
    api.stop()
    assert zeo.stop() == 0


def test_checks_in_progress_and_active_are_gauges(tmp_path):
    """What gocept.lms showed in munin: how many checks run right now."""
    import time
    web = testservers.HTTPTestServer('127.0.0.2')
    server = testing.ServerFixture(
        data=str(tmp_path / 'var'), allow_network=[LOOPBACK],
        per_host_delay=0.0, per_host_connections=1, timeout=10_000.0,
        connect_timeout=10_000.0)
    server.start()
    web.clock = server.clock
    web.start()
    server.register_client('wiki', 'pw')
    # Two URLs of one host, one connection a host: the first never
    # answers, the second waits for the first one's slot.
    urls = [web.url('/slow'), web.url('/status/200')]
    server.proxy().registerURLs('wiki', 'pw', urls)
    metrics = server.service.metrics
    checker = server.service.getServiceNamed('checker').checker
    for _ in range(5000):
        if server.rt.call(lambda: web.in_progress) == 1 and \
                server.rt.call(lambda: checker.in_progress) == 2:
            break
        server.advance(1)
        time.sleep(0.002)
    text = testing.fetch(server.base_url + '/metrics').text
    assert 'linksync_checks_in_progress 2.0' in text
    assert 'linksync_checks_active 1.0' in text
    assert '# HELP linksync_checks_in_progress Checks started' in text
    server.stop()               # the checks are cancelled: none is left
    assert checker.in_progress == 0 and checker.politeness.active == 0


# -- who may read /metrics (--metrics-access) ------------------------------------

def outward_address():
    """An address of this machine that is not loopback (the one its
    default route leaves from), or None."""
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(('192.0.2.1', 9))     # no packet is sent
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith('127.') or address == '0.0.0.0' \
        else address


def metrics_server(tmp_path, interface='127.0.0.1', **settings):
    server = testing.ServerFixture(
        data=str(tmp_path / 'var'), listen='tcp:0:interface=%s' % interface,
        roles=('api',), **settings).start()
    return server, 'http://%s:%d/metrics' % (interface, server.port)


def status(url, **kw):
    return testing.fetch(url, accept=None, **kw).status


def test_metrics_are_open_to_this_machine_and_need_the_secret_from_others(
        tmp_path):
    address = outward_address()
    if address is None:
        pytest.skip('this machine has no address but loopback')
    server, url = metrics_server(tmp_path, interface=address)
    answer = testing.fetch(url, accept=None)
    assert answer.status == 401
    assert answer.headers['WWW-Authenticate'].startswith('Basic ')
    assert '--metrics-access loopback' in answer.text
    assert 'linksync_' not in answer.text
    assert status(url, password='wrong') == 401
    answer = testing.fetch(url, accept=None, password=server.secret)
    assert answer.status == 200 and 'linksync_clients 0.0' in answer.text
    # From loopback, no login.
    _, local = metrics_server(tmp_path / 'local')
    assert status(local) == 200
    # --metrics-access open: anybody.
    _, url = metrics_server(tmp_path / 'open', interface=address,
                            metrics_access='open')
    assert status(url) == 200


def test_metrics_access_secret_asks_even_this_machine(tmp_path):
    server, url = metrics_server(tmp_path, metrics_access='secret')
    assert status(url) == 401
    assert status(url, password=server.secret) == 200
    # A login session opens them too.
    login = testing.fetch(server.base_url + '/login',
                          form={'secret': server.secret, 'next': '/'})
    cookie = login.headers['Set-Cookie'].split(';')[0]
    assert status(url, cookie=cookie) == 200
    # Wrong guesses are throttled with the pages' login.
    access = server.service.api.api.web_access
    for i in range(access.throttle.free + 1):
        assert status(url, password='guess%d' % i) == 401
    assert status(url, password=server.secret) == 401
    server.advance(access.throttle.max_delay)
    assert status(url, password=server.secret) == 200


def test_metrics_listen_follows_metrics_access(tmp_path):
    server = testing.ServerFixture(
        data=str(tmp_path / 'var'), roles=('agents',), metrics_access='secret',
        metrics_listen='tcp:0:interface=127.0.0.1').start()
    assert status(server.metrics_url) == 401
    assert status(server.metrics_url, password=server.secret) == 200
    # A process whose roles need no secret has none: it says so.
    worker = testing.ServerFixture(
        data=str(tmp_path / 'worker'), secret='', roles=('syncer',),
        metrics_access='secret',
        metrics_listen='tcp:0:interface=127.0.0.1').start()
    answer = testing.fetch(worker.metrics_url, accept=None, password='')
    assert answer.status == 401
    assert 'This process has no management secret: give it one with ' \
        '--secret or $LINKSYNC_SECRET, or choose --metrics-access open.' \
        in answer.text


def test_metrics_access_is_an_option_of_serve(capsys):
    from linksync import cli
    with pytest.raises(SystemExit):
        cli.main(['serve', '--help'])
    out = ' '.join(capsys.readouterr().out.split())
    assert '--metrics-access WHO who may read /metrics: open (anybody), ' \
        'loopback' in out
    assert '(default: loopback)' in out
    parser = config.argument_parser('linksync serve', config.SERVER_OPTIONS)
    with pytest.raises(SystemExit):
        parser.parse_args(['--metrics-access', 'everybody'])
    assert "not one of open, loopback, secret: 'everybody'" in \
        capsys.readouterr().err
