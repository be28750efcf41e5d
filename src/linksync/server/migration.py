"""Old databases: where the classes and interfaces they name live now.

A ZODB record names the class of its object, and the interfaces of the
local registry, by module and name. Databases written before the code was
grouped into layers (``linksync.model.URL``, ``linksync.agents.SyncManager``,
``linksync.interfaces.IURLProvider``, ...) name modules that no longer
exist; :func:`class_factory`, the database's ``classFactory``, finds them in
their new homes. An object written again is stored under its new name, so
a database moves to the new names as it is used, and nothing has to be
converted in one go.

>>> class_factory(None, 'linksync.model', 'URL')
<class 'linksync.server.model.url.URL'>
>>> class_factory(None, 'linksync.schedule', 'Schedule')
<class 'linksync.server.model.due.Schedule'>
>>> class_factory(None, 'linksync.interfaces', 'IURLProvider')
<InterfaceClass linksync.server.interfaces.IURLProvider>
>>> class_factory(None, 'linksync.server.model.client', 'Client')
<class 'linksync.server.model.client.Client'>
"""

from ZODB.broken import find_global

#: Modules moved whole: old name -> new name.
MODULES = {
    'linksync.app': 'linksync.server.model.root',
    'linksync.exporters': 'linksync.server.exporters',
    'linksync.notifier': 'linksync.server.notifier',
    'linksync.problems': 'linksync.server.model.problems',
    'linksync.providers': 'linksync.server.model.providers',
    'linksync.schedule': 'linksync.server.model.due',
    'linksync.statecounts': 'linksync.server.model.statecounts',
}

#: Modules split in parts: old name -> (name -> new module); a name not
#: listed is in the module given for None.
NAMES = {
    'linksync.model': {
        None: 'linksync.server.model.url',
        'Client': 'linksync.server.model.client',
        'Notifications': 'linksync.server.model.client',
        'Synchronization': 'linksync.server.model.client',
    },
    'linksync.agents': {
        None: 'linksync.agents.agent',
        'SyncManager': 'linksync.agents.manager',
        'Watermark': 'linksync.agents.manager',
        'SetMultiPointerTrack': 'linksync.track.mpt',
        'ActionWrapper': 'linksync.track.records',
    },
    'linksync.track': {
        None: 'linksync.track.records',
        'MultiPointerTrack': 'linksync.track.mpt',
        'SetMultiPointerTrack': 'linksync.track.mpt',
    },
    # Every interface: linksync.interfaces re-exports them all.
    'linksync.interfaces': {None: 'linksync.interfaces'},
}


def new_location(module, name):
    """The (module, name) that an old database's (module, name) means."""
    if module in MODULES:
        return MODULES[module], name
    parts = NAMES.get(module)
    if parts is not None:
        return parts.get(name, parts[None]), name
    return module, name


def class_factory(connection, module, name):
    """ZODB's classFactory: the class (or global) a record names."""
    return find_global(*new_location(module, name))
