"""Pictures for the pages: server-side SVG, no script, not by colour alone.

The pages run under a Content-Security-Policy without script, so the
charts are SVG drawn here, inline in the page. Each one carries a text
alternative (``role="img"`` with an ``aria-label`` saying what it shows and
its salient figures) and the figures themselves in a table under a
``<details>`` disclosure. States are told apart by pattern as well as by
colour (a legend shows both), so the charts read in grey too.

Everything drawn is numbers and times: no text from clients reaches an SVG
but through :func:`linksync.server.web.markup.render`, which escapes it.

>>> svg = stacked_area('t', [(0, {'ok': 2, 'unavailable': 1}),
...                          (60, {'ok': 1, 'unavailable': 2})], 0, 120,
...                    'URLs per state')
>>> svg.count('</path>'), 'role="img"' in svg
(5, True)
"""

from linksync import states
from linksync.server.web.markup import Safe, iso, join, number, render, table

#: Bottom to top: the healthy bulk first, the worst on top.
STACK_ORDER = (states.OK, states.UNKNOWN, states.UNSUPPORTED,
               states.TEMPORARY, states.UNAVAILABLE)

#: state -> (colour, pattern drawn over it in white, its name in words).
PATTERNS = {
    states.OK: ('#1e7b34', '', 'solid'),
    states.UNAVAILABLE: ('#b42318', '<path d="M0 8L8 0M-2 2L2 -2M6 10L10 6"'
                         ' stroke="#fff" stroke-width="1.6"/>',
                         'diagonal stripes'),
    states.TEMPORARY: ('#b86e00', '<circle cx="4" cy="4" r="1.6" '
                       'fill="#fff"/>', 'dots'),
    states.UNSUPPORTED: ('#5b4a99', '<path d="M0 4H8" stroke="#fff" '
                         'stroke-width="1.6"/>', 'horizontal stripes'),
    states.UNKNOWN: ('#8a93a3', '<path d="M4 0V8M0 4H8" stroke="#fff" '
                     'stroke-width="1"/>', 'crosses'),
}

WIDTH, HEIGHT = 600, 150


def _label(state):
    return 'not checked yet' if state == states.UNKNOWN else state


def _pattern(prefix, state):
    colour, overlay, _ = PATTERNS[state]
    return Safe(
        '<pattern id="%s-%s" width="8" height="8" patternUnits="userSpaceOn'
        'Use"><rect width="8" height="8" fill="%s"/>%s</pattern>'
        % (prefix, state.replace(' ', '-'), colour, overlay))


def _fill(prefix, state):
    return 'url(#%s-%s)' % (prefix, state.replace(' ', '-'))


def legend(prefix, shown=STACK_ORDER):
    """The states with their swatches (pattern and colour) and names."""
    items = []
    for state in shown:
        items.append(render(
            '<li><svg width="16" height="16" aria-hidden="true" '
            'xmlns="http://www.w3.org/2000/svg"><defs>{}</defs><rect '
            'width="16" height="16" fill="{}"/></svg> {} <span class="note">'
            '({})</span></li>', _pattern(prefix + 'l', state),
            _fill(prefix + 'l', state), _label(state), PATTERNS[state][2]))
    return render('<ul class="legend">{}</ul>', join(items))


def _svg(label, body, defs='', cls='chart'):
    return render(
        '<svg class="{}" role="img" aria-label="{}" viewBox="0 0 {} {}" '
        'preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg">'
        '<defs>{}</defs>{}</svg>', cls, label, WIDTH, HEIGHT, Safe(defs),
        body)


