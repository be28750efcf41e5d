"""The history of URLs: recorded with check results, bounded, pruned, and
shown on the URL page (real server, real socket)."""

import shutil

import pytest
import zope.component
from ZODB.FileStorage import FileStorage

from linksync import states, testing
from linksync.server.database import Database
from linksync.server.interfaces import IHistory, IURLProvider
from linksync.server.model.history import RESULTS, History, URLHistory
from linksync.server.model.partition import Worker

from test_migration import FIXTURE
from test_pages import SECRET, START, get, manager, rows, server  # noqa

DAY = 86400


def test_results_are_a_bounded_ring_and_changes_only_changes():
    h = URLHistory()
    for i in range(RESULTS + 5):
        h.add(i, states.OK if i % 10 else states.UNAVAILABLE, 'r%d' % i, 0.1)
    assert len(h.results) == RESULTS
    assert h.results[-1][0] == RESULTS + 4
    assert [c[0] for c in h.changes] == [0, 1, 10, 11, 20, 21]


def test_changes_follow_the_published_state():
    h = URLHistory()
    h.add(0, states.OK, '200 OK')
    # A failure waiting for its confirmation: a result, not a change.
    h.add(10, states.UNAVAILABLE, '404', published=states.OK)
    h.add(20, states.UNAVAILABLE, '404')
    assert [r[1] for r in h.results] == [states.OK, states.UNAVAILABLE,
                                         states.UNAVAILABLE]
    assert [c[:2] for c in h.changes] == [(0, states.OK),
                                          (20, states.UNAVAILABLE)]


def test_uptime_is_the_share_of_known_time_ok():
    h = URLHistory()
    h.add(0, states.OK, '', None)
    h.add(3 * DAY, states.UNAVAILABLE, 'HTTP 404', None)
    h.add(4 * DAY, states.OK, '', None)
    now = 5 * DAY
    assert h.uptime(now, DAY) == 1.0
    assert h.uptime(now, 2 * DAY) == 0.5
    assert h.uptime(now, 30 * DAY) == 0.8  # known since day 0 only
    assert URLHistory().uptime(now, DAY) is None


def test_prune_keeps_the_state_at_the_cut_off():
    history = History()
    for day, state in enumerate([states.OK, states.UNAVAILABLE, states.OK,
                                 states.OK]):
        history.record('http://a/', state, '', day * DAY)
    history.record('http://old/', states.OK, '', 0)
    assert history.prune(2.5 * DAY) is None
    kept = history.get('http://a/')
    assert [c[:2] for c in kept.changes] == [(2 * DAY, states.OK)]
    assert [r[0] for r in kept.results] == [3 * DAY]
    assert kept.state_at(2.6 * DAY) == states.OK
    # Only its state at the cut-off is left of the old one: kept as such.
    assert history.get('http://old/').results == ()
    assert history.get('http://old/').state_at(DAY) == states.OK
    assert len(history) == 2


def test_a_first_result_is_stored_without_an_object_of_its_own():
    # A batch of first checks stores the shard's tree, not one URLHistory
    # per URL; the second result makes the URL's URLHistory.
    import collections
    import transaction
    from ZODB.DB import DB
    from ZODB.MappingStorage import MappingStorage
    from ZODB.utils import get_pickle_metadata
    db = DB(MappingStorage())
    conn = db.open()
    history = conn.root()['history'] = History()
    transaction.commit()

    def stored_by_last_commit():
        last = list(db.storage.iterator())[-1]
        return collections.Counter(get_pickle_metadata(record.data)[1]
                                   for record in last)
    urls = ['http://one.test/%d' % n for n in range(50)]
    for url in urls:
        history.record(url, states.OK, '200 OK', 10, 0.25)
    transaction.commit()
    assert 'URLHistory' not in stored_by_last_commit()
    first = history.get(urls[0])
    assert first.results == ((10, states.OK, '200 OK', 0.25),)
    assert first.changes == ((10, states.OK, '200 OK'),)
    history.record(urls[0], states.UNAVAILABLE, '404 Not Found', 20, 0.1)
    transaction.commit()
    assert stored_by_last_commit()['URLHistory'] == 1
    again = history.get(urls[0])
    assert [r[:2] for r in again.results] == [(10, states.OK),
                                              (20, states.UNAVAILABLE)]
    assert [c[:2] for c in again.changes] == [(10, states.OK),
                                              (20, states.UNAVAILABLE)]
    # A confirmation pending: the result is not yet a change.
    history.record(urls[1], states.UNAVAILABLE, '404 Not Found', 20,
                   published=states.OK)
    assert [c[1] for c in history.get(urls[1]).changes] == [states.OK]
    # Pruned, a result older than the cut-off leaves the state then.
    history.prune(15)
    assert history.get(urls[2]).results == ()
    assert history.get(urls[2]).state_at(16) == states.OK
    assert history.get(urls[1]).results[-1][0] == 20
    assert len(history) == 50
    transaction.commit()
    assert history.get(urls[2]).state_at(16) == states.OK
    conn.close()
    db.close()


