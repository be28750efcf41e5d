"""The web status UI over a real socket: access, pages, bad input."""

import re
import urllib.parse

import pytest
import zope.component

from linksync import states, testing
from linksync.server.model import partition
from linksync.server.interfaces import IProblemIndex, IURLProvider
from linksync.server.web import search as search_module
from linksync.server.web.access import Access

SECRET = 'management-secret'
START = 1_760_000_000.0


@pytest.fixture
def server(tmp_path):
    """A server running its API only (no checker: states are stored
    through the model), with clients fred and ann."""
    server = testing.ServerFixture(data=str(tmp_path / 'var'),
                                   secret=SECRET, roles=('api',))
    server.clock.advance(START)
    server.start()
    server.register_client('fred', 'fred-pw')
    server.register_client('ann', 'ann-pw')
    return server


def set_states(server, results):
    """Store check results {url: (state, reason)} as the checker would."""
    def store(app):
        provider = zope.component.getUtility(IURLProvider)
        for url, (state, reason) in results.items():
            provider.get(url).set_result(state, reason,
                                         server.clock.seconds())
    server.run(store)


def get(server, path, **kw):
    return testing.fetch(server.base_url + path, **kw)


def manager(server, path):
    return get(server, path, password=SECRET)


def rows(answer):
    """The body rows of the page's first table, as lists of cell texts."""
    found = []
    for line in testing.page_text(answer.text).splitlines():
        if ' | ' in line:
            found.append(line.split(' | '))
        elif found:
            break
    return found[1:]


# -- access -------------------------------------------------------------------

GLOBAL_PAGES = ['/', '/search', '/search?q=http', '/clients', '/agents']


@pytest.mark.parametrize('path', GLOBAL_PAGES)
def test_global_pages_need_the_management_secret(server, path):
    answer = get(server, path)
    assert answer.status == 303
    assert answer.headers['Location'] == '/login?' + urllib.parse.urlencode(
        {'next': path})
    for wrong in [dict(password='wrong'), dict(user='fred',
                                                password='fred-pw'),
                  dict(accept=None), dict(accept='application/json')]:
        answer = get(server, path, **wrong)
        assert answer.status == 401
        assert answer.headers['WWW-Authenticate'].startswith('Basic ')
        assert 'Traceback' not in answer.text
    answer = get(server, path, password=SECRET, user='anyone')
    assert answer.status == 200
    assert answer.headers['X-Frame-Options'] == 'DENY'
    assert "frame-ancestors 'none'" in \
        answer.headers['Content-Security-Policy']
    assert answer.headers['Cache-Control'] == 'no-store'


@pytest.mark.parametrize('header', [
    'Bearer management-secret', 'Basic !!!', 'Basic ' + 'bm9jb2xvbg==',
    'Basic /w==', 'Basic'])
def test_unreadable_credentials_are_refused(server, header):
    import urllib.request
    request = urllib.request.Request(server.base_url + '/',
                                     headers={'Authorization': header})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    assert info.value.code == 401


def test_login_form_sets_a_signed_expiring_cookie(server):
    answer = get(server, '/login', form={'secret': 'wrong', 'next': '/'})
    assert answer.status == 401
    assert 'Wrong secret.' in answer.text
    answer = get(server, '/login', form={'secret': SECRET,
                                         'next': '/clients'})
    assert answer.status == 303
    assert answer.headers['Location'] == '/clients'
    cookie = answer.headers['Set-Cookie']
    assert 'HttpOnly' in cookie and 'SameSite=strict' in cookie
    session = cookie.split(';')[0]
    assert get(server, '/clients', cookie=session).status == 200
    # Logged in already: the login page sends on.
    answer = get(server, '/login?next=/agents', cookie=session)
    assert (answer.status, answer.headers['Location']) == (303, '/agents')
    # A changed cookie, another server's, or an old one: log in again.
    name, value = session.split('=', 1)
    forged = name + '=' + value[:-1] + ('A' if value[-1] != 'A' else 'B')
    assert get(server, '/', cookie=forged).status == 303
    # A session id the server never gave out.
    assert get(server, '/', cookie=name + '=' + 'A' * 43).status == 303
    assert get(server, '/', cookie=name + '=\xff').status == 303
    server.advance(12 * 3600)
    assert get(server, '/', cookie=session).status == 303


def test_logout_removes_the_cookie(server):
    answer = get(server, '/logout', form={})
    assert answer.status == 303
    assert answer.headers['Location'] == '/login'
    assert 'linksync_session=;' in answer.headers['Set-Cookie']
    assert 'Max-Age=0' in answer.headers['Set-Cookie']
    assert get(server, '/logout').status == 405


