"""The trends the pages draw, per-client uptime, and the daily digest
e-mail with its signed unsubscribe link, on a real server and SMTP server.
"""

import re
import urllib.parse

import pytest
import zope.component

from linksync import testing
from linksync.server import options as config
from linksync.server.interfaces import IDigests, ITrends
from linksync.server.model import trends as trends_module
from linksync.server.options import ConfigError
from linksync.server.service import check_roles

from test_pages import SECRET, START, get, manager, set_states

#: START is 2025-10-09 08:53:20 UTC.
HOUR = 3600


@pytest.fixture
def server(tmp_path):
    server = testing.ServerFixture(data=str(tmp_path / 'var'),
                                   secret=SECRET, roles=('api',))
    server.clock.advance(START)
    return server.start()


URLS = ['http://a.test/%d' % i for i in range(4)]


def test_overview_draws_urls_per_state_and_checks_per_minute(server):
    server.register_client('fred', 'fred-pw')
    server.proxy().registerURLs('fred', 'fred-pw', URLS)
    set_states(server, {URLS[0]: ('ok', '200 OK'),
                        URLS[1]: ('unavailable', '404 Not Found')})
    # Checks counted as the checker counts them (in its transaction).
    server.run(lambda app: zope.component.getUtility(ITrends).count_checks(
        30))
    server.advance(60)
    server.run(lambda app: zope.component.getUtility(ITrends).count_checks(
        90))
    server.advance(60)
    now = server.clock.seconds()
    assert [v for t, v in server.read(
        lambda app: app.trends.checks_per_minute(now - 86400, now))] == [
            30.0, 90.0]
    answer = manager(server, '/')
    assert answer.status == 200
    text = testing.page_text(answer.text)
    pictures = re.findall(r'\[picture: (.*)\]', text)
    assert len(pictures) == 3, text
    day, week, checks = pictures
    assert day.startswith('URLs per state over the last 24 hours from ')
    assert 'Latest: 1 unavailable, 0 temporary unavailable, 0 unsupported ' \
        'protocol, 2 not checked yet, 1 ok.' in day
    assert 'Most unavailable: 1 at ' in week
    # Drawn as 10-minute means.
    assert 'latest 60.0, highest 60.0' in checks
    # Every chart has its figures as a table; the states have patterns
    # as well as colours.
    assert text.count('The figures') == 3
    assert '2025-10-09 08:55 UTC | 1 | 0 | 0 | 2 | 1' in text
    assert 'unavailable (diagonal stripes)' in text
    svg = answer.text[answer.text.index('<svg class="chart"'):]
    assert 'url(#d-unavailable)' in svg and '<pattern id="d-unavailable"' \
        in svg


def test_trends_are_bounded():
    series = trends_module.Series(step=60, keep=3600)
    for minute in range(10_000):
        series.put(minute * 60, (minute,))
    assert len(series) <= 61 + trends_module.PRUNE_BATCH
    assert series.items(0, 10_000 * 60)[0][0] >= (10_000 - 62) * 60
    t = trends_module.Trends()
    assert t.states.keep == trends_module.STATE_KEEP


def test_a_clients_uptime_on_the_clients_list_and_its_alerts_page(server):
    fred = server.register_client('fred', 'fred-pw')
    server.register_client('ann', 'ann-pw')
    server.proxy().registerURLs(*fred, URLS)
    server.advance(60)                  # fred sampled: nothing wrong yet
    set_states(server, {URLS[0]: ('unavailable', '404 Not Found'),
                        URLS[1]: ('temporary unavailable', 'timeout')})
    server.advance(HOUR)                # an hour with 2 of 4 in trouble
    answer = manager(server, '/clients')
    rows = [line for line in testing.page_text(answer.text).splitlines()
            if line.startswith(('fred |', 'ann |'))]
    assert rows[0].startswith('ann | 0 | none | no data · no data · no '
                              'data |')
    assert rows[1].startswith(
        'fred | 4 | 1 unavailable, 1 temporary unavailable | 50.00 % · '
        '50.00 % · 50.00 % |'), rows
    answer = get(server, '/alerts/fred', user='fred', password='fred-pw')
    text = testing.page_text(answer.text)
    assert 'Links fine (time-weighted share of the links not in trouble): ' \
        '24 h 50.00 %, 7 d 50.00 %, 30 d 50.00 %.' in text
    assert '[picture: Links in trouble per day over the last 30 days (the ' \
        'most at any hour): 2 links on the last day, most 2 on 2025-10-09.]' \
        in text
    assert '2025-10-09 | 2' in text
    # Fixed: from now on the share rises.
    set_states(server, {URLS[0]: ('ok', '200 OK'),
                        URLS[1]: ('ok', '200 OK')})
    server.advance(HOUR)
    text = testing.page_text(get(server, '/alerts/fred', user='fred',
                                 password='fred-pw').text)
    assert '24 h 75.00 %' in text, text
    # ann sees her own page only.
    assert get(server, '/alerts/fred', user='ann',
               password='ann-pw').status == 401


