"""The formats a tracked structure is saved in, by name.

``track(obj, name, persist=NAME)`` saves to ``NAME.EXT`` in the format
named here; :func:`backend_for` turns what ``persist`` says into a
backend.
"""

from linksync.tracked.interfaces import ITrackedBackend
from linksync.tracked.persistence import (
    FullYAMLFile, JSONFile, PickleFile, SafeYAMLFile)
from linksync.tracked.shelf import ShelveBackend
from linksync.tracked.zodbbackend import ZODBBackend

#: The formats by name: persist=NAME saves to NAME + extension.
FORMATS = {
    'yaml': SafeYAMLFile,
    'json': JSONFile,
    'full-yaml': FullYAMLFile,
    'pickle': PickleFile,
    'shelve': ShelveBackend,
    'zodb': ZODBBackend,
}


def backend_for(persist, name):
    """The backend `track(persist=..., name=...)` asks for (or None)."""
    if persist is False or persist is None:
        return None
    if persist is True:
        return None if name is None else SafeYAMLFile.for_name(name)
    if isinstance(persist, str):
        factory = FORMATS.get(persist)
        if factory is None:
            raise ValueError('unknown format %r; the formats are %s' % (
                persist, ', '.join(sorted(FORMATS))))
        if name is None:
            raise ValueError('a structure saved as %s needs a name (it '
                             'names the file)' % persist)
        return factory.for_name(name)
    if ITrackedBackend.providedBy(persist):
        return persist
    raise TypeError('persist must be True, False, a format name or a '
                    'backend, not %r' % (persist,))
