"""Every interface of linksync, for readers and old databases.

Each layer keeps its interfaces beside it (``linksync.tracked.interfaces``,
``linksync.stores.interfaces``, ``linksync.agents.interfaces``,
``linksync.client.interfaces``, ``linksync.server.interfaces``); this module
only re-exports them. Lower layers import their own, never this module,
which loads the server's.
"""

from linksync.tracked.interfaces import (  # noqa: F401
    IChange,
    ISyncDevice,
    ISyncHub,
    ITrackedBackend,
    ITracker)
from linksync.stores.interfaces import (  # noqa: F401
    IAccessor,
    IData,
    IStore,
    IStoreEvent,
    ISynchronizer)
from linksync.agents.interfaces import (  # noqa: F401
    IPushSyncAgent,
    ISyncAgent,
    ISyncManager)
from linksync.client.interfaces import (  # noqa: F401
    ILMSClient,
    ILinkDatabase)
from linksync.server.interfaces import (  # noqa: F401
    IChecker,
    IClient,
    IClientAddedEvent,
    IClientEvent,
    IClientProvider,
    IClientRemovedEvent,
    IMailer,
    INotifications,
    IProblemIndex,
    ISchedule,
    IStateCounts,
    ISyncResult,
    ISyncer,
    ISynchronization,
    IURL,
    IURLAddedEvent,
    IURLEvent,
    IURLProvider,
    IURLRegisteredEvent,
    IURLRemovedEvent,
    IURLStateChangedEvent,
    IURLUnregisteredEvent,
    IWebAccess)
