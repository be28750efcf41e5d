"""End to end: the web status UI in headless Chromium (Debian's).

A server is populated the real way: clients registered over XML-RPC, their
URLs checked by the server's own checker against local HTTP servers, a
client synchronised and notified through its callback. Chromium, driven by
Playwright (the system browser: no browser download), logs in, reads the
overview, searches URLs, and opens a client's alerts page through the link
getInfoFrameURL hands out, on its own and inside an iframe, at a desktop
and a phone viewport. Screenshots are saved in the test's temporary
directory (the path is printed; ``pytest -s`` shows it), or in
``$LINKSYNC_SCREENSHOTS`` when set (for CI to keep as artifacts).
"""

import os
import pathlib
import shutil
import urllib.parse

import pytest

from linksync import testing
from linksync.server import options as config
from linksync.testing import servers as testservers

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update',
         '--disable-sync']
SECRET = 'management-secret'
START = 1_760_000_000.0   # October 2025
PHONE = {'width': 375, 'height': 812}
DESKTOP = {'width': 1280, 'height': 900}

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason='Chromium is not installed (Debian: apt-get '
    'install chromium); the browser test needs it')

#: A reason phrase no page may render as markup.
EVIL_REASON = '<img src=x onerror=alert(1)>'


@pytest.fixture
def browser():
    sync_api = pytest.importorskip(
        'playwright.sync_api', reason='the Python package playwright is not '
        "installed (pip install -e '.[test]'); the browser test needs it")
    sync_playwright = sync_api.sync_playwright
    with sync_playwright() as playwright:
        # Playwright starts it headless, with a new empty --user-data-dir.
        chromium = playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def populated(tmp_path):
    """A server holding two clients and URLs in every state, checked for
    real; returns (server, {name: url}, wiki credentials)."""
    web = testservers.HTTPTestServer('127.0.0.2')
    raw = testservers.RawHTTPServer({
        '/evil': (b'HTTP/1.1 404 ' + EVIL_REASON.encode() +
                  b'\r\nContent-Length: 0\r\n\r\n', False)},
        host='127.0.0.3').start()
    server = testing.ServerFixture(
        data=str(tmp_path / 'var'), secret=SECRET,
        allow_network=[config.network('127.0.0.0/8')], per_host_delay=0.0,
        timeout=10_000.0, connect_timeout=10_000.0, notify_attempts=1)
    server.clock.advance(START)
    server.start()
    web.clock = server.clock
    web.start()
    urls = {
        'ok': web.url('/status/200'),
        'redirected': web.url('/redirect/2'),
        'broken': web.url('/status/404'),
        'gone': web.url('/status/410'),
        'temporary': web.url('/status/503'),
        'script': web.url('/status/404?q=<script>alert(1)</script>'),
        'evil': raw.url('/evil'),
        'gopher': 'gopher://gopher.example/1/',
    }
    callback = testing.CallbackServer('wiki', 'wiki-password',
                                      links=list(urls.values())).start()
    wiki = server.register_client('wiki', 'wiki-password',
                                  callback_url=callback.url)
    blog = server.register_client('blog', 'blog-password')
    server.proxy().registerURLs(*wiki, list(urls.values()))
    server.proxy().registerURLs(*blog, [urls['ok'], urls['temporary']])
    testservers.check_registered(server, list(urls.values()), [web])
    # The wiki is synchronised; notifications go out (the blog's callback
    # is down: its notifications fail).
    [result] = testing.sync_now(server, 'wiki')
    assert result.status == 'ok', result.error
    server.advance(30)
    server.rt.call(server.service.getServiceNamed('agents').idle)
    assert callback.states[urls['broken']][0] == 'unavailable'
    return server, urls, wiki


