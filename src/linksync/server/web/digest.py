"""Unsubscribing from the daily digest: ``/digest/unsubscribe``.

Each digest e-mail carries a link signed for its client (and the
``List-Unsubscribe`` headers of RFC 2369 and RFC 8058, so a mail program's
own "unsubscribe" button works in one click, by POST). Opening the link
shows one button; a mail scanner that fetches the link unsubscribes nobody,
since only a POST does. The page confirms with a button to subscribe
again. The signature is the only credential: no login, no cookie; a link
signed for one client opens nothing else and expires after
:data:`UNSUBSCRIBE_LIFETIME`.
"""

import urllib.parse

from linksync.server.web.access import Signer, derive_key
from linksync.server.web.markup import render

#: The page of the unsubscribe links.
UNSUBSCRIBE_PATH = '/digest/unsubscribe'
#: How long an unsubscribe link is valid (seconds).
UNSUBSCRIBE_LIFETIME = 400 * 86400


def unsubscribe_signer(secret):
    """The signer of the unsubscribe links of a server's secret."""
    return Signer(derive_key(secret, 'digest unsubscribe'))


def unsubscribe_url(public_url, signer, client_id, now):
    """The link that stops `client_id`'s digest."""
    query = urllib.parse.urlencode({
        'client': client_id,
        'token': signer.sign(client_id, now + UNSUBSCRIBE_LIFETIME)})
    return '%s%s?%s' % (public_url.rstrip('/'), UNSUBSCRIBE_PATH, query)


def _button(client_id, token, action, label):
    return render(
        '<form method="post" action="{}"><input type="hidden" name="client" '
        'value="{}"><input type="hidden" name="token" value="{}">'
        '<input type="hidden" name="action" value="{}"><button '
        'class="primary" type="submit">{}</button></form>', UNSUBSCRIBE_PATH,
        client_id, token, action, label)


def render_question(client_id, token, subscribed):
    """The page the link opens: one button."""
    if subscribed:
        return render(
            '<h1>Daily digest of {}</h1><section><p>Stop the daily e-mail '
            'of what broke and recovered among the links of {}?</p>{}'
            '</section>', client_id, client_id,
            _button(client_id, token, 'unsubscribe', 'Unsubscribe'))
    return render_done(client_id, token, False)


def render_done(client_id, token, subscribed):
    """The page after the button: what holds now, and the way back."""
    if subscribed:
        return render(
            '<h1>Daily digest of {}</h1><section><p role="status">The daily '
            'digest of {} is on again.</p>{}</section>', client_id,
            client_id, _button(client_id, token, 'unsubscribe',
                               'Unsubscribe'))
    return render(
        '<h1>Daily digest of {}</h1><section><p role="status">Unsubscribed: '
        'no more digest e-mail for {}.</p>{}</section>', client_id,
        client_id, _button(client_id, token, 'subscribe',
                           'Subscribe again'))
