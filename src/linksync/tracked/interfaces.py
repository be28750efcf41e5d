"""The interfaces of tracked structures: trackers, changes, backends and
device sync."""

from zope.interface import Attribute, Interface


# -- Tracked structures (linksync.tracked) -----------------------------------

class ITracker(Interface):
    """The state shared by the wrappers of one tracked structure."""

    root = Attribute("The tracked structure track() returned.")
    name = Attribute("The name given to track() (names the file too).")
    callback = Attribute("Called with each Change (a list for a block).")
    backend = Attribute("The ITrackedBackend saving it, or None.")
    lock = Attribute("The re-entrant lock every change takes.")

    def begin():
        """Open a transaction (what ``with tracked:`` calls)."""

    def end(ok):
        """Close it: commit when `ok`, else take its changes back."""

    def undo():
        """Take the last change back; False when there is none."""

    def redo():
        """Make the last undone change again; False when there is none."""

    def save():
        """Write the whole structure to its backend now."""

    def close():
        """Release the backend."""


class IChange(Interface):
    """One change of a tracked structure, as a callback receives it."""

    root = Attribute("The tracked structure.")
    name = Attribute("Its name.")
    path = Attribute("Keys and indexes from the root to the changed part "
                     "(a list; [] is the root).")
    func_name = Attribute("The method that made the change ('append', "
                          "'__setitem__', ...).")
    args = Attribute("Its positional arguments (as stored).")
    kwargs = Attribute("Its keyword arguments.")
    target = Attribute("The part of the structure that changed.")


class ITrackedBackend(Interface):
    """Where a tracked structure is saved."""

    path = Attribute("The file (for messages).")
    lazy = Attribute("True when values are loaded on first use.")

    def open(tracker, default):
        """The root for `tracker`: loaded when saved before, else
        `default` wrapped and saved. Raises TrackedFileError for a file it
        cannot read (and leaves the file as it is)."""

    def save(root, changes):
        """Save after `changes` (None: everything)."""

    def close():
        """Release files and connections."""


class ISyncHub(Interface):
    """Serves tracked structures to devices over XML-RPC."""

    device_id = Attribute("The id of the hub as a device (conflict rule).")

    def add(tracked):
        """Serve `tracked` under its tracker's name."""

    def resource():
        """The XML-RPC resource (tracked.sync)."""

    def listen(endpoint, reactor=None):
        """Listen on a Twisted endpoint description; Deferred port."""


class ISyncDevice(Interface):
    """Keeps one tracked structure in sync with a hub."""

    device_id = Attribute("The id of this device (conflict rule).")

    def sync():
        """Run one sync cycle; a Deferred firing when it is done."""

    def start(interval):
        """Sync every `interval` seconds (on the injected clock)."""

    def stop():
        """Stop syncing periodically."""
