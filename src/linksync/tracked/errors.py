"""The errors of tracked structures."""


class TrackedError(Exception):
    """A tracked structure cannot do what was asked; the message says why."""


class TrackedFileError(TrackedError):
    """A file cannot be read: it names the file and the position."""

    def __init__(self, path, position, problem):
        self.path = path
        self.position = position
        self.problem = problem
        where = '%s: %s' % (path, position) if position else str(path)
        super().__init__('cannot load %s: %s (the file was left as it is)'
                         % (where, problem))


class TrackedSaveError(TrackedError):
    """A change could not be saved; it was taken back."""
