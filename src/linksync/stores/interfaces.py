"""The interfaces of stores and the Synchronizer."""

from zope.interface import Attribute, Interface


# -- Stores and the Synchronizer (linksync.stores) --------------------------

class IData(Interface):
    """One datum of a store: the fields every type has, and its own."""

    id = Attribute("The id (str), unique among the data of its type in a "
                   "store; None until the datum is added somewhere.")
    name = Attribute("A human name (str); data of other stores are matched "
                     "by it when their ids differ.")
    description = Attribute("Free text ('' by default).")
    created = Attribute("Epoch seconds of the creation, or None.")
    updated = Attribute("Epoch seconds of the last change, or None.")
    store = Attribute("The IStore the datum was read from or saved to.")
    dirty = Attribute("True when the datum has unsaved changes.")

    def record():
        """Every field as a plain dict (a copy)."""

    def changes():
        """{field: (saved value, current value)} of the unsaved changes."""

    def rollback():
        """Take back the unsaved changes."""

    def save():
        """Add or update the datum in its store."""


class IAccessor(Interface):
    """One data type in one store: what a new backend writes.

    Records are plain dicts holding ``id``, ``name``, ``description``,
    ``created``, ``updated`` and the fields of the type.
    """

    store = Attribute("The IStore this accessor works for.")
    data_type = Attribute("The IData class it holds.")
    enumerable = Attribute("False when find() needs a name (the store "
                           "cannot list all its data).")
    fields = Attribute("The fields this store keeps (a tuple).")
    owned = Attribute("Fields the store decides itself: written by nobody "
                      "else, and winning over other stores' values.")

    def create(**values):
        """A new IData of the type, bound to the store, not saved yet."""

    def get(id):
        """The record with that id, or None."""

    def find(name=None, **fields):
        """The records with that name and field values (all without any)."""

    def add(record):
        """Store a new record; AlreadyExists when its id is taken."""

    def update(record):
        """Replace the record of the same id; NotFound when there is none."""

    def remove(id):
        """Remove the record with that id; NotFound when there is none."""


class IStoreEvent(Interface):
    """What a store tells its observers, in lists (one list a write)."""

    action = Attribute("'added', 'updated' or 'removed'.")
    store = Attribute("The IStore that changed.")
    data = Attribute("The IData as it is now (as it was, when removed).")
    old = Attribute("The IData before an update, or None when unknown.")
    origin = Attribute("Who made the change through the store's methods "
                       "(a Synchronizer passes itself), or None.")


class IStore(Interface):
    """A set of data, reached through one IAccessor per data type.

    The write methods return their result, or a Deferred of it when the
    store works over the network with a Twisted client.
    """

    name = Attribute("A name for messages.")
    types = Attribute("The IData classes it holds.")
    connected = Attribute("True between connect() and disconnect().")

    def connect():
        """Open files and connections."""

    def disconnect():
        """Close them; the data stay where they are."""

    def observe(observer):
        """Call observer(events) with a list of IStoreEvent after writes."""

    def unobserve(observer):
        """Stop calling it."""

    def get(data_type, id):
        """The IData with that id, or None."""

    def find(data_type, name=None, **fields):
        """The IData with that name and field values."""

    def add(data, origin=None):
        """Add a new datum; returns it (with its id)."""

    def update(data, origin=None):
        """Save the changes of a datum."""

    def remove(data, origin=None):
        """Remove a datum."""

    def put(data, origin=None, names=()):
        """Add or update, matching by id, else by name: 'added',
        'updated', or None when nothing had to change."""

    def delete(data, origin=None, names=()):
        """Remove the matching datum: 'removed', or None if none."""


class ISynchronizer(Interface):
    """Propagates every add, update and remove among several stores."""

    stores = Attribute("The IStore objects, in order of precedence.")
    pending = Attribute("The propagations not made yet (failed ones "
                        "first, with their error and attempts).")

    def sync():
        """Make all stores agree now; a SyncReport (or a Deferred of it)."""

    def retry():
        """Try the failed propagations again now."""

    def settled():
        """A Deferred firing when no propagation is under way."""

    def close():
        """Stop observing the stores and retrying."""