def login(server):
    answer = get(server, '/login', form={'secret': SECRET, 'next': '/'})
    return answer.headers['Set-Cookie'].split(';')[0]


def logout_token(server, session):
    import re
    page = get(server, '/', cookie=session).text
    return re.search(r'name="token" value="([^"]+)"', page).group(1)


def test_logout_ends_the_session_on_the_server(server):
    session = login(server)
    token = logout_token(server, session)
    answer = get(server, '/logout', form={'token': token}, cookie=session)
    assert (answer.status, answer.headers['Location']) == (303, '/login')
    # A copy of the cookie opens nothing any more.
    assert get(server, '/', cookie=session).status == 303
    access = server.service.getServiceNamed('api').api.web_access
    assert server.rt.call(access.sessions) == 0


def test_logout_from_another_site_is_refused(server):
    session = login(server)
    token = logout_token(server, session)
    # No token (a form on another site cannot know it): refused.
    assert get(server, '/logout', form={}, cookie=session).status == 403
    assert get(server, '/logout', form={'token': 'x' * 43},
               cookie=session).status == 403
    # The right token, but posted from another site's page.
    assert get(server, '/logout', form={'token': token}, cookie=session,
               headers={'Origin': 'https://evil.example'}).status == 403
    assert get(server, '/', cookie=session).status == 200   # still logged in


def test_login_from_another_site_is_refused(server):
    answer = get(server, '/login', form={'secret': SECRET, 'next': '/'},
                 headers={'Origin': 'https://evil.example'})
    assert answer.status == 403 and 'Set-Cookie' not in answer.headers
    answer = get(server, '/login', form={'secret': SECRET, 'next': '/'},
                 headers={'Origin': server.base_url})
    assert answer.status == 303


def test_the_cookie_is_secure_behind_an_https_public_url(tmp_path):
    server = testing.ServerFixture(
        data=str(tmp_path / 'var'), secret=SECRET,
        public_url='https://links.example.org/').start()
    answer = get(server, '/login', form={'secret': SECRET, 'next': '/'},
                 headers={'Origin': 'https://links.example.org'})
    assert answer.status == 303 and 'Secure' in answer.headers['Set-Cookie']


@pytest.mark.parametrize('target', [
    '//evil.example/', 'http://evil.example/', '/\\evil.example',
    'javascript:alert(1)', '/caf\xe9', '/a\r\nSet-Cookie: x=1', ''])
def test_login_goes_back_to_local_pages_only(server, target):
    answer = get(server, '/login', form={'secret': SECRET, 'next': target})
    assert (answer.status, answer.headers['Location']) == (303, '/')


def test_bad_login_forms(server):
    import urllib.request
    for body, status in [(b'secret=' + b'x' * 5000, 413),
                         (b'secret=\xff', 400)]:
        request = urllib.request.Request(server.base_url + '/login',
                                         data=body)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=30)
        assert info.value.code == status
        assert b'Traceback' not in info.value.read()


def test_alerts_page_access(server):
    alerts = '/alerts/fred'
    link = server.proxy().getInfoFrameURL('fred', 'fred-pw')
    path, token = link[len(server.base_url):].split('?token=')
    assert path == alerts
    answer = testing.fetch(link)
    assert answer.status == 200
    # Made to be framed: no frame restriction.
    assert 'X-Frame-Options' not in answer.headers
    assert 'frame-ancestors' not in answer.headers['Content-Security-Policy']
    assert 'Log out' not in answer.text             # no navigation in it
    # Forged, another client's, garbled: 403.
    for bad in [token[:-1] + ('A' if token[-1] != 'A' else 'B'),
                token.split('.')[0] + '9.' + token.split('.')[1], 'x', '',
                '1.' + 'A' * 43]:
        assert get(server, alerts + '?token=' + bad).status == 403
    assert get(server, '/alerts/ann?token=' + token).status == 403
    # The client's own credentials, or the management secret.
    assert get(server, alerts, user='fred', password='fred-pw').status == 200
    for user, password in [('fred', 'wrong'), ('ann', 'ann-pw'),
                           ('', 'fred-pw')]:
        answer = get(server, alerts, user=user, password=password)
        assert answer.status == 401
        assert answer.headers['WWW-Authenticate'].startswith('Basic ')
    assert get(server, alerts).status == 401
    assert manager(server, alerts).status == 200
    assert 'Log out' in manager(server, alerts).text
    # Expired.
    server.advance(86_400)
    assert testing.fetch(link).status == 403


