"""The lock file of a link database: who has it open.

``linksync client serve`` holds the lock of its database (``FILE.lock``)
while it runs and writes in it where it answers (its process id, its
XML-RPC URL, the client id and the key of its local methods; the file is
the owner's alone, mode 0600). The other ``linksync client`` commands that change the
database take the lock for the time of their change; when a server of the
client holds it, they ask that process to make the change instead, so
that two processes never write the same file (the second one would
overwrite what the first one saved).

The lock is ``flock(2)``: the system releases it when the process ends,
however it ends; a lock file left behind locks nothing.
"""

import fcntl
import json
import os


class DatabaseLock:
    """The lock file next to the database at `db_path`."""

    def __init__(self, db_path):
        self.path = os.fspath(db_path) + '.lock'
        self.fd = None

    def acquire(self):
        """Take the lock; False (without waiting) when it is held."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def write(self, **info):
        """Say who holds the lock (pid, url, ...)."""
        data = json.dumps(dict(info, pid=os.getpid())).encode('utf-8')
        # Only the owner reads it (a file made earlier may have other bits).
        os.fchmod(self.fd, 0o600)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)
        os.fsync(self.fd)

    def read(self):
        """What the holder wrote ({} when nothing)."""
        try:
            with open(self.path, 'rb') as f:
                return json.loads(f.read() or b'{}')
        except (OSError, ValueError):
            return {}

    def release(self):
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.ftruncate(fd, 0)
            os.close(fd)       # closing releases the lock

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
