"""The application root stored in the database.

The root is a site in the Zope component sense: its local registry holds the
persistent utilities (IURLProvider, IClientProvider, ...), so that code
running on a database connection finds them with zope.component once
linksync.server.database has set the site for that connection.
"""

import persistent
import zope.component
from zope.component.persistentregistry import PersistentComponents

from linksync.server.interfaces import IRootParts
from linksync.server.model.generations import GENERATION

#: The key of the application in the ZODB root mapping.
ROOT_KEY = 'linksync'


class LinkSync(persistent.Persistent):
    """The root of everything the server stores."""

    #: The generation of the stored data (linksync.server.model.generations);
    #: a database of the versions before generations has none: 0.
    generation = 0

    def __init__(self):
        self._sm = PersistentComponents(
            name='linksync', bases=(zope.component.getGlobalSiteManager(),))

    def getSiteManager(self):
        return self._sm

    def __repr__(self):
        return '<LinkSync application>'


def get_app(connection):
    """The application of an open ZODB connection (None before set-up)."""
    return connection.root().get(ROOT_KEY)


def ensure_app(connection):
    """Create the application, or add the parts it lacks; returns it.

    The caller commits.
    """
    parts = zope.component.queryUtility(IRootParts)
    if parts is None:
        raise LookupError('the parts of the application are not registered:'
                          ' call linksync.server.configure.configure() first')
    root = connection.root()
    app = root.get(ROOT_KEY)
    if app is None:
        app = root[ROOT_KEY] = LinkSync()
        app.generation = GENERATION     # new: nothing to bring up
    parts.install(app)
    return app