def test_alerts_link_lifetime_is_an_option(tmp_path):
    server = testing.ServerFixture(data=str(tmp_path / 'var'),
                                   roles=('api',), alerts_link_lifetime=60.0)
    server.start()
    fred = server.register_client('fred', 'fred-pw')
    link = server.proxy().getInfoFrameURL(*fred)
    server.advance(59)
    assert testing.fetch(link).status == 200
    server.advance(1)
    assert testing.fetch(link).status == 403


@pytest.mark.parametrize('path, status', [
    ('/alerts', 404), ('/alerts/', 404), ('/alerts/ghost', 404),
    ('/alerts/fred/more', 404), ('/alerts/%FF', 404), ('/nowhere', 404),
    ('/search/more', 404), ('/alerts/fred?after=nonsense', 400),
    ('/alerts/fred?after=ok|http://x.test/', 400),
    ('/search?q=%FF', 400), ('/search?state=broken', 400),
    ('/search?match=regex', 400), ('/search?q=' + 'x' * 3000, 400),
    ('/clients?after=' + 'x' * 12000, 400)])
def test_bad_requests_get_a_clear_status(server, path, status):
    answer = manager(server, path)
    assert answer.status == status
    assert 'Traceback' not in answer.text
    if path.startswith(('/alerts', '/search')):
        assert '<h1>' in answer.text                     # one of our pages


def test_other_methods_and_head(server):
    import http.client
    conn = http.client.HTTPConnection('127.0.0.1', server.port, timeout=30)
    conn.request('PUT', '/search', body=b'x')
    response = conn.getresponse()
    assert response.status == 405
    assert response.getheader('Allow') == 'GET, HEAD'
    assert b'This page answers GET, HEAD only.' in response.read()
    conn.request('HEAD', '/login')
    response = conn.getresponse()
    assert response.status == 200
    assert response.read() == b''


def test_client_ids_of_any_text_have_their_pages(server):
    name = 'a/b ?é&<x>'
    server.register_client(name, 'pw', contact_email='ab@example.com')
    link = server.proxy().getInfoFrameURL(name, 'pw')
    answer = testing.fetch(link)
    assert answer.status == 200
    assert testing.page_text(answer.text).splitlines()[0] == \
        'Link problems of ' + name
    assert '<x>' not in answer.text
    # The clients list links to it.
    assert link.split('?')[0][len(server.base_url):] in \
        manager(server, '/clients').text


# -- what the pages show ------------------------------------------------------

def test_overview(server):
    urls = ['http://a.test/%d' % i for i in range(5)]
    server.proxy().registerURLs('fred', 'fred-pw', urls)
    server.proxy().registerURLs('ann', 'ann-pw', urls[:2])
    set_states(server, {urls[0]: ('ok', '200 OK'),
                        urls[1]: ('unavailable', '404 Not Found'),
                        urls[2]: ('temporary unavailable', 'timeout')})
    text = testing.page_text(manager(server, '/').text)
    assert text.splitlines()[:11] == [
        'Status', '5 URLs monitored', '1 ok', '1 unavailable',
        '1 temporary unavailable', '0 unsupported protocol',
        '2 not checked yet', '2 clients',
        '— checks per minute (no checker in this process)',
        '5 due now', 'Trends']
    assert 'ann | 2 | 1 unavailable | no data · no data · no data | never ' \
        '| on last sent never' in text
    assert 'fred | 5 | 1 unavailable, 1 temporary unavailable | no data · ' \
        'no data · no data | never | on last sent never' in text


def test_clients_and_agents_are_listed_a_page_at_a_time(server, monkeypatch):
    from linksync.server.web import overview
    monkeypatch.setattr(overview, 'PAGE_SIZE', 2)
    for name in ['carl', 'dora', 'emil']:
        server.register_client(name, 'pw')
    seen = []
    path = '/clients'
    while path:
        answer = manager(server, path)
        seen.append([row[0] for row in rows(answer)])
        found = re.search(r'href="(/clients\?after=[^"]+)"', answer.text)
        path = found.group(1).replace('&amp;', '&') if found else None
    assert seen == [['ann', 'carl'], ['dora', 'emil'], ['fred']]
    answer = manager(server, '/agents?after=client:dora')
    assert [row[0].split()[0] for row in rows(answer)] == [
        'client:emil', 'client:fred']