def test_prune_goes_a_batch_at_a_time():
    history = History()
    for i in range(5):
        history.record('http://h%d/' % i, states.OK, '', 0)
    positions = [history.prune(DAY, batch=2)]
    while positions[-1] is not None:
        positions.append(history.prune(DAY, positions[-1], batch=2))
    # 5 histories, 2 a call: the third call finishes.
    assert len(positions) == 3
    assert len(history) == 5
    assert all(history.get('http://h%d/' % i).results == () for i in
               range(5))


def test_each_worker_writes_only_the_trees_of_its_own_hosts():
    history = History()
    urls = ['http://h%d.test/%d' % (n % 40, n) for n in range(400)]
    for url in urls:
        history.record(url, states.OK, '', 10)
    for worker in (Worker(1, 3), Worker(2, 3), Worker(3, 3)):
        own = {id(history._tree(u)) for u in urls if worker.owns_url(u)}
        others = {id(history._tree(u)) for u in urls
                  if not worker.owns_url(u)}
        assert own and not own & others
    assert len(history) == 400


def old_history(entries):
    """A History as versions before the shards stored it: one tree."""
    from BTrees.OOBTree import OOBTree
    history = History.__new__(History)
    history._urls = OOBTree()
    for url, result in entries.items():
        h = history._urls[url] = URLHistory()
        h.add(*result)
    return history


def test_a_history_stored_before_the_shards_is_read_then_moved():
    history = old_history({'http://a.test/': (10, states.OK, ''),
                           'http://b.test/': (20, states.UNAVAILABLE, 'x')})
    assert history.get('http://a.test/').results[0][:2] == (10, states.OK)
    assert len(history) == 2
    # A new result moves the URL's history into its shard.
    history.record('http://a.test/', states.UNAVAILABLE, 'y', 30)
    assert [r[0] for r in history.get('http://a.test/').results] == [10, 30]
    assert list(history._urls) == ['http://b.test/']
    assert history.move_to_shards(batch=1) == 1
    assert history._urls is None and history.move_to_shards() == 0
    assert history.get('http://b.test/').results[0][1] == states.UNAVAILABLE
    assert len(history) == 2


def test_an_old_database_opens_with_empty_histories(tmp_path):
    path = tmp_path / 'Data.fs'
    shutil.copy(FIXTURE, path)
    database = Database(FileStorage(str(path)))
    try:
        def read(app):
            provider = zope.component.getUtility(IURLProvider)
            history = zope.component.getUtility(IHistory)
            urls = list(provider.keys())
            assert urls
            return [(history.get(u).results, history.get(u).changes)
                    for u in urls]
        assert set(database.session().read(read)) == {((), ())}
    finally:
        database.close()


def record(server, url, state, reason, when, latency=0.25):
    """Store a result as the checker's writer does: on the URL and in its
    history, in one transaction."""
    def store(app):
        obj = zope.component.getUtility(IURLProvider).get(url)
        obj.set_result(state, reason, when)
        zope.component.getUtility(IHistory).record(obj.url, state, reason,
                                                   when, latency)
    server.run(store)


def test_url_page_shows_state_uptime_timeline_results_clients(server):
    server.proxy().registerURLs('fred', 'fred-pw', ['http://a.example/x'])
    server.proxy().registerURLs('ann', 'ann-pw', ['http://a.example/x'])
    record(server, 'http://a.example/x', states.OK, '', START - 2 * DAY)
    record(server, 'http://a.example/x', states.UNAVAILABLE, 'HTTP 404',
           START - DAY)
    answer = manager(server, '/url?u=http://a.example/x')
    assert answer.status == 200
    text = testing.page_text(answer.text)
    assert 'HTTP 404' in text
    assert ['24 h', '0.00 %'] in rows(answer)
    assert ['7 d', '50.00 %'] in rows(answer)
    assert '0.250 s' in text
    assert 'href="/alerts/fred"' in answer.text
    assert 'href="/alerts/ann"' in answer.text
    assert '<svg class="timeline" role="img" aria-label="State timeline' \
        in answer.text
    assert 'unavailable from' in answer.text
    assert "'none'" in answer.headers['content-security-policy']


