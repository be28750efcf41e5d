"""What a tracked structure is made of: which values are containers, and
plain copies of them."""

from collections.abc import MutableMapping, MutableSequence, MutableSet

from linksync.tracked.wrappers import (
    ATOMIC, DictWrapper, LazyDictWrapper, ListWrapper, SetWrapper)

_NOT_WRAPPED = (bytearray,)
try:
    import array
    _NOT_WRAPPED += (array.array,)
except ImportError:  # pragma: no cover
    pass


def kind(value):
    """'dict', 'list' or 'set' for the containers a structure tracks."""
    if isinstance(value, (dict, MutableMapping)):
        return 'dict'
    if isinstance(value, (list, MutableSequence)) and \
            not isinstance(value, _NOT_WRAPPED):
        return 'list'
    if isinstance(value, (set, MutableSet)):
        return 'set'
    return None


def plain_copy(value, memo=None):
    """A copy of `value` made of plain dicts, lists and sets.

    Containers are copied at every depth (wrapped or not); other values are
    shared, not copied.
    """
    cls = type(value)
    if cls in ATOMIC:
        return value
    if cls is LazyDictWrapper:
        items = value.items()
    elif cls is dict or cls is DictWrapper:
        items = dict.items(value)
    elif cls is list or cls is ListWrapper:
        items = None
    elif cls is set or cls is SetWrapper:
        return set(value)
    else:
        what = kind(value)
        if what is None:
            return value
        if what == 'set':
            return set(value)
        items = value.items() if what == 'dict' else None
    if memo is None:
        memo = {}
    seen = memo.get(id(value))
    if seen is not None:
        return seen[1]
    if items is None:
        result = []
        memo[id(value)] = (value, result)
        for item in value:
            result.append(item if type(item) in ATOMIC
                          else plain_copy(item, memo))
    else:
        result = {}
        memo[id(value)] = (value, result)
        for k, v in items:
            result[k] = v if type(v) in ATOMIC else plain_copy(v, memo)
    return result