def _a_week_of_trends(server):
    """Give the server's trends a week of past samples, stored as its
    sampler stores them: a broken link a day, each mended the next."""
    def fill(app):
        trends = app.trends
        now = server.clock.seconds()
        total = 0
        for i in range(7 * 288, 0, -1):            # every 5 minutes
            t = now - i * 300
            broken = 1 + (i // 288) % 4
            trends.states.put(t, (8 - broken - 2, broken, 1, 1, 0))
            total += 20 + i % 12 * 5
            trends.check_totals.put(t, (total,))
            if i % 12 == 0:                            # every hour
                trends.client_series('wiki', create=True).put(
                    t, (int(t), broken, 1, 1, 8))
    server.run(fill)


def _no_horizontal_scroll(page):
    return page.evaluate(
        'document.documentElement.scrollWidth <= window.innerWidth')


def test_the_pages_in_a_browser(browser, populated, tmp_path):
    server, urls, wiki = populated
    _a_week_of_trends(server)
    server.advance(60)
    shots = tmp_path / 'screenshots'
    if os.environ.get('LINKSYNC_SCREENSHOTS'):
        shots = pathlib.Path(os.environ['LINKSYNC_SCREENSHOTS'])
        for old in shots.glob('*.png'):
            old.unlink()
    shots.mkdir(parents=True, exist_ok=True)
    dialogs = []
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.on('dialog', lambda dialog: (dialogs.append(dialog.message),
                                      dialog.dismiss()))

    # Not logged in: the login form; a wrong secret is refused.
    page.goto(server.base_url + '/')
    assert page.url.startswith(server.base_url + '/login')
    page.fill('input[name=secret]', 'wrong')
    with page.expect_response(lambda r: r.url.endswith('/login')) as answer:
        page.click('button[type=submit]')
    assert answer.value.status == 401
    assert page.inner_text('.error') == 'Wrong secret.'
    page.screenshot(path=str(shots / 'login.png'))
    page.fill('input[name=secret]', SECRET)
    page.click('main button[type=submit]')
    assert page.url == server.base_url + '/'

    # The overview: counts per state, checks, clients, agents.
    cards = {page.inner_text(f'.card:nth-child({i}) .label'):
             page.inner_text(f'.card:nth-child({i}) .value')
             for i in range(1, page.locator('.card').count() + 1)}
    assert cards['URLs monitored'] == '8'
    assert cards['ok'] == '2'
    assert cards['unavailable'] == '4'
    assert cards['temporary unavailable'] == '1'
    assert cards['unsupported protocol'] == '1'
    assert cards['clients'] == '2'
    assert float(cards['checks per minute (last 5 min)']) > 0
    clients = page.locator('section:has(h2:text("Clients")) tbody tr')
    assert clients.count() == 2
    blog_row, wiki_row = clients.nth(0).inner_text(), \
        clients.nth(1).inner_text()
    assert '1 temporary unavailable' in blog_row
    assert 'never' in blog_row
    assert '4 unavailable, 1 temporary unavailable, 1 unsupported ' \
        'protocol' in wiki_row
    assert 'last sent' in wiki_row
    agents = page.locator('section:has(h2:text("Agents")) tbody tr')
    assert agents.count() == 2
    assert 'failing' in agents.nth(0).inner_text()     # client:blog
    assert 'running' in agents.nth(1).inner_text()     # client:wiki
    # The trends: three pictures, each with its text alternative, drawn
    # across the page, states by pattern and colour; the figures open.
    charts = page.locator('svg.chart')
    assert charts.count() == 3
    for i in range(3):
        chart = charts.nth(i)
        assert chart.get_attribute('role') == 'img'
        assert chart.get_attribute('aria-label').startswith(
            ('URLs per state over the last', 'Checks per minute'))
        assert chart.bounding_box()['width'] > 600
        assert chart.bounding_box()['height'] > 50
    assert 'Most unavailable: 4 at' in charts.nth(1).get_attribute(
        'aria-label')
    assert page.locator('ul.legend li').all_inner_texts()[-1].strip() == \
        'unavailable (diagonal stripes)'
    figures = page.locator('details').first
    assert not figures.locator('table').is_visible()
    figures.locator('summary').click()
    assert figures.locator('tbody tr').count() >= 24
    uptime = wiki_row.split('\t')
    assert any(cell.count('%') == 3 for cell in uptime), wiki_row
    page.screenshot(path=str(shots / 'overview.png'), full_page=True)
    page.locator('section:has(h2:text("Trends"))').screenshot(
        path=str(shots / 'overview-charts.png'))

    # Searching by prefix: the broken URL (and the one it starts), its
    # state and reason.
    page.fill('input[name=q]', urls['broken'])
    page.click('form.search button')
    rows = page.locator('tbody tr')
    assert rows.locator('td[data-label=URL]').all_inner_texts() == [
        urls['broken'], urls['script']]
    row = rows.nth(0)
    assert row.locator('td[data-label=URL]').inner_text() == urls['broken']
    assert row.locator('td[data-label=State] .badge').inner_text() == \
        'unavailable'
    assert row.locator('td[data-label=Reason]').inner_text() == \
        '404 Not Found'
    assert 'wiki' in row.locator('td[data-label=Clients]').inner_text()
    page.screenshot(path=str(shots / 'search.png'), full_page=True)

    # The URL's page, from its search result: state, uptime, the timeline
    # picture with its text, the last checks, the clients.
    row.locator('a.history').click()
    assert page.url.startswith(server.base_url + '/url?u=')
    assert page.inner_text('h1') == urls['broken']
    timeline = page.locator('svg.timeline')
    assert timeline.get_attribute('role') == 'img'
    assert 'unavailable from' in timeline.get_attribute('aria-label')
    assert timeline.bounding_box()['width'] > 300
    assert page.locator('td[data-label="Uptime (time ok)"]') \
        .all_inner_texts() == ['0.00 %'] * 3
    assert page.locator('td[data-label=Reason]').all_inner_texts() == [
        '404 Not Found'] * 2      # its state change and its check
    assert sorted(page.locator('main ul a').all_inner_texts()) == ['wiki']
    page.screenshot(path=str(shots / 'url.png'), full_page=True)
    # "Check now": a real form post (the browser's Origin and the page's
    # token), back on the page, the URL due now.
    here = page.url
    with page.expect_response(lambda r: r.request.method == 'POST') as sent:
        page.click('form.check button')
    assert sent.value.status == 303
    assert page.url == here
    assert 'next check now' in page.inner_text('main')

    # Searching by substring and state; attacker-controlled text shows as
    # text, never as markup.
    page.goto(server.base_url + '/search')
    page.fill('input[name=q]', 'script')
    page.select_option('select[name=match]', 'contains')
    page.select_option('select[name=state]', 'unavailable')
    page.click('form.search button')
    assert page.locator('tbody tr').count() == 1
    assert page.inner_text('td[data-label=URL]') == urls['script']
    page.goto(server.base_url + '/search?state=unavailable')
    assert page.locator('tbody tr').count() == 4
    reasons = page.locator('td[data-label=Reason]').all_inner_texts()
    assert '404 ' + EVIL_REASON in reasons
    assert page.locator('main script, main img').count() == 0
    page.screenshot(path=str(shots / 'search-state.png'), full_page=True)
    assert dialogs == []

    # The alerts page through the link of getInfoFrameURL, in a browser
    # that has no session: no password asked.
    link = server.proxy().getInfoFrameURL(*wiki)
    stranger = browser.new_context(viewport=DESKTOP)
    alerts = stranger.new_page()
    alerts.on('dialog', lambda dialog: (dialogs.append(dialog.message),
                                        dialog.dismiss()))
    answer = alerts.goto(link)
    assert answer.status == 200
    assert alerts.inner_text('h1') == 'Link problems of wiki'
    assert alerts.inner_text('main > p').startswith(
        '4 broken, 1 temporarily unavailable, 1 not checkable')
    listed = alerts.locator('td[data-label=Link]').all_inner_texts()
    assert listed[:4] == sorted([urls['broken'], urls['gone'],
                                 urls['script'], urls['evil']])
    assert listed[4:] == [urls['temporary'], urls['gopher']]
    # Its past: uptime and the problems per day, as bars with their text.
    assert 'Links fine (time-weighted share of the links not in trouble)' \
        in alerts.inner_text('main')
    bars = alerts.locator('svg.chart.bars')
    assert bars.get_attribute('aria-label').startswith(
        'Links in trouble per day over the last 30 days')
    assert bars.locator('rect').count() == 8       # 7 past days and today
    assert bars.bounding_box()['width'] > 600
    alerts.screenshot(path=str(shots / 'alerts.png'), full_page=True)
    # As the client application shows it: in an iframe of its own page.
    embedding = stranger.new_page()
    embedding.set_content('<h1>Wiki control panel</h1><iframe src="%s" '
                          'style="width:100%%;height:600px;border:0">'
                          '</iframe>' % link)
    frame = embedding.frame_locator('iframe')
    assert frame.locator('h1').inner_text() == 'Link problems of wiki'
    embedding.screenshot(path=str(shots / 'alerts-iframe.png'))
    # Another client's page, or a forged link: refused.
    answer = alerts.goto(link.replace('/alerts/wiki', '/alerts/blog'))
    assert answer.status == 403
    assert 'expired or is not valid' in alerts.inner_text('main')
    answer = alerts.goto(server.base_url + '/')
    assert alerts.url.startswith(server.base_url + '/login')
    assert dialogs == []

    # A phone: every page readable without scrolling sideways.
    phone = browser.new_context(viewport=PHONE, is_mobile=True,
                                device_scale_factor=2)
    mobile = phone.new_page()
    mobile.goto(server.base_url + '/login')
    mobile.fill('input[name=secret]', SECRET)
    mobile.click('main button[type=submit]')
    for name, path in [('overview', '/'),
                       ('search', '/search?state=unavailable'),
                       ('clients', '/clients'), ('agents', '/agents'),
                       ('alerts', link[len(server.base_url):]),
                       ('url', '/url?u=' + urllib.parse.quote(
                           urls['broken'], safe=''))]:
        answer = mobile.goto(server.base_url + path)
        assert answer.status == 200, name
        assert _no_horizontal_scroll(mobile), name
        mobile.screenshot(path=str(shots / ('phone-%s.png' % name)),
                          full_page=True)
    assert sorted(os.listdir(shots)) == [
        'alerts-iframe.png', 'alerts.png', 'login.png',
        'overview-charts.png', 'overview.png', 'phone-agents.png',
        'phone-alerts.png', 'phone-clients.png', 'phone-overview.png',
        'phone-search.png', 'phone-url.png', 'search-state.png',
        'search.png', 'url.png']
    print('\nscreenshots: %s' % shots)
