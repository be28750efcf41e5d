"""The checker against real servers on loopback addresses."""

import collections
import os

import pytest
from twisted.internet import task

from linksync import states, testing
from linksync.server import options as config
from linksync.testing import servers as testservers
from linksync.server.checker.check import Checker

OK, TEMP, GONE, UNSUP = (states.OK, states.TEMPORARY, states.UNAVAILABLE,
                         states.UNSUPPORTED)
LOOPBACK = config.network('127.0.0.0/8')


def make_checker(clock, **settings):
    settings.setdefault('allow_network', [LOOPBACK])
    settings.setdefault('per_host_delay', 0.0)
    settings.setdefault('timeout', 1000.0)
    settings.setdefault('connect_timeout', 1000.0)
    settings.setdefault('dns_server', [('127.0.0.1', 9)])
    rt = testing.reactor_thread()
    checker = rt.call(Checker, config.defaults(**settings), rt.reactor, clock)
    testing.on_cleanup(rt.call, checker.close)
    return checker


@pytest.fixture
def clock():
    return task.Clock()


@pytest.fixture
def web(clock):
    return testservers.HTTPTestServer('127.0.0.2', clock=clock).start()


def check(checker, web, *paths):
    urls = [web.url(p) for p in paths]
    results = testservers.run_checks(checker, urls, [web])
    return [results[u] for u in urls]


def test_each_status_class_is_classified_as_the_protocol_says(clock, web):
    checker = make_checker(clock)
    codes = [200, 204, 304, 401, 400, 403, 404, 410, 429, 500, 501, 502,
             503, 504, 505, 507]
    results = check(checker, web, *['/status/%d' % c for c in codes])
    got = dict(zip(codes, (state for state, _ in results)))
    assert got == {200: OK, 204: OK, 304: OK, 401: OK, 400: GONE, 403: GONE,
                   404: GONE, 410: GONE, 429: TEMP, 500: TEMP, 501: GONE,
                   502: GONE, 503: TEMP, 504: TEMP, 505: GONE, 507: TEMP}
    reasons = dict(zip(codes, (reason for _, reason in results)))
    assert reasons[404] == '404 Not Found'
    assert reasons[200] == '200 OK'


def test_head_first_and_get_when_head_is_refused(clock, web):
    checker = make_checker(clock)
    checker.http.get_first_after = None     # HEAD first for every URL
    results = check(checker, web, '/head-refused/405', '/head-refused/403',
                    '/head-refused/501', '/big', '/status/200')
    assert [state for state, _ in results] == [OK] * 5
    methods = collections.defaultdict(list)
    for hit in web.log:
        methods[hit.path].append(hit.method)
    for code in (405, 403, 501):
        assert methods['/head-refused/%d' % code] == ['HEAD', 'GET']
    assert methods['/big'] == ['HEAD', 'GET']
    assert methods['/status/200'] == ['HEAD']


def test_a_get_reads_the_first_bytes_only(clock, web):
    # /big answers 1 MiB to GET: the checker drops the connection early
    # and the next check of that host still works.
    checker = make_checker(clock)
    assert check(checker, web, '/big', '/status/200') == [
        (OK, '200 OK'), (OK, '200 OK')]


def test_redirect_chains_limits_and_loops(clock, web):
    checker = make_checker(clock)
    chain, limit, over, loop = check(checker, web, '/redirect/3',
                                     '/redirect/20', '/redirect/21',
                                     '/loop/a')
    assert chain == (OK, '200 OK after 3 redirects')
    assert limit == (OK, '200 OK after 20 redirects')
    assert over == (GONE, 'too many redirects (more than 20)')
    assert loop[0] == GONE and loop[1].startswith('redirect loop')
    assert len(web.hits('/loop/')) == 2