def test_agents_show_their_lag(server):
    answer = manager(server, '/agents')
    assert [(row[0].split()[0], row[2]) for row in rows(answer)] == [
        ('client:ann', 'caught up'), ('client:fred', 'caught up')]
    # No agent runs in this server: the pointers stay, the lag grows.
    server.advance(3600)
    assert {row[2] for row in rows(manager(server, '/agents'))} == {'1 h'}


def test_search(server, monkeypatch):
    urls = ['https://docs.example.com/%03d' % i for i in range(120)]
    others = ['http://other.example/x', 'ftp://Files.example/Docs/a']
    server.proxy().registerURLs('fred', 'fred-pw', urls + others)
    set_states(server, {urls[7]: ('unavailable', '404 Not Found'),
                        urls[8]: ('ok', '200 OK'),
                        others[1]: ('unavailable', '550 no such file')})

    def found(query):
        answer = manager(server, '/search?' + urllib.parse.urlencode(query))
        assert answer.status == 200, answer.text
        more = re.search(r'href="(/search\?[^"]*after=[^"]+)"', answer.text)
        return [row[0] for row in rows(answer)], \
            more.group(1).replace('&amp;', '&') if more else None

    # By prefix, scheme and host in any case, 50 to a page.
    first, more = found({'q': 'HTTPS://Docs.EXAMPLE.com/0'})
    assert first == urls[:50]
    second = testing.fetch(server.base_url + more, password=SECRET)
    assert [row[0] for row in rows(second)] == urls[50:100]
    ftp = 'ftp://files.example/Docs/a'            # as stored: host lowered
    assert found({'q': 'ftp://FILES.example/Docs'})[0] == [ftp]
    assert found({'q': 'ftp://files.example/docs'})[0] == []
    # By any part; without a scheme, "starts with" means "contains".
    assert found({'q': 'EXAMPLE/X', 'match': 'contains'})[0] == [others[0]]
    assert found({'q': 'other.example'})[0] == [others[0]]
    # By state: failures from their index, others by looking.
    assert found({'state': 'unavailable'})[0] == [ftp, urls[7]]
    assert found({'q': 'https://', 'state': 'unavailable'})[0] == [urls[7]]
    assert found({'state': 'ok'})[0] == [urls[8]]
    assert len(found({'state': 'unknown'})[0]) == 50
    assert found({'state': 'unsupported protocol'})[0] == []
    # A contains search looks at a bounded number of URLs per page, and
    # says where it stopped.
    monkeypatch.setattr(search_module, 'SCAN_LIMIT', 30)
    hits, more = found({'q': '/1', 'match': 'contains'})
    # 30 looked at: ftp://..., http://..., then https://.../000 to 027.
    assert hits == []
    assert more.endswith('after=' + urllib.parse.quote(urls[27], safe=''))
    pages = 1
    while more:
        query = dict(urllib.parse.parse_qsl(more.split('?', 1)[1]))
        more_hits, more = found(query)
        hits += more_hits
        pages += 1
    assert hits == urls[100:120]
    assert pages == 5


def test_alerts_page_lists_a_clients_problems_by_severity(server,
                                                          monkeypatch):
    from linksync.server.web import alerts
    monkeypatch.setattr(alerts, 'PAGE_SIZE', 3)
    urls = ['http://a.test/%d' % i for i in range(6)]
    # fred spells one of them its own way: the page uses that spelling.
    server.proxy().registerURLs('fred', 'fred-pw',
                                urls[:5] + ['HTTP://A.TEST/5'])
    server.proxy().registerURLs('ann', 'ann-pw', urls[:1])
    set_states(server, {urls[0]: ('temporary unavailable', 'timeout'),
                        urls[1]: ('unavailable', '404 Not Found'),
                        urls[2]: ('ok', '200 OK'),
                        urls[3]: ('unsupported protocol', 'blocked'),
                        urls[5]: ('unavailable', '410 Gone')})
    link = server.proxy().getInfoFrameURL('fred', 'fred-pw')
    answer = testing.fetch(link)
    text = testing.page_text(answer.text)
    assert '2 broken, 1 temporarily unavailable, 1 not checkable ' \
        '(unsupported protocol) of 6 links.' in text
    assert [row[:3] for row in rows(answer)] == [
        [urls[1], 'unavailable since now', '404 Not Found'],
        ['HTTP://A.TEST/5', 'unavailable since now', '410 Gone'],
        [urls[0], 'temporary unavailable since now', 'timeout']]
    more = re.search(r'href="(/alerts/fred\?[^"]+)"', answer.text).group(1)
    answer = testing.fetch(server.base_url + more.replace('&amp;', '&'))
    assert answer.status == 200            # the token goes along
    assert [row[:3] for row in rows(answer)] == [
        [urls[3], 'unsupported protocol since now', 'blocked']]
    # Fixed, or unregistered: gone from the page.
    set_states(server, {urls[1]: ('ok', '200 OK')})
    server.proxy().unregisterURLs('fred', 'fred-pw', ['http://a.test/5'])
    assert [row[0] for row in rows(testing.fetch(link))] == [
        urls[0], urls[3]]
    answer = get(server, '/alerts/ann', user='ann', password='ann-pw')
    assert [row[0] for row in rows(answer)] == [urls[0]]


