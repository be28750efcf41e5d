"""HTML for the pages: escaping by default, the layout and its style.

Every piece of text that reaches a page goes through :func:`escape` unless
it is :class:`Safe` (markup this module or a page built). URLs and reasons
come from clients and from the servers checked: they are attacker-controlled
text, and only ever land in a page escaped.

>>> render('<a href="{}">{}</a>', '/x?a=1&b="2"', '<script>')
'<a href="/x?a=1&amp;b=&quot;2&quot;">&lt;script&gt;</a>'
>>> render('<p>{}</p>', Safe('<b>kept</b>'))
'<p><b>kept</b></p>'
>>> url_link('javascript:alert(1)')
'<span class="url">javascript:alert(1)</span>'
>>> ago(100, now=7300)
'2 h ago'
"""

import base64
import datetime
import hashlib
import html
import urllib.parse

from linksync import __version__, states

#: Links to checked URLs are made only for these schemes.
LINKED_SCHEMES = ('http', 'https', 'ftp')

#: The CSS class of each state's badge.
STATE_CLASSES = {
    states.OK: 'ok',
    states.TEMPORARY: 'temporary',
    states.UNAVAILABLE: 'unavailable',
    states.UNSUPPORTED: 'unsupported',
    states.UNKNOWN: 'unknown',
}


class Safe(str):
    """Text that is HTML already: never escaped again."""

    __slots__ = ()


def escape(value):
    """`value` as HTML text (Safe values stay as they are)."""
    if isinstance(value, Safe):
        return value
    return Safe(html.escape(str(value), quote=True))


def render(template, *args, **kw):
    """`template` (markup written here, never data) with its ``{}`` fields
    filled with the escaped `args` and `kw`."""
    return Safe(template.format(*[escape(a) for a in args],
                                **{k: escape(v) for k, v in kw.items()}))


def join(parts, separator=''):
    return Safe(escape(separator).join(escape(p) for p in parts))


def href(path, **params):
    """A link to one of the pages: `path` with the non-empty `params`."""
    query = urllib.parse.urlencode(
        [(k, v) for k, v in params.items() if v not in (None, '')])
    return path + ('?' + query if query else '')


# -- pieces -------------------------------------------------------------------

def url_link(url):
    """A checked URL: a link when its scheme is a web one (opened without
    a referrer: the page's address may hold a token), plain text else."""
    scheme = url.split(':', 1)[0].lower()
    if scheme in LINKED_SCHEMES:
        return render('<a class="url" href="{}" rel="noopener noreferrer" '
                      'target="_blank">{}</a>', url, url)
    return render('<span class="url">{}</span>', url)


def badge(state):
    """A state as a coloured label ('unknown' for never checked)."""
    state = state or states.UNKNOWN
    return render('<span class="badge {}">{}</span>',
                  STATE_CLASSES.get(state, 'unknown'), state)


