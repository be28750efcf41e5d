"""The states a URL can be in, as they travel on the wire (PROTOCOL.md)."""

import datetime

OK = 'ok'
TEMPORARY = 'temporary unavailable'
UNAVAILABLE = 'unavailable'
UNSUPPORTED = 'unsupported protocol'
#: Sent for a URL that was registered but not checked yet; never stored.
UNKNOWN = 'unknown'

#: The states a check can store.
STATES = (OK, TEMPORARY, UNAVAILABLE, UNSUPPORTED)


def wire_state(state):
    """The state to send for a stored state (None means never checked)."""
    return UNKNOWN if state is None else state


def iso8601(timestamp):
    """Epoch seconds as ISO 8601 UTC text ('' for None)."""
    if timestamp is None:
        return ''
    return datetime.datetime.fromtimestamp(
        timestamp, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