def test_attacker_controlled_text_is_escaped_everywhere(server):
    evil_url = 'http://a.test/<script>alert(1)</script>"\'><b>'
    evil_reason = '<img src=x onerror=alert(1)>'
    server.register_client('<b>mallory</b>', 'pw',
                           contact_email='mallory@example.com')
    server.proxy().registerURLs('<b>mallory</b>', 'pw',
                                [evil_url, 'javascript:alert(1)'])
    set_states(server, {evil_url: ('unavailable', evil_reason),
                        'javascript:alert(1)': ('unsupported protocol',
                                                '<i>x</i>')})
    link = server.proxy().getInfoFrameURL('<b>mallory</b>', 'pw')
    pages = [manager(server, p).text for p in [
        '/', '/clients', '/agents', '/search?state=unavailable',
        '/search?q=%3Cscript', '/search?q=javascript:',
        '/search?q=' + urllib.parse.quote('<b>"x', safe='')]]
    pages.append(testing.fetch(link).text)
    for text in pages:
        for raw in ['<script', '<img', '<b>', '<i>', "'><",
                    'href="javascript']:
            assert raw not in text
    assert '&lt;img src=x onerror=alert(1)&gt;' in pages[3]
    assert '&lt;b&gt;mallory&lt;/b&gt;' in pages[1]


def test_pages_read_a_bounded_part_of_a_large_database(server):
    """A client with thousands of fine links: its alerts page and a prefix
    search load the objects they show, not the whole database."""
    many = ['http://big.test/%05d' % i for i in range(3000)]
    server.proxy().registerURLs('fred', 'fred-pw', many)
    set_states(server, {url: ('ok', '200 OK') for url in many[:-3]})
    set_states(server, {url: ('unavailable', '404') for url in many[-3:]})
    session = server.service.api.session
    link = server.proxy().getInfoFrameURL('fred', 'fred-pw')

    def loads(path):
        server.rt.call(session.connection.cacheMinimize)
        server.rt.call(session.connection.getTransferCounts, True)
        answer = testing.fetch(path, password=SECRET)
        assert answer.status == 200
        return server.rt.call(session.connection.getTransferCounts)[0]
    # The index of URLs in trouble is kept per shard of the hosts: the
    # alerts page reads each shard's client mapping, and a filtered search
    # the head of each shard's tree.
    assert loads(link) < 60 + partition.SHARDS
    assert loads(server.base_url + '/search?q=http://big.test/0299') < 60
    # The overview counts due URLs (up to a limit) across the shards of
    # the due index: the head of each shard, then the keys it counts; and
    # reads the counter of each state.
    assert loads(server.base_url + '/') < 120 + partition.SHARDS + \
        len(states.STATES) + 1
    assert loads(server.base_url + '/search?state=unavailable') < \
        60 + partition.SHARDS
    assert [row[0] for row in rows(testing.fetch(link))] == many[-3:]


def test_problem_index_of_an_older_database_is_built_when_opened(tmp_path):
    """A database made before the index existed gets it, filled, when a
    server opens it."""
    server = testing.ServerFixture(data=str(tmp_path / 'var'),
                                   secret=SECRET, roles=('api',)).start()
    server.register_client('fred', 'fred-pw')
    server.proxy().registerURLs('fred', 'fred-pw', ['http://a.test/'])
    set_states(server, {'http://a.test/': ('unavailable', '404')})

    def drop(app):
        sm = app.getSiteManager()
        sm.unregisterUtility(app.problems, IProblemIndex)
        del app.problems
    server.run(drop)
    server.restart()
    answer = get(server, '/alerts/fred', user='fred', password='fred-pw')
    assert [row[0] for row in rows(answer)] == ['http://a.test/']
