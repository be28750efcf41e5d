"""The errors of the change track."""




class EmptyTrackError(LookupError):
    """The track holds no bucket."""