def test_a_slow_answer_times_out_as_temporary(clock, web):
    checker = make_checker(clock, timeout=5.0)
    [(state, reason)] = check(checker, web, '/slow')
    assert state == TEMP
    # HEAD timed out, then GET did too.
    assert reason == 'no answer to GET within 5 s'
    assert [hit.method for hit in web.hits('/slow')] == ['HEAD', 'GET']


def test_connection_refused_is_temporary(clock):
    checker = make_checker(clock)
    url = 'http://127.0.0.3:%d/' % testing.free_port('127.0.0.3')
    assert testservers.run_checks(checker, [url])[url] == (
        TEMP, 'connection refused')


def test_unsupported_schemes_and_no_host(clock):
    checker = make_checker(clock)
    urls = ['gopher://example.com/', 'news:comp.lang.python', 'http:///x']
    results = testservers.run_checks(checker, urls)
    assert results['gopher://example.com/'] == (
        UNSUP, 'unsupported protocol: gopher')
    assert results['news:comp.lang.python'][0] == UNSUP
    assert results['http:///x'] == (UNSUP, 'no host in the URL')


def test_user_agent_is_sent_and_configurable(clock, web):
    check(make_checker(clock), web, '/status/200')
    assert web.log[-1].user_agent.startswith(
        b'Mozilla/5.0 (compatible; linksync/')
    check(make_checker(clock, user_agent='probe/1.0'), web, '/status/204')
    assert web.log[-1].user_agent == b'probe/1.0'


def test_connections_are_kept_alive_per_host(clock, web):
    checker = make_checker(clock, per_host_connections=1)
    results = check(checker, web, *['/status/200?%d' % i for i in range(8)])
    assert all(state == OK for state, _ in results)
    # One connection carried all eight requests.
    assert max(hit.connections for hit in web.log) == 1
    assert web.factory.protocols  # still open, for the next request


# -- 429 and Retry-After -------------------------------------------------------------

def test_429_with_retry_after_pauses_the_host(clock, web):
    checker = make_checker(clock)
    first = web.url('/status/429?retry-after=120')
    assert testservers.run_checks(checker, [first], [web])[first][0] == TEMP
    paused_at = web.log[-1].time
    later = web.url('/status/200')
    assert testservers.run_checks(checker, [later], [web])[later][0] == OK
    assert web.log[-1].time >= paused_at + 120
    # Another host is not paused.
    other = testservers.HTTPTestServer('127.0.0.4', clock=clock).start()
    url = other.url('/status/200')
    before = clock.seconds()
    testservers.run_checks(checker, [url], [other])
    assert other.log[-1].time == before


def test_retry_after_is_capped_and_adaptive(clock, web):
    checker = make_checker(clock, max_retry_after=300.0)
    url = web.url('/status/503?retry-after=100000')
    assert testservers.run_checks(checker, [url], [web])[url][0] == TEMP
    start = web.log[-1].time
    url = web.url('/status/429')      # no Retry-After: a growing pause
    testservers.run_checks(checker, [url], [web])
    assert web.log[-1].time == start + 300  # the cap, not 100000 s
    second = web.log[-1].time
    url = web.url('/status/200')
    testservers.run_checks(checker, [url], [web])
    # The second refusal in a row doubled the default pause (60 s -> 120 s).
    assert web.log[-1].time >= second + 120


