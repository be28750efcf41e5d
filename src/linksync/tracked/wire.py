"""Structures as JSON text for the network, and their checksums.

JSON carries dicts with string keys, lists, strings, numbers, booleans and
null. Everything else a tracked structure may hold is a one-key object
whose key starts with ``$``:

* ``{"$tuple": [...]}``, ``{"$set": [...]}``, ``{"$frozenset": [...]}``;
* ``{"$dict": [[key, value], ...]}``: a dict with a key that is not a
  string, or a string key starting with ``$``;
* ``{"$bytes": "base64"}``;
* ``{"$member": element}``: a path step naming an element of a set.

Any other object with a ``$`` key is refused, as is a value of another
type: :class:`WireError` names the problem.

The checksum of a structure is the SHA-256 of its canonical encoding (dict
keys and set elements sorted), the same on every device for equal data.

>>> text = dumps({'a': (1, 2), 3: {'x'}})
>>> text
'{"$dict":[["a",{"$tuple":[1,2]}],[3,{"$set":["x"]}]]}'
>>> loads(text)
{'a': (1, 2), 3: {'x'}}
>>> checksum({'b': 1, 'a': 2}) == checksum({'a': 2, 'b': 1})
True
"""

import base64
import binascii
import hashlib
import json

from linksync.tracked.changes import Member
from linksync.tracked.values import kind


class WireError(ValueError):
    """A value cannot be sent, or a message cannot be read."""


def encode(value, canonical=False):
    """`value` as JSON-able data (see the module documentation)."""
    cls = type(value)
    if value is None or cls in (str, bool, int, float):
        return value
    if cls is tuple:
        return {'$tuple': [encode(v, canonical) for v in value]}
    if cls is frozenset:
        return {'$frozenset': _elements(value, canonical)}
    if cls is bytes:
        return {'$bytes': base64.b64encode(value).decode('ascii')}
    if cls is Member:
        return {'$member': encode(value.element, canonical)}
    what = kind(value)
    if what == 'list':
        return [encode(v, canonical) for v in value]
    if what == 'set':
        return {'$set': _elements(value, canonical)}
    if what == 'dict':
        if all(type(k) is str and k[:1] != '$' for k in value):
            return {k: encode(v, canonical) for k, v in value.items()}
        pairs = [[encode(k, canonical), encode(v, canonical)]
                 for k, v in value.items()]
        if canonical:
            pairs.sort(key=lambda pair: _text(pair[0]))
        return {'$dict': pairs}
    raise WireError('cannot send a value of type %s' % cls.__name__)


def _elements(values, canonical):
    encoded = [encode(v, canonical) for v in values]
    if canonical:
        encoded.sort(key=_text)
    return encoded


def _text(encoded):
    return json.dumps(encoded, sort_keys=True, separators=(',', ':'))


_TAGS = {
    '$tuple': lambda v: tuple(_list(v)),
    '$set': lambda v: set(_list(v)),
    '$frozenset': lambda v: frozenset(_list(v)),
    '$dict': lambda v: dict(_pair(p) for p in _list(v)),
    '$bytes': lambda v: _bytes(v),
    '$member': lambda v: Member(decode(v)),
}


def _list(value):
    if type(value) is not list:
        raise WireError('expected an array, got %s' % type(value).__name__)
    return [decode(v) for v in value]


def _pair(value):
    if type(value) is not list or len(value) != 2:
        raise WireError('a $dict item must be a [key, value] pair')
    return decode(value[0]), decode(value[1])


def _bytes(value):
    if type(value) is not str:
        raise WireError('$bytes must be a base64 string')
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as e:
        raise WireError('bad base64 in $bytes: %s' % e) from None


def decode(data):
    """The value `data` (decoded JSON) stands for."""
    cls = type(data)
    if cls is list:
        return [decode(v) for v in data]
    if cls is dict:
        tagged = [k for k in data if k[:1] == '$']
        if tagged:
            if len(data) != 1 or tagged[0] not in _TAGS:
                raise WireError('unknown tagged object %s' % _text(
                    sorted(data))[:80])
            try:
                return _TAGS[tagged[0]](data[tagged[0]])
            except TypeError as e:  # unhashable set element or dict key
                raise WireError('bad %s: %s' % (tagged[0], e)) from None
        return {k: decode(v) for k, v in data.items()}
    return data


def dumps(value):
    """`value` as compact JSON text."""
    return json.dumps(encode(value), separators=(',', ':'))


def loads(text):
    """The value of JSON text made by dumps(); WireError when it is not."""
    try:
        return decode(json.loads(text))
    except WireError:
        raise
    except RecursionError:
        raise WireError('nested too deeply') from None
    except ValueError as e:
        raise WireError('not JSON: %s' % e) from None


def checksum(value):
    """The SHA-256 (hex) of the canonical encoding of `value`."""
    text = json.dumps(encode(value, canonical=True), sort_keys=True,
                      separators=(',', ':'))
    return hashlib.sha256(text.encode('utf-8')).hexdigest()
