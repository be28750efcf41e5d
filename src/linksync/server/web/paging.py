"""Pages of a long list: a range of a BTree, resumed after the last key.

Lists on the pages never count or skip entries ("page 7" would walk the
six pages before it); each page ends with the key to resume after, which
the next page's link carries.

>>> page_of(iter('abcde'), 2)
(['a', 'b'], 'b')
>>> page_of(iter('ab'), 2)
(['a', 'b'], None)
"""

import itertools


def page_of(keys, limit):
    """(the first `limit` of `keys`, the key to resume after, or None when
    nothing is left)."""
    keys = list(itertools.islice(keys, limit + 1))
    if len(keys) > limit:
        return keys[:limit], keys[limit - 1]
    return keys, None