def test_url_page_refuses_bad_and_unknown_urls_and_strangers(server):
    assert manager(server, '/url').status == 400
    assert manager(server, '/url?u=%20').status == 400
    assert manager(server, '/url?u=%ff').status == 400
    assert manager(server, '/url?u=http://nowhere.example/').status == 404
    assert get(server, '/url?u=http://a.example/',
               accept=None).status == 401
    assert get(server, '/url?u=http://a.example/',
               password='fred-pw', user='fred').status == 401


def test_url_page_escapes_what_it_shows(server):
    url = 'http://a.example/<script>alert(1)</script>'
    server.proxy().registerURLs('fred', 'fred-pw', [url])
    record(server, url, states.UNAVAILABLE, '<b>bad</b>', START)
    answer = manager(server, '/url?u=' + url.replace('<', '%3C').replace(
        '>', '%3E'))
    assert answer.status == 200
    assert '<script>' not in answer.text
    assert '<b>bad</b>' not in answer.text
    assert '&lt;b&gt;bad&lt;/b&gt;' in answer.text


def test_the_checker_records_each_result_in_the_history(tmp_path):
    from linksync.testing import servers as testservers
    from test_scheduler import all_checked, run_until, start_server
    server = start_server(tmp_path)
    web = testservers.HTTPTestServer('127.0.0.2')
    web.clock = server.clock
    web.start()
    urls = [web.url('/status/200'), web.url('/status/404')]
    fred = server.register_client('fred')
    server.proxy().registerURLs(*fred, urls)
    run_until(server, [web], all_checked(server, urls))

    def read(app):
        history = zope.component.getUtility(IHistory)
        return {u: history.get(u).results for u in urls}
    found = server.read(read)
    [(_, state, reason, latency)] = found[urls[0]]
    assert (state, reason) == (states.OK, '200 OK')
    assert latency is not None and latency >= 0
    assert [r[1:3] for r in found[urls[1]]] == [
        (states.UNAVAILABLE, '404 Not Found')]


def test_pack_prunes_the_history_to_its_days(tmp_path):
    import time
    from test_serve import run_cli
    data = tmp_path / 'var'
    data.mkdir()
    database = Database(FileStorage(str(data / 'Data.fs')))
    now = time.time()

    def store(app):
        history = zope.component.getUtility(IHistory)
        history.record('http://a.example/', states.OK, '', now - 10 * DAY)
        history.record('http://a.example/', states.UNAVAILABLE, '404',
                       now - DAY)
        history.record('http://b.example/', states.OK, '', now - 10 * DAY)
    database.session().run(store)
    database.close()
    result = run_cli('pack', '--data', str(data), '--secret', 'sesame',
                     '--history-days', '5')
    assert result.returncode == 0, result.stderr
    database = Database(FileStorage(str(data / 'Data.fs')))
    try:
        def read(app):
            history = zope.component.getUtility(IHistory)
            a, b = (history.get(u) for u in ('http://a.example/',
                                             'http://b.example/'))
            return ([r[1] for r in a.results], [c[1] for c in a.changes],
                    b.results, [c[1] for c in b.changes])
        assert database.session().read(read) == (
            [states.UNAVAILABLE], [states.OK, states.UNAVAILABLE], (),
            [states.OK])
    finally:
        database.close()


