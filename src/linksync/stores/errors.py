"""The errors of stores and of the Synchronizer."""


class StoreError(Exception):
    """A store cannot do what was asked; the message says why."""


class NotConnected(StoreError):
    """The store is not connected (call connect() first)."""


class NotFound(StoreError):
    """No datum with that id (update, remove)."""


class AlreadyExists(StoreError):
    """A datum with that id is there already (add)."""


class Unsupported(StoreError):
    """The store cannot do this at all (a remote store listing all)."""


class StoreUnavailable(StoreError):
    """The store cannot be reached now; the same call may work later."""