def test_a_wait_limit_reports_a_paused_host_at_once(clock, web):
    # The one-shot command's checker: a host asking for a pause longer
    # than max_wait is not waited for; a shorter one is.
    rt = testing.reactor_thread()
    settings = config.defaults(allow_network=[LOOPBACK], per_host_delay=1.0,
                               per_host_connections=1,
                               dns_server=[('127.0.0.1', 9)])
    checker = rt.call(Checker, settings, rt.reactor, clock, max_wait=5.0)
    testing.on_cleanup(rt.call, checker.close)
    urls = [web.url('/status/429?retry-after=120'), web.url('/status/200'),
            web.url('/redirect/1')]
    results = testservers.run_checks(checker, urls, [web])
    assert [results[url] for url in urls] == [
        (TEMP, '429 Unknown Status'),   # (Twisted's phrase)
        (TEMP, 'host asked to wait 120 s'),
        (TEMP, 'host asked to wait 120 s')]
    assert clock.seconds() < 5
    assert [hit.path for hit in web.log] == ['/status/429?retry-after=120']
    # Later requests to that host are refused at once too.
    url = web.url('/status/204')
    assert testservers.run_checks(checker, [url], [web])[url] == (
        TEMP, 'host asked to wait 120 s')
    # A pause within the limit is waited for.
    other = testservers.HTTPTestServer('127.0.0.4', clock=clock).start()
    urls = [other.url('/status/503?retry-after=3'), other.url('/status/200')]
    results = testservers.run_checks(checker, urls, [other])
    assert [results[url] for url in urls] == [
        (TEMP, '503 Service Unavailable'), (OK, '200 OK')]
    first, second = [hit.time for hit in other.log]
    assert second - first >= 3


# -- politeness, seen from the servers -------------------------------------------------

def test_per_host_delay_and_connection_limit_hold(clock):
    hosts = [testservers.HTTPTestServer('127.0.0.%d' % n, clock=clock).start()
             for n in (5, 6)]
    checker = make_checker(clock, per_host_connections=2,
                           per_host_delay=0.5, concurrency=3)
    urls = [h.url('/hold/2?%d' % i) for h in hosts for i in range(6)]
    results = testservers.run_checks(checker, urls, hosts)
    assert all(state == OK for state, _ in results.values())
    for host in hosts:
        starts = [hit.time for hit in host.log]
        assert len(starts) == 6
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        assert min(gaps) >= 0.5
        assert max(hit.in_progress for hit in host.log) == 2
        assert max(hit.connections for hit in host.log) <= 2
    # The global limit: never more than 3 requests at once on both hosts.
    events = sorted([(hit.time, 1) for h in hosts for hit in h.log] +
                    [(hit.time + 2, -1) for h in hosts for hit in h.log])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    assert peak == 3


def test_the_per_host_delay_runs_from_the_sending(clock):
    # The first request to a host is slow to go out (its name server holds
    # the answer); the second may not reach the host sooner than the delay
    # after the first: the delay runs from the sending, not from the
    # granting of the first request's slot.
    import time
    web = testservers.HTTPTestServer('127.0.0.2', clock=clock).start()
    dns = testservers.DNSTestServer({'slow.test': [('A', '127.0.0.2')]},
                                    held=['slow.test']).start()
    checker = make_checker(clock, per_host_delay=1.0,
                           per_host_connections=2, dns_server=[dns.address])
    urls = ['http://slow.test:%d/status/200?%d' % (web.port, i)
            for i in (1, 2)]
    results = start_checks(checker, urls)
    rt = testing.reactor_thread()
    for _ in range(5000):
        if rt.call(lambda: dns.in_progress):
            break
        time.sleep(0.002)
    # The first look-up is held past the delay: 1.5 s.
    for _ in range(6):
        rt.call(clock.advance, 0.25)
    assert web.log == []
    dns.release()
    for _ in range(5000):
        if len(results) == 2:
            break
        if rt.call(testservers._settled, checker, [web, dns]):
            rt.call(clock.advance, 0.25)
        time.sleep(0.002)
    assert results == {url: (OK, '200 OK') for url in urls}
    first, second = [hit.time for hit in web.log]
    assert first == 1.5
    assert second - first >= 1.0


# -- the network policy ----------------------------------------------------------------

def test_loopback_is_refused_unless_allowed(clock, web):
    checker = make_checker(clock, allow_network=[])
    url = web.url('/status/200')
    assert testservers.run_checks(checker, [url])[url] == (
        UNSUP, 'blocked by policy: 127.0.0.2 is a loopback address')
    assert web.log == []


