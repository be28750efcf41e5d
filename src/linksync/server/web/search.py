"""The URL search (``/search``): by prefix or substring, by state.

The server may hold millions of URLs, so a search never looks at all of
them in one request:

* a **prefix** search reads the range of the URL index that starts with
  the prefix (``URLProvider.keys(prefix, ...)``), and stops at its end;
  the scheme and host of the prefix are lower-cased, as stored URLs are;
* a **contains** search (any part of the URL, case-insensitive) walks the
  index in order, at most :data:`SCAN_LIMIT` URLs per page: when that is
  reached before a page is full, the page says how far it got and links to
  the search going on from there;
* with a failure **state**, the index of URLs in trouble
  (linksync.server.model.problems) is read instead, so "every broken URL starting with
  https://example.com/" is a range too; for ``ok`` and ``unknown`` (never
  checked) the URL objects are loaded to filter, at most
  :data:`LOAD_LIMIT` per page.

Pages go on after the last URL looked at (``after``), never by skipping.
"""

import zope.component

from linksync import states
from linksync.server.web.access import alerts_path
from linksync.server.interfaces import IProblemIndex, ISchedule, IURLProvider
from linksync.server.web.markup import (Safe, badge, href, join, number, pager,
                                   render, table, url_link, when)
from linksync.server.model.problems import PROBLEM_STATES
from linksync.server.web.urlpage import history_link

MATCHES = ('prefix', 'contains')
#: Results per page.
PAGE_SIZE = 50
#: URLs looked at per page, at most.
SCAN_LIMIT = 5000
#: URL objects loaded to filter by a state that is not indexed, at most.
LOAD_LIMIT = 500
#: Longer queries are refused.
MAX_QUERY = 2000
#: Client ids shown per URL.
SHOWN_CLIENTS = 3
#: The states one can search for.
SEARCH_STATES = states.STATES + (states.UNKNOWN,)

#: Past any URL (they are printable ASCII).
_END = '\U0010ffff'


class SearchError(ValueError):
    """A search that cannot be made; the message says why."""