def stacked_area(prefix, samples, start, end, title):
    """URLs per state as stacked areas: `samples` are (time, {state:
    count}), each holding until the next one; `prefix` makes the pattern
    ids unique in the page."""
    if not samples:
        return render('<p class="muted">{}: nothing recorded yet.</p>',
                      title)
    times = [max(t, start) for t, _ in samples] + [end]
    top = max(sum(counts.get(s, 0) for s in STACK_ORDER)
              for _, counts in samples) or 1
    xscale = WIDTH / max(end - start, 1)

    def x(t):
        return '%.1f' % ((t - start) * xscale)

    def y(v):
        return '%.1f' % (HEIGHT - v * HEIGHT / top)

    paths = []
    below = [0] * len(samples)
    for state in STACK_ORDER:
        above = [b + counts.get(state, 0)
                 for b, (_, counts) in zip(below, samples)]
        # Each sample holds until the next: steps, drawn left to right on
        # top and back along the bottom.
        upper, lower = [], []
        for i, (a, b) in enumerate(zip(above, below)):
            upper += ['%s %s' % (x(times[i]), y(a)),
                      '%s %s' % (x(times[i + 1]), y(a))]
            lower += ['%s %s' % (x(times[i + 1]), y(b)),
                      '%s %s' % (x(times[i]), y(b))]
        d = 'M' + ' L'.join(upper + list(reversed(lower))) + ' Z'
        paths.append(render('<path d="{}" fill="{}"><title>{}</title>'
                            '</path>', d, _fill(prefix, state),
                            _label(state)))
        below = above
    defs = ''.join(_pattern(prefix, s) for s in STACK_ORDER)
    last_time, last = samples[-1]
    worst = max(samples, key=lambda s: s[1].get(states.UNAVAILABLE, 0))
    label = '%s from %s to %s (up to %s URLs). Latest: %s. Most unavailable' \
        ': %s at %s.' % (
            title, iso(start), iso(end), number(top),
            ', '.join('%s %s' % (number(last.get(s, 0)), _label(s))
                      for s in reversed(STACK_ORDER)),
            number(worst[1].get(states.UNAVAILABLE, 0)), iso(worst[0]))
    return render('{}<p class="note">0 to {} URLs, {} to now.</p>',
                  _svg(label, join(paths), defs), number(top), iso(start))


def last_per_period(samples, seconds):
    """The last of the (time, data) `samples` (in time order) in each
    period of `seconds`."""
    found = []
    for t, data in samples:
        if found and t // seconds == found[-1][0] // seconds:
            found[-1] = (t, data)
        else:
            found.append((t, data))
    return found


def figures(samples, every, columns):
    """A table of one sample per `every` seconds (the last of each
    period): `columns` are (label, value of a sample's data)."""
    rows = last_per_period(samples, every)
    head = [('Time', 'short')] + [(label, 'num') for label, _ in columns]
    cells = [[iso(t)] + [value(data) for _, value in columns]
             for t, data in rows]
    return disclosed(head, cells)


def disclosed(head, cells):
    """A table of figures under a "The figures" disclosure."""
    return render('<details><summary>The figures</summary>{}</details>',
                  table(head, cells, 'No figures.'))


def sparkline(points, start, end, title, unit):
    """A line of `points` (time, value) with the area under it."""
    if len(points) < 1:
        return render('<p class="muted">{}: nothing recorded yet.</p>',
                      title)
    top = max(v for _, v in points) or 1
    xscale = WIDTH / max(end - start, 1)
    coords = ['%.1f %.1f' % ((t - start) * xscale,
                             HEIGHT - v * (HEIGHT - 4) / top)
              for t, v in points]
    first_x = coords[0].split()[0]
    last_x = coords[-1].split()[0]
    area = 'M%s %d L%s L%s %d Z' % (first_x, HEIGHT, ' L'.join(coords),
                                    last_x, HEIGHT)
    line = 'M' + ' L'.join(coords)
    peak = max(points, key=lambda p: p[1])
    mean = sum(v for _, v in points) / len(points)
    label = '%s from %s to %s: latest %.1f, highest %.1f at %s, average ' \
        '%.1f %s.' % (title, iso(start), iso(end), points[-1][1], peak[1],
                      iso(peak[0]), mean, unit)
    body = render('<path d="{}" fill="#dce7f9"/><path d="{}" fill="none" '
                  'stroke="#1f5fbf" stroke-width="2" vector-effect="'
                  'non-scaling-stroke"/>', area, line)
    return render('{}<p class="note">Highest {}: {}; latest {}.</p>',
                  _svg(label, body, cls='chart spark'), unit,
                  '%.1f' % peak[1], '%.1f' % points[-1][1])


def bars(points, title, unit):
    """A bar per (label, value), each titled with its figure."""
    if not points:
        return render('<p class="muted">{}: nothing recorded yet.</p>',
                      title)
    top = max(v for _, v in points) or 1
    width = WIDTH / len(points)
    rects = []
    for i, (name, value) in enumerate(points):
        h = value * (HEIGHT - 4) / top
        rects.append(render(
            '<rect x="{}" y="{}" width="{}" height="{}" fill="#b42318">'
            '<title>{}: {} {}</title></rect>', '%.1f' % (i * width + 1),
            '%.1f' % (HEIGHT - h), '%.1f' % max(width - 2, 1),
            '%.1f' % max(h, 0), name, number(value), unit))
    peak = max(points, key=lambda p: p[1])
    label = '%s: %s %s on the last day, most %s on %s.' % (
        title, number(points[-1][1]), unit, number(peak[1]), peak[0])
    return render('{}<p class="note">Highest: {} {} ({}); from {} to {}.'
                  '</p>', _svg(label, join(rects), cls='chart bars'),
                  number(peak[1]), unit, peak[0], points[0][0],
                  points[-1][0])
