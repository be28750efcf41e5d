"""The page of one URL (``/url?u=URL``): what happened to it.

Its present (state, reason, last and next check), its uptime over 24 h, 7 d
and 30 d, its state timeline as a bar (an SVG picture with the same spans
as text beside it, readable without colour: each span carries its state's
name), its last check results and the clients that reference it. Reads one
URL's objects: bounded whatever the size of the database.
"""


import zope.component

from linksync import states
from linksync.server.interfaces import IHistory, ISchedule, IURLProvider
from linksync.server.model.history import WINDOWS
from linksync.server.web.access import alerts_path
from linksync.server.web.markup import (STATE_CLASSES, Safe, badge, href, iso, join, render,
                                        table, url_link, when)

#: Seconds the timeline bar covers.
TIMELINE = 30 * 86400
#: Clients named on the page, at most.
CLIENTS_SHOWN = 100


def history_link(url):
    """A link to the page of `url` (a monitored URL)."""
    return render('<a class="history" href="{}">history</a>',
                  href('/url', u=url))


def url_form():
    """A form opening the page of the URL given."""
    return render(
        '<form class="search" method="get" action="/url">'
        '<label for="u">URL</label><input id="u" name="u" type="url" '
        'required><button type="submit">Open its page</button></form>')


def check_now(app, url, now):
    """Make `url` due now (the checker takes it in turn, politely); False
    when it is not monitored or not scheduled (no client)."""
    obj = zope.component.getUtility(IURLProvider).get(url)
    schedule = zope.component.getUtility(ISchedule)
    if obj is None or not obj.clients or schedule.due_at(obj) is None:
        return False
    schedule.reschedule(obj, now)
    return True


def url_data(app, url, now):
    """The URL's page data (plain values), None when it is not known."""
    provider = zope.component.getUtility(IURLProvider)
    obj = provider.get(url)
    if obj is None:
        return None
    history = zope.component.getUtility(IHistory).get(obj.url)
    schedule = zope.component.getUtility(ISchedule)
    return {
        'url': obj.url, 'state': obj.state, 'reason': obj.reason or '',
        'last_check': obj.last_check, 'since': obj.last_state_change,
        'next_check': schedule.due_at(obj),
        'uptime': [(label, history.uptime(now, seconds))
                   for label, seconds in WINDOWS],
        # From what is known (at most TIMELINE back) to now.
        'start': max(now - TIMELINE, history.changes[0][0])
        if history.changes else now - TIMELINE,
        'spans': history.spans(now - TIMELINE, now),
        'changes': list(reversed(history.changes)),
        'results': list(reversed(history.results)),
        'clients': sorted(obj.clients)[:CLIENTS_SHOWN],
        'client_count': len(obj.clients),
    }


def percent(share):
    return 'no data' if share is None else '%.2f %%' % (100 * share)


def timeline_svg(spans, start, end):
    """A bar of the state spans from `start` to `end`: one rectangle per
    span, patterned by state (not by colour alone) and titled."""
    width = 600.0
    scale = width / max(end - start, 1)
    parts = []
    for lo, hi, state in spans:
        x = (lo - start) * scale
        # Not by colour alone: ok spans fill the bar, others its lower
        # half.
        y, height = (0, 24) if state == states.OK else (12, 12)
        parts.append(render(
            '<rect class="s-{}" x="{}" y="{}" width="{}" '
            'height="{}"><title>{}: {} to {}</title></rect>',
            STATE_CLASSES.get(state, 'unknown'), '%.1f' % x, y,
            '%.1f' % max((hi - lo) * scale, 0.5), height, state, iso(lo),
            iso(hi)))
    label = 'State timeline from %s to %s: ' % (iso(start), iso(end)) + (
        '; '.join('%s from %s to %s' % (s, iso(lo), iso(hi))
                  for lo, hi, s in spans) or 'nothing known')
    return render(
        '<svg class="timeline" role="img" aria-label="{}" '
        'viewBox="0 0 600 24" preserveAspectRatio="none" '
        'xmlns="http://www.w3.org/2000/svg">{}</svg>', label, join(parts))


def render_url(data, now, check_token=None):
    facts = render(
        '<section><p>{} {}</p><p>Since {}; last checked {}; next check '
        '{}.</p></section>', badge(data['state']), data['reason'],
        when(data['since'], now), when(data['last_check'], now),
        when(data['next_check'], now, 'not scheduled'))
    uptime = table([('Period', ''), ('Uptime (time ok)', '')],
                   [[label, percent(share)] for label, share in
                    data['uptime']], 'No data.')
    changes = table(
        [('Time', 'short'), ('State', ''), ('Reason', 'wide')],
        [[when(t, now), badge(s), r] for t, s, r in data['changes']],
        'No state change recorded yet.')
    results = table(
        [('Time', 'short'), ('State', ''), ('Reason', 'wide'),
         ('Latency', '')],
        [[when(t, now), badge(s), r,
          '' if latency is None else '%.3f s' % latency]
         for t, s, r, latency in data['results']],
        'No check result recorded yet.')
    clients = join(
        (render('<li><a href="{}">{}</a></li>', alerts_path(c), c)
         for c in data['clients']))
    more = Safe('')
    if data['client_count'] > len(data['clients']):
        more = render('<p class="note">and {} more.</p>',
                      data['client_count'] - len(data['clients']))
    timeline = render(
        '{}<p class="note">From {} to now (full height: ok; half height: '
        'not ok).</p>', timeline_svg(data['spans'], data['start'], now),
        iso(data['start']))
    button = Safe('')
    if check_token is not None:
        button = render(
            '<form class="check" method="post" action="/url">'
            '<input type="hidden" name="u" value="{}">'
            '<input type="hidden" name="token" value="{}">'
            '<button type="submit">Check now</button></form>',
            data['url'], check_token)
    facts = render('{}{}', facts, button)
    return render(
        '<h1>{}</h1>{}<h2>Uptime</h2>{}<h2>Timeline</h2>{}'
        '<h2>State changes</h2>{}<h2>Last checks</h2>{}'
        '<h2>Clients</h2><ul>{}</ul>{}',
        url_link(data['url']), facts, uptime,
        timeline, changes, results,
        clients, more)