def test_ipv4_inside_ipv6_and_multicast_are_refused(clock, web):
    # IPv6 forms that carry an IPv4 address are judged by that address;
    # multicast groups count as global for Python, never for the policy.
    checker = make_checker(clock, allow_network=[])
    urls = {
        'http://[::10.0.0.1]/': '::10.0.0.1 is a private address',
        'http://[64:ff9b::a00:1]/': '64:ff9b::a00:1 is a private address',
        'http://[2002:a00:1::1]/': '2002:a00:1::1 is a private address',
        'http://[::ffff:0:a00:1]/': '::ffff:0:a00:1 is a private address',
        'http://[::ffff:127.0.0.2]:%d/' % web.port:
            '::ffff:127.0.0.2 is a loopback address',
        'http://224.0.0.1/': '224.0.0.1 is a multicast address',
        'http://[ff0e::1]/': 'ff0e::1 is a multicast address',
    }
    results = testservers.run_checks(checker, list(urls))
    for url, reason in urls.items():
        assert results[url] == (UNSUP, 'blocked by policy: ' + reason), url
    assert web.log == []


def test_an_allowed_network_opens_its_embedded_forms_too():
    from linksync.server.checker.netpolicy import NetworkPolicy
    policy = NetworkPolicy(['10.0.0.0/8'])
    assert policy.refusal('64:ff9b::a00:1') is None
    assert policy.refusal('2002:a00:1::1') is None
    assert policy.refusal('10.0.0.1') is None
    assert policy.refusal('64:ff9b::808:808') is None   # 8.8.8.8, global
    assert policy.refusal('::1') == \
        'blocked by policy: ::1 is a loopback address'
    assert policy.refusal('11.0.0.1') is None
    assert NetworkPolicy().refusal('2002:b00:1::1') is None


def test_the_policy_applies_to_the_resolved_address(clock, web):
    dns = testservers.DNSTestServer({
        'inside.test': [('A', '127.0.0.2')],
        'private.test': [('A', '10.20.30.40')],
        'linklocal.test': [('A', '169.254.169.254')],
    }, failing=['flaky.test']).start()
    checker = make_checker(clock, allow_network=[], dns_server=[dns.address])
    urls = ['http://inside.test:%d/status/200' % web.port,
            'http://private.test/', 'http://linklocal.test/latest/',
            'http://nowhere.test/', 'http://flaky.test/']
    results = testservers.run_checks(checker, urls)
    assert results[urls[0]] == (
        UNSUP, 'blocked by policy: 127.0.0.2 is a loopback address')
    assert results[urls[1]] == (
        UNSUP, 'blocked by policy: 10.20.30.40 is a private address')
    assert results[urls[2]] == (
        UNSUP, 'blocked by policy: 169.254.169.254 is a link-local address')
    assert results[urls[3]] == (
        GONE, 'DNS: host name nowhere.test does not exist')
    assert results[urls[4]][0] == TEMP
    assert results[urls[4]][1].startswith('DNS: temporary failure')
    assert web.log == []
    # Opening the range lets the name through.
    checker = make_checker(clock, dns_server=[dns.address])
    assert testservers.run_checks(checker, urls[:1], [web])[urls[0]] == (
        OK, '200 OK')


def silent_dns():
    """The address of a UDP socket on 127.0.0.1 that never answers (a
    silent name server)."""
    import socket
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(('127.0.0.1', 0))
    testing.on_cleanup(sock.close)
    return sock.getsockname()


def start_checks(checker, urls):
    """Start checking `urls` in the reactor thread: {url: (state, reason)}
    filled as verdicts come."""
    results = {}

    def start():
        for url in urls:
            checker.check(url).addCallback(
                lambda result, url=url: results.__setitem__(url, result))
    testing.reactor_thread().call(start)
    return results