def test_downloads_of_a_clients_problems(server, monkeypatch):
    import csv
    import io
    import json
    from linksync.server.web import alerts as alerts_module
    monkeypatch.setattr(alerts_module, 'PAGE_SIZE', 2)  # several pages
    urls = ['http://a.example/%d' % i for i in range(5)]
    server.proxy().registerURLs('fred', 'fred-pw', urls)
    server.proxy().registerURLs('ann', 'ann-pw', urls[:1])
    for i, url in enumerate(urls):
        record(server, url, states.UNAVAILABLE if i else states.OK,
               '=HYPERLINK("x")' if i == 1 else '404 Not Found', START)
    link = server.proxy().getInfoFrameURL('fred', 'fred-pw')
    page = testing.fetch(link)
    token = link.split('?token=')[1]
    assert 'format=csv&amp;token=' in page.text
    answer = testing.fetch(link + '&format=csv')
    assert answer.status == 200
    assert answer.headers['Content-Type'] == 'text/csv; charset=utf-8'
    assert 'attachment' in answer.headers['Content-Disposition']
    table = list(csv.reader(io.StringIO(answer.text)))
    assert table[0] == ['url', 'state', 'reason', 'since', 'last_check']
    assert sorted(r[0] for r in table[1:]) == urls[1:]
    assert {r[1] for r in table[1:]} == {states.UNAVAILABLE}
    # A formula is not one for a spreadsheet.
    assert "'=HYPERLINK(\"x\")" in [r[2] for r in table[1:]]
    assert table[1][3].endswith('Z')
    answer = testing.fetch(link + '&format=json')
    assert answer.headers['Content-Type'] == 'application/json'
    data = json.loads(answer.text)
    assert data['client'] == 'fred'
    assert sorted(r['url'] for r in data['links']) == urls[1:]
    # The alerts page's access rules: other clients' data 403, no
    # credentials 401, bad format 400, unknown client 404.
    assert get(server, '/alerts/ann?format=csv&token=' + token).status == 403
    assert get(server, '/alerts/fred?format=csv').status == 401
    assert testing.fetch(link + '&format=xml').status == 400
    assert manager(server, '/alerts/nobody?format=csv').status == 404
    answer = manager(server, '/alerts/ann?format=json')
    assert json.loads(answer.text)['links'] == []


def test_search_alerts_and_overview_lead_to_url_pages(server):
    url = 'http://a.example/a?b=1&c=2'
    server.proxy().registerURLs('fred', 'fred-pw', [url])
    record(server, url, states.UNAVAILABLE, '404', START)
    page = '/url?u=http%3A%2F%2Fa.example%2Fa%3Fb%3D1%26c%3D2'
    found = manager(server, '/search?q=http://a.example/')
    assert 'href="%s"' % page in found.text
    assert manager(server, page).status == 200
    assert 'href="%s"' % page in manager(server, '/alerts/fred').text
    # Not in the client's own view: the URL page is the manager's.
    link = server.proxy().getInfoFrameURL('fred', 'fred-pw')
    assert '/url?' not in testing.fetch(link).text
    assert 'action="/url"' in manager(server, '/').text


def test_check_now_makes_the_url_due_through_a_guarded_form(server):
    import base64
    import re
    import urllib.error
    import urllib.parse
    import urllib.request
    from linksync.server.interfaces import ISchedule
    url = 'http://a.example/x'
    server.proxy().registerURLs('fred', 'fred-pw', [url])
    record(server, url, states.UNAVAILABLE, '404', START)

    def due(app):
        obj = zope.component.getUtility(IURLProvider).get(url)
        return zope.component.getUtility(ISchedule).due_at(obj)
    server.run(lambda app: zope.component.getUtility(ISchedule).reschedule(
        zope.component.getUtility(IURLProvider).get(url), START + DAY))
    page = manager(server, '/url?u=' + url)
    token = re.findall(r'name="token" value="([^"]+)"', page.text)[-1]
    assert 'Check now</button>' in page.text
    # A forged token, another login's token, or a foreign Origin: 403.
    for bad in ['x', token[:-1] + ('A' if token[-1] != 'A' else 'B')]:
        assert get(server, '/url', password=SECRET,
                   form={'u': url, 'token': bad}).status == 403
    # A token is bound to the URL too.
    assert get(server, '/url', password=SECRET, form={
        'u': 'http://a.example/y', 'token': token}).status == 403
    request = urllib.request.Request(
        server.base_url + '/url', data=urllib.parse.urlencode(
            {'u': url, 'token': token}).encode(), headers={
            'Origin': 'http://evil.example',
            'Authorization': 'Basic ' + base64.b64encode(
                (':' + SECRET).encode()).decode()})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 403
    assert server.read(due) == START + DAY
    # Without the secret: not even looked at.
    assert get(server, '/url', form={'u': url, 'token': token},
               accept=None).status == 401
    # The real form: due now, back to the page.
    answer = get(server, '/url', password=SECRET,
                 form={'u': url, 'token': token})
    assert answer.status == 303
    assert answer.headers['Location'] == '/url?u=' + urllib.parse.quote(
        url, safe='')
    assert server.read(due) == START
