"""The states a URL can be in, as they travel on the wire (PROTOCOL.md)."""

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
