"""The Multi-Pointer Track: change records in time buckets, read by
pointers (``mpt``), and the containers of one bucket's records
(``records``)."""

from linksync.track.errors import EmptyTrackError
from linksync.track.mpt import MultiPointerTrack, SetMultiPointerTrack
from linksync.track.records import (
    ActionWrapper, RecordGroups, RecordLog, RecordRun, RecordSet, object_key)

__all__ = ['ActionWrapper', 'EmptyTrackError', 'MultiPointerTrack',
           'RecordGroups', 'RecordLog', 'RecordRun', 'RecordSet',
           'SetMultiPointerTrack', 'object_key']
