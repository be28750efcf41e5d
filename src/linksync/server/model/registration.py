"""Registering and unregistering a client's URLs given as text.

This is what the XML-RPC API and the syncer call: it normalises the text,
adds new URLs to the URL provider, keeps the client's own spellings (so that
states are reported back under the exact string the client sent) and fires
the registration events.
"""

import zope.component

from linksync import urlnorm
from linksync.server.interfaces import IURLProvider


def register(client, urls, now=None):
    """Register the URL strings `urls` for `client`.

    Invalid URLs are skipped; spellings that normalise to the same URL
    register it once. Returns a list of (spelling, URL object) for every
    distinct valid spelling, in the order given.
    """
    normalized = urlnorm.normalize_many(urls)
    objects = register_normalized(client, normalized, now,
                                  add_spellings=True)
    result = []
    for spellings, url in zip(normalized.values(), objects):
        result.extend((spelling, url) for spelling in spellings)
    return result


def register_normalized(client, normalized, now=None, add_spellings=False):
    """Register the normalised URLs for `client` as one batch.

    `normalized` maps each normalised URL to the client's spellings of it
    (an ordered mapping, as from urlnorm.normalize_many). The spellings
    of a URL the client had already replace those known, or are added to
    them with `add_spellings`. Returns the URL objects, in order.

    The URLs are added first, then the new ones registered: the events of
    each step fire together (see events.notify_all), and the records of a
    batch form one family in the change track.
    """
    provider = zope.component.getUtility(IURLProvider)
    objects = provider.add_many_normalized(normalized, now)
    has_url = client.has_url
    known = [has_url(norm) for norm in normalized]
    client.register_urls([url for url, had in zip(objects, known)
                          if not had], now)
    for (norm, spellings), had in zip(normalized.items(), known):
        if had and add_spellings:
            client.add_spellings(norm, spellings)
        else:
            client.set_spellings(norm, spellings)
    return objects


def unregister(client, urls, now=None):
    """Unregister the URL strings `urls` for `client`.

    A spelling the client used is forgotten, and the URL is unregistered
    when the client has no spelling of it left; any other spelling of a
    registered URL unregisters the URL. Unknown and invalid URLs are
    ignored (but a URL without a host that an earlier version stored is
    found: urlnorm.normalize_previous). Returns the URL objects that were unregistered.
    """
    doomed = []
    for norm, spellings in urlnorm.normalize_many(urls, stored=True).items():
        url = client.get_url(norm)
        if url is None:
            continue
        known = set(client.spellings(norm))
        if not known.intersection(spellings):
            gone = True
        else:
            gone = False
            for spelling in spellings:
                if spelling in known:
                    gone = client.remove_spelling(norm, spelling)
        if gone:
            doomed.append(url)
    # All at once: their events fire together (see events.notify_all).
    return client.unregister_urls(doomed, now)
