"""The overview (``/``), and the lists of clients and agents.

Everything here is read in one unit of work whose cost does not grow with
the database: the counts per state are kept counters
(linksync.server.model.statecounts), the due URLs are counted up to
:data:`DUE_COUNT_LIMIT`, and clients and agents are listed a page at a time
(a range of their BTree, resumed after the last id shown).
"""

import itertools

import zope.component

from linksync import states
from linksync.agents.manager import get_manager
from linksync.server.web.access import alerts_path
from linksync.server.interfaces import (IClientProvider, INotifications,
                                        IProblemIndex, ISchedule,
                                        IStateCounts, ISynchronization,
                                        ITrends, IURLProvider)
from linksync.server.web import charts
from linksync.server.web.markup import (STATE_CLASSES, Safe, duration, escape,
                                   href, join, number, pager, render, table,
                                   when)
from linksync.server.web.paging import page_of
from linksync.server.web.search import search_form
from linksync.server.web.urlpage import percent, url_form
from linksync.server.model.problems import PROBLEM_STATES

#: Rows of the clients' and agents' lists per page.
PAGE_SIZE = 50
#: Rows of each list on the overview.
OVERVIEW_ROWS = 10
#: Due URLs are counted up to this number (the overview shows "1000+").
DUE_COUNT_LIMIT = 1000

#: The order of the state counts on the overview.
SHOWN_STATES = (states.OK, states.UNAVAILABLE, states.TEMPORARY,
                states.UNSUPPORTED, states.UNKNOWN)


# -- reading ------------------------------------------------------------------

def summary(app, now):
    """The numbers of the overview's top (plain data)."""
    counts = zope.component.getUtility(IStateCounts).counts()
    schedule = zope.component.queryUtility(ISchedule)
    due = backlog = None
    if schedule is not None:
        # One pass: the keys come earliest first, so the first one is the
        # URL that has waited longest.
        due = 0
        for due_at, _ in itertools.islice(schedule.due_keys(now),
                                          DUE_COUNT_LIMIT):
            if not due:
                backlog = max(now - due_at, 0)
            due += 1
    return {
        'counts': counts,
        'urls': len(zope.component.getUtility(IURLProvider)),
        'clients': len(zope.component.getUtility(IClientProvider)),
        'due': due,
        'backlog': backlog,
    }


def clients_page(app, after=None, limit=None, now=None):
    """([row dict per client], next after) for the clients after `after`;
    with `now`, each with its uptime over 24 h, 7 d and 30 d."""
    limit = limit or PAGE_SIZE
    provider = zope.component.getUtility(IClientProvider)
    problems = zope.component.queryUtility(IProblemIndex)
    trends = zope.component.queryUtility(ITrends)
    ids, next_after = page_of(
        provider.keys(after, excludemin=after is not None), limit)
    rows = []
    for client_id in ids:
        client = provider.get(client_id)
        sync = ISynchronization(client)
        notifications = INotifications(client)
        rows.append({
            'id': client_id,
            'urls': client.url_count,
            'problems': problems.client_counts(client_id)
            if problems is not None else {},
            'sync_last': sync.last,
            'sync_force': bool(sync.force),
            'sync_error': sync.last_error or '',
            'sync_retry': sync.retry_after,
            'notify_enabled': bool(notifications.enabled),
            'notify_failed': notifications.failed,
            'notify_last': notifications.last,
            'uptime': [share for _, share in
                       trends.client_uptimes(client, problems, now)]
            if trends is not None and now is not None else None,
        })
    return rows, next_after


def trends_data(app, now):
    """The series the overview draws (plain data)."""
    trends = zope.component.queryUtility(ITrends)
    if trends is None:
        return None
    day, week = now - 86400, now - 7 * 86400
    return {
        'day': trends.state_samples(day, now),
        'week': charts.last_per_period(trends.state_samples(week, now),
                                       3600),
        'checks': per_period(trends.checks_per_minute(day, now), 600),
    }


