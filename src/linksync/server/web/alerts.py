"""A client's alerts page (``/alerts/CLIENT_ID``): its links in trouble.

The page ``getInfoFrameURL`` points to, made to sit in an iframe of the
client application: the client's URLs that are broken (``unavailable``),
temporarily unavailable or of an unsupported protocol, the most serious
first, each under the client's own spelling, with the reason and the time
of the last check. It reads a range of the client's entries in the index of
URLs in trouble (linksync.server.model.problems), :data:`PAGE_SIZE` at a time, whatever
the number of the client's URLs.
"""

import datetime

import zope.component

from linksync.server.web.access import alerts_path
from linksync.server.interfaces import (IClientProvider, IProblemIndex,
                                        ISynchronization, ITrends,
                                        IURLProvider)
from linksync.server.model.trends import client_figures
from linksync.server.web import charts
from linksync.server.web.markup import (Safe, badge, href, join, number, pager,
                                   render, table, url_link, when)
from linksync.server.web.urlpage import history_link, percent
from linksync.server.web.paging import page_of
from linksync.server.model.problems import PROBLEM_STATES

#: URLs per page.
PAGE_SIZE = 100

#: How each state reads in a sentence.
STATE_WORDS = {
    PROBLEM_STATES[0]: 'broken',
    PROBLEM_STATES[1]: 'temporarily unavailable',
    PROBLEM_STATES[2]: 'not checkable (unsupported protocol)',
}


def parse_after(text):
    """The (state, url) pair a page goes on after, from its link's
    ``STATE|URL``; ValueError when it is not one."""
    state, sep, url = text.partition('|')
    if not sep or state not in PROBLEM_STATES or not url:
        raise ValueError('not a place in the list: %r' % (text,))
    return state, url


#: Days the problem chart covers.
CHART_DAYS = 30


def daily_problems(samples, now, days=CHART_DAYS):
    """[(day, most problems that day)] for the last `days` days (UTC),
    from the client's hourly samples; a day without samples is left out.
    """
    first = int(now // 86400) - days + 1
    most = {}
    for t, values in samples:
        day = int(t // 86400)
        if day >= first:
            most[day] = max(most.get(day, 0), sum(values[:-1]))
    return [(datetime.datetime.fromtimestamp(
        day * 86400, datetime.timezone.utc).strftime('%Y-%m-%d'), n)
        for day, n in sorted(most.items())]


def alerts(app, client_id, after=None, limit=None, now=None):
    """The client's alerts (plain data), or None when there is no such
    client; with `now`, its uptime and problems per day too."""
    limit = limit or PAGE_SIZE
    client = zope.component.getUtility(IClientProvider).get(client_id)
    if client is None:
        return None
    index = zope.component.getUtility(IProblemIndex)
    provider = zope.component.getUtility(IURLProvider)
    keys, next_after = page_of(index.client_keys(client_id, after), limit)
    rows = []
    for state, url in keys:
        obj = provider.get_normalized(url)
        if obj is None:
            continue
        spellings = client.spellings(url) or (url,)
        rows.append({'url': spellings[0], 'norm': url, 'state': obj.state,
                     'reason': obj.reason or '',
                     'last_check': obj.last_check,
                     'since': obj.last_state_change})
    trends = zope.component.queryUtility(ITrends)
    uptime = daily = None
    if trends is not None and now is not None:
        uptime = trends.client_uptimes(client, index, now)
        daily = daily_problems(trends.client_samples(
            client_id, now - CHART_DAYS * 86400, now) + [
                (now, client_figures(client, index))], now)
    return {
        'client': client_id,
        'uptime': uptime,
        'daily': daily,
        'urls': client.url_count,
        'counts': index.client_counts(client_id),
        'last_sync': ISynchronization(client).last,
        'rows': rows,
        'after': '%s|%s' % next_after if next_after else None,
    }


def render_alerts(data, now, token=None, manager=False):
    """The alerts page; with `manager`, each URL links to its page."""
    counts = data['counts']
    total = sum(counts.values())
    if total:
        summary = join(
            (render('{} {}', number(counts[s]), STATE_WORDS[s])
             for s in PROBLEM_STATES if counts.get(s)), ', ')
        summary = render('<p>{} of {} links.</p>', summary,
                         number(data['urls']))
    else:
        summary = render('<p>All {} links are fine or not checked yet.</p>',
                         number(data['urls']))
    columns = [('Link', 'wide'), ('State', ''), ('Reason', ''),
               ('Last check', 'short')]
    cells = []
    for row in data['rows']:
        state = render('{}<br><span class="note">since {}</span>',
                       badge(row['state']), when(row['since'], now))
        checked = when(row['last_check'], now)
        if manager:
            checked = render('{}<br><span class="note">{}</span>', checked,
                             history_link(row['norm']))
        cells.append([url_link(row['url']), state, row['reason'], checked])
    more = None
    if data['after']:
        more = href(alerts_path(data['client']), after=data['after'],
                    token=token)
    synced = Safe('')
    if data['last_sync'] is not None:
        synced = render(' The list of links was last synchronised with the '
                        'application {}.', when(data['last_sync'], now))
    files = Safe('')
    if total:
        path = alerts_path(data['client'])
        files = render(
            '<p>Download the list: <a href="{}" download>CSV</a> · '
            '<a href="{}" download>JSON</a></p>',
            href(path, format='csv', token=token),
            href(path, format='json', token=token))
    past = Safe('')
    if data.get('uptime') is not None:
        past = render(
            '<h2>The last 30 days</h2><p>Links fine (time-weighted share of '
            'the links not in trouble): {}.</p>{}{}',
            join((render('{} {}', label, percent(share))
                  for label, share in data['uptime']), ', '),
            charts.bars(data['daily'], 'Links in trouble per day over the '
                        'last 30 days (the most at any hour)', 'links'),
            charts.disclosed([('Day', 'short'), ('Links in trouble', 'num')],
                             [[day, number(n)] for day, n in data['daily']])
            if data['daily'] else Safe(''))
    return render(
        '<h1>Link problems of {}</h1>{}{}{}{}<p class="note">Links are '
        'checked regularly.{}</p>{}', data['client'], summary,
        table(columns, cells, 'No problem found.') if total else Safe(''),
        pager(more), files, synced, past)