def iso(timestamp):
    return datetime.datetime.fromtimestamp(
        timestamp, datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')


def duration(seconds):
    """A duration in its largest whole unit: '3 d', '2 h', '5 min', '12 s'.
    """
    seconds = abs(seconds)
    for unit, size in (('d', 86400), ('h', 3600), ('min', 60)):
        if seconds >= size:
            return '%d %s' % (seconds // size, unit)
    return '%d s' % seconds


def ago(timestamp, now):
    """How long ago (or in how long) `timestamp` is, in a few words."""
    delta = now - timestamp
    if abs(delta) < 1:
        return 'now'
    return 'in ' + duration(delta) if delta < 0 else duration(delta) + ' ago'


def when(timestamp, now, missing='never'):
    """A time as 'N h ago', its date in the tooltip."""
    if timestamp is None:
        return render('<span class="muted">{}</span>', missing)
    return render('<time title="{}">{}</time>', iso(timestamp),
                  ago(timestamp, now))


def number(n):
    return '{:,}'.format(n).replace(',', '\u202f')


def table(columns, rows, empty):
    """A table that turns into one card per row on narrow screens.

    `columns` are (label, CSS class) pairs; `rows` lists of cells (text or
    Safe markup), as many as there are columns.
    """
    if not rows:
        return render('<p class="muted">{}</p>', empty)
    head = join(render('<th class="{}">{}</th>', cls, label)
                for label, cls in columns)
    body = join(
        render('<tr>{}</tr>', join(
            render('<td class="{}" data-label="{}"><span>{}</span></td>',
                   cls, label, cell)
            for (label, cls), cell in zip(columns, row)))
        for row in rows)
    return render('<table class="rows"><thead><tr>{}</tr></thead>'
                  '<tbody>{}</tbody></table>', head, body)


def pager(next_href, label='Next page'):
    if not next_href:
        return Safe('')
    return render('<p class="pager"><a href="{}">{} &rarr;</a></p>',
                  next_href, label)


# -- the layout ---------------------------------------------------------------

STYLE = """
:root { --fg: #1d2330; --muted: #5d6677; --line: #d8dde6; --bg: #f5f7fa;
  --card: #fff; --accent: #1f5fbf; --ok: #1e7b34; --ok-bg: #e3f4e7;
  --bad: #b42318; --bad-bg: #fde7e4; --temp: #9a5b00; --temp-bg: #fff1d6;
  --unsup: #5b4a99; --unsup-bg: #ece8fb; --unk: #5d6677; --unk-bg: #eceef2; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI",
  Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg);
  background: var(--bg); }
a { color: var(--accent); }
header.top { background: #17202e; color: #fff; padding: .6rem 1rem;
  display: flex; flex-wrap: wrap; align-items: center; gap: .4rem 1.2rem; }
header.top .brand { color: #fff; font-weight: 700; text-decoration: none;
  font-size: 1.1rem; }
header.top nav { display: flex; flex-wrap: wrap; gap: .2rem 1rem;
  align-items: center; }
header.top nav a { color: #d7e3ff; text-decoration: none; }
header.top nav a:hover { text-decoration: underline; }
header.top form { margin: 0; }
header.top button { background: none; border: 1px solid #6c7a93;
  color: #d7e3ff; border-radius: .3rem; padding: .1rem .5rem;
  font: inherit; font-size: .9rem; cursor: pointer; }
main { max-width: 72rem; margin: 0 auto; padding: 1rem; }
body.frame main { max-width: none; padding: .5rem; }
body.frame h1 { font-size: 1.25rem; }
h1 { font-size: 1.45rem; margin: .2rem 0 1rem; }
h2 { font-size: 1.15rem; margin: 1.6rem 0 .6rem; }
section { background: var(--card); border: 1px solid var(--line);
  border-radius: .5rem; padding: .8rem 1rem; margin: 0 0 1rem; }
section > h2:first-child { margin-top: 0; }
.muted { color: var(--muted); }
.cards { display: grid; gap: .6rem; margin: 0 0 1rem;
  grid-template-columns: repeat(auto-fit, minmax(9.5rem, 1fr)); }
.card { background: var(--card); border: 1px solid var(--line);
  border-left: .35rem solid var(--unk); border-radius: .5rem;
  padding: .5rem .7rem; }
.card .value { font-size: 1.5rem; font-weight: 700; display: block; }
.card .value a { color: inherit; text-decoration: none; }
.card .value a:hover { color: var(--accent); text-decoration: underline; }
.card .label { color: var(--muted); font-size: .9rem; }
.card.ok { border-left-color: var(--ok); }
.card.unavailable { border-left-color: var(--bad); }
.card.temporary { border-left-color: var(--temp); }
.card.unsupported { border-left-color: var(--unsup); }
.card.info { border-left-color: var(--accent); }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 1rem;
  font-size: .85rem; white-space: nowrap; background: var(--unk-bg);
  color: var(--unk); }
.timeline { width: 100%; height: 2rem; background: var(--line, #ddd); }
.timeline .s-ok { fill: var(--ok); }
.timeline .s-unavailable { fill: var(--bad); }
.timeline .s-temporary { fill: var(--temp); }
.timeline .s-unsupported { fill: var(--unsup); }
.timeline .s-unknown { fill: #888; }
.chart { display: block; width: 100%; height: 9rem;
  border-bottom: 1px solid var(--line); }
.chart.spark { height: 4.5rem; }
.chart.bars { height: 6rem; }
h3 { font-size: 1rem; margin: 1rem 0 .4rem; }
ul.legend { list-style: none; display: flex; flex-wrap: wrap;
  gap: .2rem 1.2rem; padding: 0; margin: 0 0 .4rem; }
ul.legend svg { vertical-align: -.2rem; }
details { margin: .3rem 0 .6rem; }
summary { cursor: pointer; color: var(--accent); font-size: .9rem; }
.badge.ok { background: var(--ok-bg); color: var(--ok); }
.badge.unavailable { background: var(--bad-bg); color: var(--bad); }
.badge.temporary { background: var(--temp-bg); color: var(--temp); }
.badge.unsupported { background: var(--unsup-bg); color: var(--unsup); }
.url { overflow-wrap: anywhere; word-break: break-all; }
table.rows { width: 100%; border-collapse: collapse; font-size: .95rem; }
table.rows th { text-align: left; color: var(--muted); font-weight: 600;
  border-bottom: 2px solid var(--line); padding: .35rem .5rem; }
table.rows td { border-bottom: 1px solid var(--line); padding: .4rem .5rem;
  vertical-align: top; }
table.rows td > span { min-width: 0; overflow-wrap: anywhere; }
td.wide { width: 40%; }
table.rows td.num, table.rows th.num { text-align: right; }
td.num > span, td.short > span, th.num, th.short { white-space: nowrap;
  overflow-wrap: normal; }
form.search { display: flex; flex-wrap: wrap; gap: .5rem; }
form.search input[type=search] { flex: 1 1 16rem; min-width: 0; }
form.search select { flex: 0 1 auto; min-width: 0; }
input, select, button { font: inherit; padding: .35rem .5rem;
  border: 1px solid #aab3c2; border-radius: .3rem; background: #fff;
  color: var(--fg); max-width: 100%; }
button.primary { background: var(--accent); border-color: var(--accent);
  color: #fff; cursor: pointer; }
.error { color: var(--bad); font-weight: 600; }
.note { color: var(--muted); font-size: .9rem; }
.pager { margin: .8rem 0 0; }
form.login { display: grid; gap: .6rem; max-width: 22rem; }
footer { max-width: 72rem; margin: 0 auto; padding: .5rem 1rem 2rem;
  color: var(--muted); font-size: .85rem; }
@media (max-width: 40rem) {
  main { padding: .6rem; }
  section { padding: .6rem .7rem; }
  table.rows thead { display: none; }
  table.rows, table.rows tbody, table.rows tr, table.rows td {
    display: block; width: 100%; }
  table.rows tr { border: 1px solid var(--line); border-radius: .5rem;
    margin: 0 0 .6rem; padding: .3rem .6rem; background: var(--card); }
  table.rows td { display: flex; gap: .6rem; border: 0; padding: .15rem 0;
    text-align: left; }
  table.rows td.num { text-align: left; }
  table.rows td::before { content: attr(data-label); flex: 0 0 6.5rem;
    color: var(--muted); font-size: .85rem; }
  td.wide { width: 100%; }
}
"""

#: The Content-Security-Policy of every page: no script at all, the one
#: inline style above, forms to this server only.
CSP = "default-src 'none'; style-src 'sha256-%s'; img-src 'self'; " \
      "form-action 'self'; base-uri 'none'" % base64.b64encode(
          hashlib.sha256(STYLE.encode('utf-8')).digest()).decode('ascii')

#: The links of the navigation bar of the global pages.
NAVIGATION = (('/', 'Overview'), ('/search', 'Search'),
              ('/clients', 'Clients'), ('/agents', 'Agents'))


def page(title, body, now, navigation=True, frame=False, logout_token=''):
    """A whole page (bytes): `body` (Safe) inside the layout.

    `navigation` adds the bar of the global pages (with a logout button,
    whose form carries `logout_token`); `frame` makes the compact layout of
    a page shown in an iframe.
    """
    if navigation:
        links = join(render('<a href="{}">{}</a>', path, label)
                     for path, label in NAVIGATION)
        nav = render(
            '<nav>{}<form method="post" action="/logout">'
            '<input type="hidden" name="token" value="{}">'
            '<button type="submit">Log out</button></form></nav>', links,
            logout_token)
    else:
        nav = Safe('')
    header = Safe('') if frame else render(
        '<header class="top"><a class="brand" href="/">linksync</a>{}'
        '</header>', nav)
    footer = Safe('') if frame else render(
        '<footer>linksync {} &middot; server time {}</footer>',
        __version__, iso(now))
    text = render(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, '
        'initial-scale=1"><meta name="referrer" content="no-referrer">'
        '<title>{title} &middot; linksync</title><style>{style}</style>'
        '</head><body class="{cls}">{header}<main>{body}</main>{footer}'
        '</body></html>\n', title=title, style=Safe(STYLE),
        cls='frame' if frame else 'full', header=header, body=body,
        footer=footer)
    return text.encode('utf-8')