def verdict_comes_at(clock, checker, url, seconds):
    """Check `url`: no verdict 0.1 s before `seconds` have passed on the
    checker's clock; the verdict once they have (returned)."""
    results = start_checks(checker, [url])
    rt = testing.reactor_thread()
    rt.call(clock.advance, seconds - 0.1)
    assert results == {}
    rt.call(clock.advance, 0.1)
    return results[url]


def test_a_silent_name_server_is_named_in_the_reason(clock):
    checker = make_checker(clock, connect_timeout=3.0,
                           dns_server=[silent_dns()])
    # Within the connect timeout, on the checker's clock; no GET follows
    # a HEAD whose host name had no answer.
    assert verdict_comes_at(clock, checker, 'http://www.silent.test/',
                            3.0) == (
        TEMP, 'DNS: no answer from the name server within 3 s')


def test_a_redirect_into_a_blocked_network_is_refused(clock):
    checker = make_checker(clock, allow_network=[
        config.network('127.0.0.7/32')])
    inside = testservers.HTTPTestServer('127.0.0.8', clock=clock).start()
    outside = testservers.HTTPTestServer('127.0.0.7', clock=clock).start()
    # /status/302 has no Location: it is ok (a 3xx that is not a redirect).
    url = outside.url('/status/302')
    assert testservers.run_checks(checker, [url], [outside])[url][0] == OK
    url = inside.url('/status/200')
    assert testservers.run_checks(checker, [url])[url][0] == UNSUP
    assert inside.log == []


# -- HTTPS -----------------------------------------------------------------------------

def test_https_self_signed_is_unavailable_with_a_tls_reason(clock):
    cert = testservers.make_certificate(['127.0.0.1', 'localhost'])
    web = testservers.HTTPTestServer(clock=clock, tls=cert).start()
    checker = make_checker(clock)
    url = web.url('/status/200')
    state, reason = testservers.run_checks(checker, [url], [web])[url]
    assert (state, reason) == (GONE, 'TLS: certificate is self-signed')
    assert web.log == []


def test_https_reasons_name_the_certificate_problem(clock, tmp_path):
    # What a browser's warning says, not OpenSSL's "certificate verify
    # failed" for each of them.
    import datetime
    utc = datetime.timezone.utc
    ca = testservers.make_certificate([], ca=True)
    # A stranger of the trusted CA's name, and one of another name.
    stranger = testservers.make_certificate([], ca=True)
    other = testservers.make_certificate(['other-ca.example'], ca=True)
    names = ['127.0.0.1', 'localhost']
    certs = {
        'unknown': testservers.make_certificate(names, issuer=stranger),
        'unknown 2': testservers.make_certificate(names, issuer=other),
        'expired': testservers.make_certificate(
            names, issuer=ca, not_before=datetime.datetime(2024, 1, 1,
                                                           tzinfo=utc),
            not_after=datetime.datetime(2025, 1, 1, tzinfo=utc)),
        'not yet': testservers.make_certificate(
            names, issuer=ca, not_before=datetime.datetime(2999, 1, 1,
                                                           tzinfo=utc),
            not_after=datetime.datetime(2999, 2, 1, tzinfo=utc)),
        'good': testservers.make_certificate(names, issuer=ca),
    }
    servers = {kind: testservers.HTTPTestServer(clock=clock, tls=cert).start()
               for kind, cert in certs.items()}
    (tmp_path / 'ca.pem').write_bytes(ca[1])
    checker = make_checker(clock, ca_file=str(tmp_path / 'ca.pem'))
    urls = {kind: web.url('/status/200') for kind, web in servers.items()}
    results = testservers.run_checks(checker, list(urls.values()),
                                     list(servers.values()))
    got = {kind: results[url] for kind, url in urls.items()}
    assert got == {
        'unknown': (GONE, 'TLS: certificate issued by an unknown authority'),
        'unknown 2': (GONE,
                      'TLS: certificate issued by an unknown authority'),
        'expired': (GONE, 'TLS: certificate expired on 2025-01-01'),
        'not yet': (GONE, 'TLS: certificate is not valid before 2999-01-01'),
        'good': (OK, '200 OK')}
    assert [len(servers[kind].log) for kind in certs] == [0, 0, 0, 0, 1]


