"""The errors of the SyncManager and its agents."""

import logging



log = logging.getLogger(__name__)


class AgentError(Exception):
    """A bad agent operation (duplicate name, bad option); says why."""


class UnknownAgent(AgentError, LookupError):
    """No agent of that name."""

    def __init__(self, aid):
        super().__init__('no agent %r' % (aid,))
        self.aid = aid


class UploadError(Exception):
    """An upload failed after its retries; `uploaded` were accepted."""

    def __init__(self, message, uploaded=0):
        super().__init__(message)
        self.uploaded = uploaded
