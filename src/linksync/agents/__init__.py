"""The SyncManager and its agents: consumers of the change track.

``manager`` holds the SyncManager (the track and the agents' pointers),
``agent`` the agents, ``reduction`` how a window's records reduce to one
change per object, ``runner`` how a push agent is run.
"""

from linksync.agents.agent import PushSyncAgent, RecordUploader, SyncAgent
from linksync.agents.errors import AgentError, UnknownAgent, UploadError
from linksync.agents.manager import SyncManager, get_manager
from linksync.agents.reduction import (
    CREATE_FLAGS, CREATED, DELETE_FLAGS, DELETED, MODIFIED, Change,
    reduce_records)
from linksync.agents.runner import AgentRunner, RunContext, RunResult

__all__ = ['AgentError', 'AgentRunner', 'CREATE_FLAGS', 'CREATED',
           'DELETE_FLAGS', 'Change', 'DELETED',
           'MODIFIED', 'PushSyncAgent', 'RecordUploader', 'RunContext',
           'RunResult', 'SyncAgent', 'SyncManager', 'UnknownAgent',
           'UploadError', 'get_manager', 'reduce_records']