def test_https_trusted_through_a_ca_file(clock, tmp_path):
    ca = testservers.make_certificate([], ca=True)
    cert = testservers.make_certificate(['127.0.0.1', 'localhost'], issuer=ca)
    web = testservers.HTTPTestServer(clock=clock, tls=cert).start()
    (tmp_path / 'ca.pem').write_bytes(ca[1])
    checker = make_checker(clock, ca_file=str(tmp_path / 'ca.pem'))
    urls = [web.url('/status/200'),
            'https://localhost:%d/redirect/1' % web.port,
            web.url('/status/404')]
    results = testservers.run_checks(checker, urls, [web])
    assert results[urls[0]] == (OK, '200 OK')
    assert results[urls[1]] == (OK, '200 OK after 1 redirect')
    assert results[urls[2]] == (GONE, '404 Not Found')


def test_https_name_mismatch_is_a_tls_failure(clock, tmp_path):
    ca = testservers.make_certificate([], ca=True)
    cert = testservers.make_certificate(['other.example'], issuer=ca)
    web = testservers.HTTPTestServer(clock=clock, tls=cert).start()
    (tmp_path / 'ca.pem').write_bytes(ca[1])
    checker = make_checker(clock, ca_file=str(tmp_path / 'ca.pem'))
    url = web.url('/status/200')
    state, reason = testservers.run_checks(checker, [url], [web])[url]
    assert (state, reason) == (
        GONE, 'TLS: certificate is for other.example, not 127.0.0.1')
    # Reached by a name, the name is given.
    url = 'https://localhost:%d/status/200' % web.port
    assert testservers.run_checks(checker, [url], [web])[url] == (
        GONE, 'TLS: certificate is for other.example, not localhost')


# -- FTP ---------------------------------------------------------------------------------

@pytest.fixture
def ftp(tmp_path):
    root = tmp_path / 'ftp'
    (root / 'pub' / 'docs').mkdir(parents=True)
    (root / 'pub' / 'file.txt').write_bytes(b'hello\n' * 100_000)
    (root / 'pub' / 'empty.txt').write_bytes(b'')
    server = testservers.FTPTestServer(str(root), users={'joe': 's3cret'})
    server.start()
    (root / 'home' / 'joe' / 'private.txt').write_bytes(b'mine')
    return server


def test_ftp_directories_files_and_logins(clock, ftp):
    checker = make_checker(clock)
    urls = {
        'dir/': ftp.url('/pub/'), 'dir': ftp.url('/pub/docs'),
        'file': ftp.url('/pub/file.txt'), 'empty': ftp.url('/pub/empty.txt'),
        'missing': ftp.url('/pub/missing.txt'),
        'user': ftp.url('/private.txt', user='joe'),
        'bad login': 'ftp://joe:wrong@127.0.0.1:%d/' % ftp.port,
    }
    results = testservers.run_checks(checker, list(urls.values()))
    got = {name: results[url] for name, url in urls.items()}
    assert got['dir/'] == (OK, 'FTP directory listed')
    assert got['dir'] == (OK, 'FTP directory listed')
    assert got['file'] == (OK, 'FTP file transfer started')
    assert got['empty'] == (OK, 'FTP file retrieved')
    assert got['missing'][0] == GONE and '550' in got['missing'][1]
    assert got['user'] == (OK, 'FTP file transfer started')
    assert got['bad login'][0] == GONE
    assert got['bad login'][1].startswith('FTP login refused: 530')