def per_period(points, seconds):
    """The mean of `points` (time, value) per period of `seconds`, at the
    period's start."""
    sums = {}
    for t, v in points:
        key = int(t // seconds * seconds)
        total, n = sums.get(key, (0.0, 0))
        sums[key] = (total + v, n + 1)
    return [(k, total / n) for k, (total, n) in sorted(sums.items())]


def agents_page(app, now, after=None, limit=None):
    """([row dict per agent], next after) for the agents after `after`."""
    limit = limit or PAGE_SIZE
    manager = get_manager()
    ids, next_after = page_of(manager.agent_ids(after), limit)
    rows = []
    for agent_id in ids:
        agent = manager.get_agent(agent_id)
        pointer = manager.pointer(agent_id)
        rows.append({
            'id': agent_id,
            'kind': agent.kind,
            'description': agent.describe(),
            'enabled': bool(agent.enabled(app))
            if hasattr(agent, 'enabled') else True,
            'lag': manager.lag(pointer, now),
            'failures': agent.failure_count(app),
            'last_success': getattr(agent, 'last_success', None),
            'last_error': getattr(agent, 'last_error', '') or '',
        })
    return rows, next_after


# -- rendering ----------------------------------------------------------------

def _card(value, label, cls='', link=None):
    value = render('<a href="{}">{}</a>', link, value) if link else \
        escape(value)
    return render('<div class="card {}"><span class="value">{}</span> '
                  '<span class="label">{}</span></div>', cls, value, label)


def render_summary(data, rate, queue, now):
    """The cards: URLs by state, clients, checks per minute, queue."""
    counts = data['counts']
    cards = [_card(number(data['urls']), 'URLs monitored', 'info')]
    for state in SHOWN_STATES:
        label = 'not checked yet' if state == states.UNKNOWN else state
        cards.append(_card(number(counts.get(state, 0)), label,
                           STATE_CLASSES[state],
                           link=href('/search', state=state)))
    cards.append(_card(number(data['clients']), 'clients', 'info',
                       link='/clients'))
    if rate is None:
        cards.append(_card('—', 'checks per minute (no checker in this '
                           'process)'))
    else:
        cards.append(_card('%.1f' % rate, 'checks per minute (last 5 min)',
                           'info'))
    if queue is not None:
        cards.append(_card(number(queue), 'checks in progress', 'info'))
    if data['due'] is not None:
        due = number(data['due']) + ('+' if data['due'] >= DUE_COUNT_LIMIT
                                     else '')
        late = 'due now' if not data['backlog'] else \
            'due now, oldest waiting %s' % duration(data['backlog'])
        cards.append(_card(due, late, 'info'))
    return render('<div class="cards">{}</div>', join(cards))


def _problem_text(problems):
    parts = ['%d %s' % (problems[s], s) for s in PROBLEM_STATES
             if problems.get(s)]
    return ', '.join(parts) if parts else 'none'


def client_table(rows, now):
    columns = [('Client', ''), ('URLs', 'num'), ('Problems', ''),
               ('Uptime 24 h · 7 d · 30 d', 'short'), ('Last sync', ''),
               ('Notifications', '')]
    cells = []
    for row in rows:
        sync = when(row['sync_last'], now)
        if row['sync_error']:
            sync = render('{}<br><span class="error">failed: {}</span>',
                          sync, row['sync_error'])
        if row['sync_force']:
            sync = render('{} <span class="note">(forced sync pending)'
                          '</span>', sync)
        if row['notify_enabled']:
            notify = render('<span class="badge ok">on</span> last sent {}',
                            when(row['notify_last'], now))
        else:
            notify = Safe('<span class="badge unavailable">off</span>')
        if row['notify_failed']:
            notify = render('{}<br><span class="error">{} failed in a row'
                            '</span>', notify, row['notify_failed'])
        alerts = render('<a href="{}">{}</a>', alerts_path(row['id']),
                        row['id'])
        uptime = ' · '.join(percent(share) for share in row['uptime']) \
            if row.get('uptime') else 'no data'
        cells.append([alerts, number(row['urls']),
                      _problem_text(row['problems']), uptime, sync, notify])
    return table(columns, cells, 'No client is registered.')


def agent_table(rows, now):
    columns = [('Agent', ''), ('Kind', 'short'), ('Lag', 'num'),
               ('Last delivery', 'short'), ('State', '')]
    cells = []
    for row in rows:
        lag = duration(row['lag']) if row['lag'] else 'caught up'
        if not row['enabled']:
            state = Safe('<span class="badge unavailable">stopped</span>')
        elif row['failures']:
            state = render('<span class="badge temporary">failing</span> '
                           '<span class="error">{} in a row: {}</span>',
                           row['failures'], row['last_error'])
        else:
            state = Safe('<span class="badge ok">running</span>')
        name = render('{}<br><span class="note">{}</span>', row['id'],
                      row['description'])
        cells.append([name, row['kind'], lag,
                      when(row['last_success'], now), state])
    return table(columns, cells, 'No agent.')


def _state_columns():
    return [(charts._label(state), lambda d, s=state: number(d.get(s, 0)))
            for state in reversed(charts.STACK_ORDER)]


def render_trends(trends, now):
    """The overview's charts: URLs per state over 24 h and 7 d, checks
    per minute over 24 h, each with its figures."""
    if trends is None:
        return Safe('')
    day = charts.stacked_area('d', trends['day'], now - 86400, now,
                              'URLs per state over the last 24 hours')
    week = charts.stacked_area('w', trends['week'], now - 7 * 86400, now,
                               'URLs per state over the last 7 days')
    checks = charts.sparkline(trends['checks'], now - 86400, now,
                              'Checks per minute over the last 24 hours '
                              '(10-minute means)', 'checks per minute')
    return render(
        '<section><h2>Trends</h2>{legend}'
        '<h3>URLs per state, last 24 hours</h3>{day}{day_figures}'
        '<h3>URLs per state, last 7 days</h3>{week}{week_figures}'
        '<h3>Checks per minute, last 24 hours</h3>{checks}{check_figures}'
        '</section>', legend=charts.legend('lg'), day=day,
        day_figures=charts.figures(trends['day'], 3600, _state_columns()),
        week=week,
        week_figures=charts.figures(trends['week'], 86400, _state_columns()),
        checks=checks,
        check_figures=charts.figures(
            trends['checks'], 3600,
            [('Checks per minute', lambda v: '%.1f' % v)]))


def render_overview(data, clients, agents, rate, queue, now, trends=None):
    client_rows, more_clients = clients
    agent_rows, more_agents = agents
    body = render(
        '<h1>Status</h1>{summary}{trends}'
        '<section><h2>Find a URL</h2>{form}{url_form}</section>'
        '<section><h2>Clients</h2>{clients}{clients_more}</section>'
        '<section><h2>Agents</h2>{agents}{agents_more}</section>',
        summary=render_summary(data, rate, queue, now),
        trends=render_trends(trends, now),
        form=search_form('', 'prefix', ''), url_form=url_form(),
        clients=client_table(client_rows, now),
        clients_more=pager('/clients' if more_clients else None,
                           'All clients'),
        agents=agent_table(agent_rows, now),
        agents_more=pager('/agents' if more_agents else None,
                          'All agents'))
    return body


def render_clients(rows, next_after, after, now):
    note = render('<p class="note">After {}.</p>', after) if after else ''
    return render(
        '<h1>Clients</h1><section>{}{}{}</section>', note,
        client_table(rows, now),
        pager(href('/clients', after=next_after) if next_after else None))


def render_agents(rows, next_after, after, now):
    note = render('<p class="note">After {}.</p>', after) if after else ''
    return render(
        '<h1>Agents</h1><section><p class="note">The lag is how much of '
        'the change track an agent has not consumed yet.</p>{}{}{}'
        '</section>', note, agent_table(rows, now),
        pager(href('/agents', after=next_after) if next_after else None))