def test_client_series_are_forgotten_with_the_client(server):
    server.register_client('fred', 'fred-pw')
    server.advance(60)
    assert server.read(lambda app: app.trends.client_series('fred')) \
        is not None
    server.run(lambda app: app.clients.remove('fred'))
    assert server.read(lambda app: app.trends.client_series('fred')) is None


# -- the daily digest ----------------------------------------------------------

@pytest.fixture
def digest_server(tmp_path, smtp_server):
    port = testing.free_port()
    server = testing.ServerFixture(
        data=str(tmp_path / 'var'), secret=SECRET, roles=('api',),
        listen='tcp:%d:interface=127.0.0.1' % port,
        public_url='http://127.0.0.1:%d/' % port, smtp=smtp_server.address,
        digest_hour=9)
    server.clock.advance(START)             # 08:53 UTC
    server.start()
    server.smtp = smtp_server
    return server


def digests_of(server, client_id):
    def read(app):
        found = zope.component.getUtility(IDigests).pending(client_id)
        return None if found is None else list(found.changes)
    return server.read(read)


def test_the_digest_tells_what_broke_and_recovered(digest_server):
    server = digest_server
    fred = server.register_client('fred', 'fred-pw',
                                  contact_email='fred@example.com')
    server.proxy().registerURLs(*fred, URLS)
    set_states(server, {URLS[0]: ('ok', '200 OK'),
                        URLS[1]: ('ok', '200 OK'),
                        URLS[2]: ('unavailable', '404 Not Found')})
    server.advance(60)
    set_states(server, {URLS[0]: ('unavailable', '410 Gone'),
                        URLS[2]: ('ok', '200 OK')})
    server.advance(60)
    set_states(server, {URLS[1]: ('unavailable', 'timeout')})
    server.advance(60)
    set_states(server, {URLS[1]: ('ok', '200 OK')})
    # A first check that finds a link fine is no news: not noted.
    assert len(digests_of(server, 'fred')) == 5
    assert server.smtp.messages == []
    server.advance(HOUR)                    # 09:56: the digest hour
    testing.wait_for_digests(server)
    [mail] = digest_mails(server)
    assert mail['To'] == 'fred@example.com'
    assert mail['Subject'] == 'linksync digest for fred: 1 broken, 2 broke ' \
        'and recovered'
    body = mail.get_payload(decode=True).decode('utf-8')
    assert 'Broken (1):\n  http://a.test/0\n    unavailable (410 Gone), ' \
        '2025-10-09 08:54 UTC' in body
    assert 'Broke and recovered (2):\n  http://a.test/2\n    2 changes, ' \
        '2025-10-09 08:54 UTC\n  http://a.test/1\n    2 changes' in body
    assert digests_of(server, 'fred') is None   # sent: forgotten
    link = re.search(r'^(http://\S+/digest/unsubscribe\?\S+)$', body,
                     re.M).group(1)
    assert mail['List-Unsubscribe'] == '<%s>' % link
    assert mail['List-Unsubscribe-Post'] == 'List-Unsubscribe=One-Click'
    alerts = re.search(r'^All current problems: (\S+)$', body, re.M).group(1)
    assert testing.fetch(alerts).status == 200
    # Once a day: another hour brings no second digest.
    set_states(server, {URLS[2]: ('unavailable', '404 Not Found'),
                        URLS[0]: ('ok', '200 OK')})
    server.advance(HOUR)
    testing.wait_for_digests(server)
    assert len(digest_mails(server)) == 1
    server.advance(23 * HOUR)
    testing.wait_for_digests(server)
    second = digest_mails(server)[1]
    assert second['Subject'] == 'linksync digest for fred: 1 broken, 1 ' \
        'fine again'
    body = second.get_payload(decode=True).decode('utf-8')
    assert 'Fine again (1):\n  http://a.test/0\n    was unavailable' in body


def digest_mails(server):
    return [m for m in server.smtp.messages
            if m['Subject'].startswith('linksync digest')]