def test_ftp_refused_and_blocked(clock, ftp):
    url = ftp.url('/pub/')
    checker = make_checker(clock, allow_network=[])
    assert testservers.run_checks(checker, [url])[url][0] == UNSUP
    port = testing.free_port()
    url = 'ftp://127.0.0.1:%d/' % port
    checker = make_checker(clock)
    assert testservers.run_checks(checker, [url])[url] == (
        TEMP, 'connection refused')


# -- mailto ------------------------------------------------------------------------------

def test_mailto_checks_syntax_and_mail_records(clock):
    dns = testservers.DNSTestServer({
        'mail.test': [('MX', (10, 'mx1.mail.test')),
                      ('MX', (5, 'mx0.mail.test'))],
        'plain.test': [('A', '192.0.2.1')],
        'nomail.test': [('MX', (0, ''))],
        'empty.test': [],
    }, failing=['flaky.test']).start()
    checker = make_checker(clock, dns_server=[dns.address])
    urls = {
        'mx': 'mailto:joe@mail.test', 'a': 'mailto:ann@plain.test',
        'two': 'mailto:joe@mail.test,ann@plain.test?subject=hello',
        'nx': 'mailto:joe@nowhere.test', 'null': 'mailto:joe@nomail.test',
        'none': 'mailto:joe@empty.test', 'bad': 'mailto:joe@@mail.test',
        'no address': 'mailto:', 'flaky': 'mailto:joe@flaky.test',
    }
    results = testservers.run_checks(checker, list(urls.values()))
    got = {name: results[url] for name, url in urls.items()}
    assert got['mx'] == (OK, 'mail.test: mail exchanger mx0.mail.test')
    assert got['a'] == (OK, 'plain.test: no MX, has an address')
    assert got['two'][0] == OK
    assert got['nx'] == (GONE, 'DNS: mail domain nowhere.test does not exist')
    assert got['null'] == (GONE, 'nomail.test accepts no mail (null MX)')
    assert got['none'] == (GONE, 'DNS: empty.test has no MX or address record')
    assert got['bad'][0] == GONE and 'invalid' in got['bad'][1]
    assert got['no address'] == (GONE, 'no e-mail address in the URL')
    assert got['flaky'][0] == TEMP


def test_mailto_look_ups_end_at_the_checker_timeouts(clock):
    # A mail domain whose name server never answers: the verdict comes at
    # the connect timeout on the checker's clock, not after twisted.names
    # gives up by itself (a minute of real time).
    checker = make_checker(clock, connect_timeout=3.0, timeout=5.0,
                           dns_server=[silent_dns()])
    url = 'mailto:joe@silent.test'
    assert verdict_comes_at(clock, checker, url, 3.0) == (
        TEMP, 'DNS: no answer from the name server within 3 s')
    # The total timeout bounds the whole check (all its domains).
    checker = make_checker(clock, connect_timeout=10.0, timeout=5.0,
                           dns_server=[silent_dns()])
    assert verdict_comes_at(clock, checker, url, 5.0) == (
        TEMP, 'DNS: no answer from the name server within 5 s')


def test_a_ca_file_without_certificates_is_a_clear_error(clock, tmp_path):
    path = tmp_path / 'empty.pem'
    path.write_text('nothing here')
    with pytest.raises(ValueError, match='no certificate in'):
        make_checker(clock, ca_file=str(path))
    assert os.path.exists(path)


def test_a_connection_that_is_never_accepted_times_out(clock):
    # A listening socket whose backlog is full: the handshake never ends.
    import socket
    server = socket.socket()
    server.bind(('127.0.0.9', 0))
    server.listen(0)
    testing.on_cleanup(server.close)
    port = server.getsockname()[1]
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(('127.0.0.9', port))
        testing.on_cleanup(filler.close)
    checker = make_checker(clock, connect_timeout=3.0)
    url = 'http://127.0.0.9:%d/' % port
    assert testservers.run_checks(checker, [url], settle=False)[url] == (
        TEMP, 'connect timed out after 3 s')
