"""Reaching into a structure by path (a sequence of keys and indexes).

A path step is a dict key, a list index, or a :class:`Member` naming an
element of a set (its value is then True or False: the element is there or
not). A step that leads nowhere gives :data:`MISSING`.
"""

from linksync.tracked.changes import MISSING, Member


def get(data, path):
    """The value at `path` in `data`, or MISSING."""
    node = data
    for step in path:
        if type(step) is Member:
            if not isinstance(node, (set, frozenset)):
                return MISSING
            try:
                return step.element in node
            except TypeError:
                return MISSING
        if isinstance(node, dict):
            try:
                node = node[step]
            except (KeyError, TypeError):
                return MISSING
        elif isinstance(node, list):
            if type(step) is not int or not 0 <= step < len(node):
                return MISSING
            node = node[step]
        else:
            return MISSING
    return node


def show(path):
    """A path as people read it: ['endpoint', 'protocol']."""
    return repr([step.element if type(step) is Member else step
                 for step in path])