def test_unsubscribing_by_the_signed_link(digest_server):
    server = digest_server
    fred = server.register_client('fred', 'fred-pw')
    server.register_client('ann', 'ann-pw')
    server.proxy().registerURLs(*fred, URLS[:1])
    set_states(server, {URLS[0]: ('unavailable', '404')})
    server.advance(HOUR)
    testing.wait_for_digests(server)
    [mail] = digest_mails(server)
    link = mail['List-Unsubscribe'][1:-1]
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query))
    # Opening the link (a mail scanner, a preview) changes nothing.
    answer = testing.fetch(link)
    assert answer.status == 200
    assert 'Stop the daily e-mail' in answer.text
    assert server.read(lambda app: app.digests.subscribed('fred'))
    # The button does it; the page offers the way back.
    answer = testing.fetch(link.split('?')[0], form=dict(query,
                                                         action='unsubscribe'))
    assert answer.status == 200
    assert 'Unsubscribed: no more digest e-mail for fred.' in \
        testing.page_text(answer.text)
    assert 'Subscribe again' in answer.text
    assert not server.read(lambda app: app.digests.subscribed('fred'))
    # Nothing is noted for an unsubscribed client, nothing mailed.
    set_states(server, {URLS[0]: ('ok', '200 OK')})
    assert digests_of(server, 'fred') is None
    server.advance(24 * HOUR)
    testing.wait_for_digests(server)
    assert len(digest_mails(server)) == 1
    # A mail program's one-click POST (RFC 8058) works on the link itself.
    answer = testing.fetch(link, form={'action': 'subscribe'})
    assert server.read(lambda app: app.digests.subscribed('fred'))
    answer = testing.fetch(link, form={'List-Unsubscribe': 'One-Click'})
    assert answer.status == 200
    assert not server.read(lambda app: app.digests.subscribed('fred'))
    # The signature is fred's: it opens nothing else.
    base = link.split('?')[0]
    forged = base + '?' + urllib.parse.urlencode(
        {'client': 'ann', 'token': query['token']})
    assert testing.fetch(forged).status == 403
    assert testing.fetch(forged, form={'action': 'unsubscribe'}).status == 403
    assert server.read(lambda app: app.digests.subscribed('ann'))
    assert testing.fetch(base).status == 400
    assert testing.fetch(base + '?client=fred&token=1.x').status == 403
    answer = testing.fetch(link, form=dict(query, action='delete'))
    assert answer.status == 400
    # Escaped wherever it shows.
    assert '<script>' not in testing.fetch(
        base + '?client=%3Cscript%3E&token=' + query['token']).text


def test_unsubscribe_link_of_a_removed_client_is_404(digest_server):
    from linksync.server.web.digest import unsubscribe_signer, unsubscribe_url
    link = unsubscribe_url(digest_server.base_url, unsubscribe_signer(
        SECRET), 'gone', START)
    assert testing.fetch(link).status == 404
    assert testing.fetch(link, form={'action': 'unsubscribe'}).status == 404


def test_a_digest_that_cannot_be_mailed_waits_for_the_next_day(tmp_path):
    port = testing.free_port()
    server = testing.ServerFixture(
        data=str(tmp_path / 'var'), secret=SECRET, roles=('api',),
        listen='tcp:%d:interface=127.0.0.1' % port,
        public_url='http://127.0.0.1:%d/' % port,
        smtp=('127.0.0.1', testing.free_port()),      # nobody listens
        digest_hour=9)
    server.clock.advance(START)
    server.start()
    fred = server.register_client('fred', 'fred-pw')
    server.proxy().registerURLs(*fred, URLS[:1])
    set_states(server, {URLS[0]: ('unavailable', '404')})
    server.advance(HOUR)
    testing.wait_for_digests(server)
    assert len(digests_of(server, 'fred')) == 1      # kept


def test_digests_are_bounded_per_client(digest_server):
    from linksync.server.model.digests import DIGEST_LIMIT
    server = digest_server
    fred = server.register_client('fred', 'fred-pw')
    server.proxy().registerURLs(*fred, URLS[:1])
    for i in range(DIGEST_LIMIT + 21):      # the first (fine) is no news
        set_states(server, {URLS[0]: ('unavailable' if i % 2 else 'ok',
                                      'r%d' % i)})
    assert len(digests_of(server, 'fred')) == DIGEST_LIMIT
    assert server.read(lambda app: app.digests.pending('fred').dropped) == 20


def test_no_digest_is_noted_when_digests_are_off(server):
    fred = server.register_client('fred', 'fred-pw')
    server.proxy().registerURLs(*fred, URLS[:1])
    set_states(server, {URLS[0]: ('unavailable', '404')})
    assert digests_of(server, 'fred') is None


@pytest.mark.parametrize('settings, message', [
    (dict(digest_hour=9), 'it needs --smtp and --public-url'),
    (dict(digest_hour=9, smtp=('127.0.0.1', 25)), 'it needs --public-url'),
    (dict(digest_hour=9, smtp=('127.0.0.1', 25), public_url='http://x/',
          role=('checker',)), 'api role'),
])
def test_digest_settings_that_do_not_fit(tmp_path, settings, message):
    with pytest.raises(ConfigError, match=message):
        check_roles(config.defaults(data=str(tmp_path), **settings))


@pytest.mark.parametrize('text', ['24', '-1', 'nine', '9.5'])
def test_digest_hour_is_an_hour(text):
    with pytest.raises(ValueError, match='not an hour'):
        config.hour(text)
