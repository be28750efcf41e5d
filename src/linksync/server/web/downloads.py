"""A client's links in trouble as files for people: CSV and JSON.

``/alerts/CLIENT_ID?format=csv`` (or ``json``), opened like the alerts
page (the management secret, the client's credentials or its alerts
link). One row per URL in trouble, the most serious first: URL (the
client's spelling), state, reason, since, last check (times in ISO 8601,
UTC). Read a page of the index at a time; text cells that a spreadsheet
would take for a formula are prefixed with a quote.
"""

import csv
import datetime
import io
import json

from linksync.server.web import alerts as alerts_module

FORMATS = {'csv': b'text/csv; charset=utf-8',
           'json': b'application/json'}
FIELDS = ('url', 'state', 'reason', 'since', 'last_check')


def iso8601(timestamp):
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(
        timestamp, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def problem_rows(read, client_id):
    """Every row of the client's alerts, through read(func, *args) (a
    session's read, one per page); None for an unknown client."""
    rows = []
    after = None
    while True:
        data = read(alerts_module.alerts, client_id, after)
        if data is None:
            return None
        rows.extend({'url': r['url'], 'state': r['state'],
                     'reason': r['reason'], 'since': iso8601(r['since']),
                     'last_check': iso8601(r['last_check'])}
                    for r in data['rows'])
        if data['after'] is None:
            return rows
        after = alerts_module.parse_after(data['after'])


def _cell(value):
    value = '' if value is None else str(value)
    if value[:1] in ('=', '+', '-', '@', '\t', '\r'):
        return "'" + value
    return value


def as_csv(rows):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator='\r\n')
    writer.writerow(FIELDS)
    for row in rows:
        writer.writerow([_cell(row[f]) for f in FIELDS])
    return out.getvalue().encode('utf-8')


def as_json(client_id, rows):
    return json.dumps({'client': client_id, 'links': rows},
                      ensure_ascii=False, indent=1).encode('utf-8')
