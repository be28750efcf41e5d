"""Data: what stores hold and synchronizers carry.

A data type is a subclass of :class:`Data` naming its own fields (with
their defaults) in ``fields``, and its ``type_name`` (what backends call
its collection: a table, a key of a file). Every datum also has the fields
all types share: ``id``, ``name``, ``description``, ``created`` and
``updated``.

>>> class Note(Data):
...     type_name = 'notes'
...     fields = {'text': '', 'tags': ()}
>>> note = Note(name='shopping', text='milk')
>>> note.text, note.dirty
('milk', True)

A datum read from a store is clean; changes make it dirty until it is
saved, and can be taken back:

>>> note = Note.from_record({'id': 'n1', 'name': 'shopping', 'text': 'milk'})
>>> note.text = 'milk, eggs'
>>> note.changes()
{'text': ('milk', 'milk, eggs')}
>>> note.rollback()
>>> note.text, note.dirty
('milk', False)

Fields a type does not have are refused:

>>> note.colour = 'red'
Traceback (most recent call last):
...
AttributeError: a Note has no field 'colour' (its fields: id, name, description, created, updated, text, tags)
"""

import copy
import uuid

from zope.interface import implementer

from linksync.stores.interfaces import IData
from linksync.stores.errors import StoreError

#: The fields of every datum, in this order.
BASE_FIELDS = ('id', 'name', 'description', 'created', 'updated')
_BASE_DEFAULTS = {'id': None, 'name': None, 'description': '',
                  'created': None, 'updated': None}


@implementer(IData)
class Data:
    """A datum: the shared fields, the type's own, and unsaved changes."""

    #: The name of the type's collection in a store (a table, a key).
    type_name = 'data'
    #: The type's own fields: {name: default}.
    fields = {}

    def __init__(self, store=None, **values):
        defaults = self.defaults()
        unknown = [k for k in values if k not in defaults]
        if unknown:
            raise TypeError('a %s has no field %r (its fields: %s)' % (
                type(self).__name__, unknown[0], ', '.join(defaults)))
        defaults.update(values)
        object.__setattr__(self, '_values', defaults)
        object.__setattr__(self, '_saved', None)
        object.__setattr__(self, 'store', store)

    @classmethod
    def field_names(cls):
        """Every field of the type, the shared ones first."""
        return BASE_FIELDS + tuple(cls.fields)

    @classmethod
    def defaults(cls):
        values = dict(_BASE_DEFAULTS)
        values.update(copy.deepcopy(cls.fields))
        return values

    @classmethod
    def from_record(cls, record, store=None):
        """A clean datum holding `record` (a dict of fields).

        Missing fields take their defaults; a field the type lacks is a
        StoreError (a record written by hand with a typo, say).
        """
        unknown = [k for k in record if k not in cls.defaults()]
        if unknown:
            raise StoreError('the %s %r has a field %r that a %s does not '
                             'have' % (cls.type_name, record.get('id'),
                                       unknown[0], cls.__name__))
        data = cls(store=store, **copy.deepcopy(record))
        data._mark_saved()
        return data

    @classmethod
    def new_id(cls, data):
        """The id of a datum added without one (a random one; subtypes
        may derive it from the datum)."""
        return uuid.uuid4().hex

    # -- fields ---------------------------------------------------------------

    def __getattr__(self, name):
        values = self.__dict__.get('_values')
        if values is not None and name in values:
            return values[name]
        raise AttributeError(name)

    def __setattr__(self, name, value):
        if name == 'store':
            object.__setattr__(self, name, value)
            return
        if name not in self._values:
            raise AttributeError('a %s has no field %r (its fields: %s)' % (
                type(self).__name__, name, ', '.join(self._values)))
        self._values[name] = value

    def record(self):
        """Every field, as a plain dict (a deep copy)."""
        return copy.deepcopy(self._values)

    def copy(self, store=None):
        """A clean copy holding the same fields."""
        return type(self).from_record(self._values, store)

    # -- unsaved changes ------------------------------------------------------

    @property
    def dirty(self):
        return self._saved is None or self._saved != self._values

    def changes(self):
        """{field: (saved value, current value)} for the changed fields
        (every field, saved as None, for a datum never saved)."""
        saved = self._saved or {}
        return {k: (saved.get(k), v) for k, v in self._values.items()
                if self._saved is None or saved.get(k) != v}

    def rollback(self):
        """Put the fields back as they were last saved."""
        if self._saved is None:
            raise StoreError('this %s was never saved: there is nothing to '
                             'go back to' % type(self).__name__)
        object.__setattr__(self, '_values', copy.deepcopy(self._saved))

    def _mark_saved(self, record=None):
        if record is not None:
            object.__setattr__(self, '_values', copy.deepcopy(record))
        object.__setattr__(self, '_saved', copy.deepcopy(self._values))

    def save(self):
        """Add the datum to its store, or update it there."""
        if self.store is None:
            raise StoreError('this %s belongs to no store: give it to a '
                             "store's add()" % type(self).__name__)
        return self.store.save(self)

    def delete(self):
        """Remove the datum from its store."""
        if self.store is None:
            raise StoreError('this %s belongs to no store'
                             % type(self).__name__)
        return self.store.remove(self)

    # -- comparing and showing ------------------------------------------------

    def __eq__(self, other):
        if not isinstance(other, Data):
            return NotImplemented
        return type(other) is type(self) and other._values == self._values

    __hash__ = None

    def __repr__(self):
        return '<%s %r%s>' % (type(self).__name__, self.name,
                              '' if self.id in (None, self.name)
                              else ' id=%r' % self.id)


class Link(Data):
    """A link of a client's link database: its URL and its state.

    The name is the URL (as the client spells it); so is the id, so that a
    link is the same datum in every store, the linksync server included.
    ``state`` is a state of PROTOCOL.md (``unknown`` until the server says
    otherwise), ``reason`` the server's short explanation.
    """

    type_name = 'links'
    fields = {'state': 'unknown', 'reason': ''}

    @classmethod
    def new_id(cls, data):
        if not data.name:
            raise StoreError('a link needs its URL as its name')
        return data.name