def prefix_key(text):
    """The prefix as stored URLs spell it: scheme and host lower-cased.

    >>> prefix_key('HTTPS://Docs.Example.COM/A/b')
    'https://docs.example.com/A/b'
    >>> prefix_key('ftp://User@FTP.Example.com/Pub')
    'ftp://User@ftp.example.com/Pub'
    """
    scheme, sep, rest = text.partition('://')
    if not sep:
        return text
    cut = min([i for i in (rest.find(c) for c in '/?#') if i >= 0],
              default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    user, at, host = netloc.rpartition('@')
    return scheme.lower() + '://' + user + at + host.lower() + tail


class Query:
    """A checked search: text, how it matches, state, where to go on."""

    def __init__(self, text='', match='prefix', state='', after=''):
        if len(text) > MAX_QUERY or len(after) > MAX_QUERY * 5:
            raise SearchError('the search text is too long (at most %d '
                              'characters)' % MAX_QUERY)
        if match not in MATCHES:
            raise SearchError('match is prefix or contains, not %r'
                              % (match,))
        if state and state not in SEARCH_STATES:
            raise SearchError('no state %r (the states are: %s)'
                              % (state, ', '.join(SEARCH_STATES)))
        self.text = text.strip()
        self.match = match
        self.state = state
        self.after = after or None
        self.note = ''
        if match == 'prefix' and ':' not in self.text and self.text:
            # No scheme: no stored URL starts with that.
            self.match = 'contains'
            self.note = 'No scheme given: showing URLs that contain it.'

    def _keys(self, app):
        """The URLs to look at, in order: a range of an index."""
        start = prefix_key(self.text) if self.match == 'prefix' else ''
        excludemin = False
        if self.after is not None and self.after >= start:
            start, excludemin = self.after, True
        if self.state in PROBLEM_STATES:
            index = zope.component.getUtility(IProblemIndex)
            return (url for _, url in index.keys(self.state, start,
                                                 excludemin))
        provider = zope.component.getUtility(IURLProvider)
        return provider.keys(start, _END, excludemin=excludemin)

    def run(self, app):
        """{rows, after (to go on), scanned, stopped (limit reached)}."""
        provider = zope.component.getUtility(IURLProvider)
        prefix = prefix_key(self.text) if self.match == 'prefix' else None
        needle = self.text.lower() if self.match == 'contains' else None
        load_to_filter = self.state and self.state not in PROBLEM_STATES
        wanted = None if not load_to_filter else (
            None if self.state == states.UNKNOWN else self.state)
        rows = []
        scanned = loads = 0
        last = None
        stopped = False
        for url in self._keys(app):
            if prefix is not None and not url.startswith(prefix):
                break
            if scanned >= SCAN_LIMIT or loads >= LOAD_LIMIT:
                stopped = True
                break
            scanned += 1
            last = url
            if needle is not None and needle not in url.lower():
                continue
            obj = provider.get_normalized(url)
            if obj is None:
                continue
            if load_to_filter:
                loads += 1
                if obj.state != wanted:
                    continue
            rows.append(_row(obj))
            if len(rows) == PAGE_SIZE:
                stopped = True
                break
        return {'rows': rows, 'after': last if stopped else None,
                'scanned': scanned, 'full': len(rows) == PAGE_SIZE}


def _row(url):
    schedule = zope.component.queryUtility(ISchedule)
    clients = sorted(url.clients)
    return {
        'url': url.url,
        'state': url.state,
        'reason': url.reason or '',
        'last_check': url.last_check,
        'since': url.last_state_change,
        'due': schedule.due_at(url) if schedule is not None else None,
        'clients': clients[:SHOWN_CLIENTS],
        'client_count': len(clients),
    }


# -- rendering ----------------------------------------------------------------

def search_form(text, match, state):
    options = join(
        render('<option value="{}"{}>{}</option>', value,
               Safe(' selected') if value == match else '', label)
        for value, label in (('prefix', 'starts with'),
                             ('contains', 'contains')))
    state_options = join(
        render('<option value="{}"{}>{}</option>', value,
               Safe(' selected') if value == state else '', label)
        for value, label in [('', 'any state')] + [
            (s, s) for s in SEARCH_STATES])
    return render(
        '<form class="search" method="get" action="/search" role="search">'
        '<input type="search" name="q" value="{}" aria-label="URL" '
        'placeholder="https://example.com/docs/" autocapitalize="off" '
        'autocorrect="off" spellcheck="false">'
        '<select name="match" aria-label="how">{}</select>'
        '<select name="state" aria-label="state">{}</select>'
        '<button class="primary" type="submit">Search</button></form>',
        text, options, state_options)


def _clients_cell(row):
    links = join((render('<a href="{}">{}</a>', alerts_path(c), c)
                  for c in row['clients']), ', ')
    more = row['client_count'] - len(row['clients'])
    if more > 0:
        links = render('{} and {} more', links, more)
    return links if row['client_count'] else Safe(
        '<span class="muted">none (orphan)</span>')


def results_table(rows, now):
    columns = [('URL', 'wide'), ('State', ''), ('Reason', ''),
               ('Last check', 'short'), ('Next check', 'short'),
               ('Clients', '')]
    cells = []
    for row in rows:
        state = badge(row['state'])
        if row['since'] is not None and row['state'] is not None:
            state = render('{}<br><span class="note">since {}</span>', state,
                           when(row['since'], now))
        cells.append([url_link(row['url']), state, row['reason'],
                      render('{}<br><span class="note">{}</span>',
                             when(row['last_check'], now),
                             history_link(row['url'])),
                      when(row['due'], now, missing='not scheduled'),
                      _clients_cell(row)])
    return table(columns, cells, 'No URL found.')


def render_search(query, result, now):
    """The search page; `result` is None when nothing was asked yet."""
    parts = [render('<h1>Find a URL</h1><section>{}', search_form(
        query.text, query.match if not query.note else 'prefix',
        query.state))]
    if query.note:
        parts.append(render('<p class="note">{}</p>', query.note))
    if result is not None:
        if query.after:
            parts.append(render('<p class="note">Going on after {}</p>',
                                query.after))
        parts.append(table_or_progress(query, result, now))
    parts.append(Safe('</section>'))
    return join(parts)


def table_or_progress(query, result, now):
    more = None
    if result['after'] is not None:
        more = href('/search', q=query.text, match=query.match,
                    state=query.state, after=result['after'])
    rows = result['rows']
    found = render('<p class="note">{} found{}</p>',
                   number(len(rows)), '' if rows or not result['after']
                   else ' so far')
    if result['after'] is not None and not result['full']:
        label = 'Looked at %s URLs up to %s; search on' % (
            number(result['scanned']), result['after'])
        tail = pager(more, label)
    else:
        tail = pager(more)
    return join([found, results_table(rows, now), tail])
