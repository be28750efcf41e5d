"""The interfaces of linksync.

Every component of the server declares one of these; the registrations that
tie implementations to them live in :mod:`linksync.configure` and nowhere
else.
"""

from zope.interface import Attribute, Interface
from zope.interface.interfaces import IObjectEvent


# -- The data model ---------------------------------------------------------

class IURL(Interface):
    """A URL the server monitors for one or more clients."""

    url = Attribute("The normalised URL (str); the key of the URL.")
    state = Attribute(
        "The state of the last check (one of linksync.states.STATES), or "
        "None while the URL was never checked.")
    reason = Attribute("Short human text explaining the state ('' if none).")
    last_check = Attribute("Epoch seconds of the last check, or None.")
    last_state_change = Attribute(
        "Epoch seconds when the state last changed, or None.")
    clients = Attribute("frozenset of the ids of the clients that registered "
                        "this URL.")

    def set_result(state, reason, now):
        """Store the outcome of a check made at `now`.

        Returns True when the state changed (the first result of a URL
        counts as a change).
        """


class IClient(Interface):
    """A client application registered with the server."""

    id = Attribute("The client id (str).")
    contact_name = Attribute("Name of the person responsible.")
    contact_email = Attribute("E-mail address of that person.")
    callback_url = Attribute("XML-RPC endpoint of the client (str).")
    urls = Attribute("Iterator over the IURL objects the client registered.")

    def check_password(password):
        """True when `password` is the client's password (constant time)."""

    def set_password(password):
        """Store a salted hash of `password` (never the password itself)."""

    def register_urls(urls, now=None):
        """Register IURL objects for this client; returns the newly added."""

    def unregister_urls(urls, now=None):
        """Unregister IURL objects; returns the ones that were registered."""

    def spellings(url):
        """The spellings the client used for the normalised `url` (tuple)."""


class IURLProvider(Interface):
    """The utility holding every monitored URL, keyed by normalised URL."""

    def add(url, now=None):
        """Return the IURL for `url` (str), creating it when new.

        Raises linksync.urlnorm.InvalidURL for an invalid URL.
        """

    def get(url, default=None):
        """The IURL for `url` (any spelling), or `default`."""

    def remove(url):
        """Remove the URL (it must have no clients left)."""

    def __contains__(url):
        """True when `url` (any spelling) is monitored."""

    def __len__():
        """Number of monitored URLs."""

    def __iter__():
        """Iterate over the IURL objects in URL order."""


class IClientProvider(Interface):
    """The utility holding the registered clients, keyed by id."""

    def add(client):
        """Add an IClient; raises KeyError when the id is taken."""

    def get(client_id, default=None):
        """The client with that id, or `default`."""

    def remove(client_id):
        """Remove the client and unregister all its URLs."""

    def __contains__(client_id):
        """True when a client with that id exists."""

    def __len__():
        """Number of clients."""

    def __iter__():
        """Iterate over the clients in id order."""


class ISynchronization(Interface):
    """How a client's link database is synchronised (an IClient adapter)."""

    last = Attribute("Epoch seconds of the last successful sync, or None.")
    force = Attribute("True when a sync was asked for before it is due.")
    retry_after = Attribute(
        "Epoch seconds before which a failed sync is not retried, or None.")
    last_error = Attribute("Text of the last failure ('' after a success).")

    def is_due(now, interval):
        """True when the client should be synchronised at `now`."""

    def sync():
        """Synchronise this client now; returns a Deferred."""


class INotifications(Interface):
    """The state-change notifications of a client (an IClient adapter)."""

    enabled = Attribute("True while the client wants notifications.")
    last = Attribute("Epoch seconds of the last delivered notification.")
    failed = Attribute("Number of delivery attempts failed in a row.")


class IStateCounts(Interface):
    """The number of URLs in each state, kept up to date (a utility)."""

    def counts():
        """{state: count}, with 'unknown' for URLs never checked."""


# -- Events ----------------------------------------------------------------

class IURLEvent(IObjectEvent):
    """Something happened to a URL (`object` is the IURL)."""


class IURLAddedEvent(IURLEvent):
    """A URL was added to the URL provider."""


class IURLRemovedEvent(IURLEvent):
    """A URL was removed from the URL provider."""


class IURLRegisteredEvent(IURLEvent):
    """A client registered a URL."""

    client = Attribute("The IClient that registered it.")
    now = Attribute("Epoch seconds of the registration, or None.")


class IURLUnregisteredEvent(IURLEvent):
    """A client unregistered a URL."""

    client = Attribute("The IClient that unregistered it.")
    now = Attribute("Epoch seconds of the unregistration, or None.")


class IURLStateChangedEvent(IURLEvent):
    """The state of a URL changed after a check."""

    old_state = Attribute("The previous state (None when never checked).")
    now = Attribute("Epoch seconds of the check.")


# -- The syncer (linksync.syncer) ------------------------------------------

class ISyncer(Interface):
    """Synchronises the clients' link databases with the server's."""

    busy = Attribute("True while a synchronisation runs.")

    def sync():
        """Synchronise every client that is due (PROTOCOL.md).

        Returns a Deferred firing with a list of ISyncResult, one per
        client synchronised.
        """

    def sync_clients(client_ids):
        """Synchronise the named clients now, due or not.

        Returns a Deferred firing with a list of ISyncResult, in order.
        """


class ISyncResult(Interface):
    """What the synchronisation of one client did."""

    client_id = Attribute("The id of the client.")
    status = Attribute("'ok', 'failed' or 'skipped'.")
    error = Attribute("Why it failed or was skipped ('' when ok).")
    links = Attribute("Number of links the client sent.")
    invalid = Attribute("Number of them that were not valid URLs.")
    registered = Attribute("Number of URLs newly registered for it.")
    unregistered = Attribute("Number of its URLs unregistered.")
    kept = Attribute("Number of its URLs it still has.")
    states = Attribute("Number of [url, state, reason] rows sent to it.")
    attempts = Attribute(
        "How often it was started (again after a conflict with another "
        "writer).")

    def as_dict():
        """The result as an XML-RPC struct."""


# -- Infrastructure ----------------------------------------------------------

class IMailer(Interface):
    """Sends e-mail on the server's behalf."""

    configured = Attribute("False when no mail delivery is set up.")

    def send(to_address, subject, body):
        """Send a plain-text message; returns a Deferred firing on delivery.

        Fails (errback) when the message could not be handed to the mail
        server.
        """


# -- The change track and its agents (linksync.track, linksync.agents) -------

class ISyncManager(Interface):
    """The change track and the agents consuming it (a utility)."""

    granularity = Attribute("Seconds per bucket of the track.")
    closed = Attribute("The last closed bucket: agents read up to it.")

    def bucket(timestamp):
        """The bucket of a time in seconds."""

    def add(timestamp, action):
        """Record an ActionWrapper at `timestamp`; False when excluded."""

    def close(timestamp):
        """Close the buckets before the one of `timestamp`."""

    def query(agent_id, till=None, limit=None):
        """(end, records) the agent has not consumed yet."""

    def advance(agent_id, position):
        """Move the agent's pointer forward to `position`."""

    def register_agent(agent, now=None, start=None):
        """Add an agent; its pointer starts at the open bucket."""

    def remove_agent(agent_id):
        """Remove an agent and its pointer."""

    def get_agent(agent_id):
        """The agent with that id (UnknownAgent when missing)."""

    def agents():
        """All agents, in id order."""

    def reset(agents_only=False, track_only=False):
        """Erase agents, records, or both."""


class ISyncAgent(Interface):
    """A consumer of the change track with its own pointer."""

    id = Attribute("The agent id (its name on the command line).")
    kind = Attribute("The kind of agent (notifier, jsonl, xmlrpc, ...).")
    name = Attribute("A human name.")
    description = Attribute("What the agent is for.")
    update_time = Attribute("Seconds between runs, or None for the "
                            "server's --notify-interval.")


class IPushSyncAgent(ISyncAgent):
    """An agent that sends the reduced changes to its consumer."""

    def run(current_ts, session, context):
        """Read, upload and acknowledge; a Deferred firing with a
        RunResult."""


class IClientEvent(IObjectEvent):
    """Something happened to a client (`object` is the IClient)."""


class IClientAddedEvent(IClientEvent):
    """A client was added to the client provider."""

    now = Attribute("Epoch seconds of the addition, or None.")


class IClientRemovedEvent(IClientEvent):
    """A client was removed from the client provider."""

    now = Attribute("Epoch seconds of the removal, or None.")


# -- Tracked structures (linksync.tracked) -----------------------------------

class ITracker(Interface):
    """The state shared by the wrappers of one tracked structure."""

    root = Attribute("The tracked structure track() returned.")
    name = Attribute("The name given to track() (names the file too).")
    callback = Attribute("Called with each Change (a list for a block).")
    backend = Attribute("The ITrackedBackend saving it, or None.")
    lock = Attribute("The re-entrant lock every change takes.")

    def begin():
        """Open a transaction (what ``with tracked:`` calls)."""

    def end(ok):
        """Close it: commit when `ok`, else take its changes back."""

    def undo():
        """Take the last change back; False when there is none."""

    def redo():
        """Make the last undone change again; False when there is none."""

    def save():
        """Write the whole structure to its backend now."""

    def close():
        """Release the backend."""


class IChange(Interface):
    """One change of a tracked structure, as a callback receives it."""

    root = Attribute("The tracked structure.")
    name = Attribute("Its name.")
    path = Attribute("Keys and indexes from the root to the changed part "
                     "(a list; [] is the root).")
    func_name = Attribute("The method that made the change ('append', "
                          "'__setitem__', ...).")
    args = Attribute("Its positional arguments (as stored).")
    kwargs = Attribute("Its keyword arguments.")
    target = Attribute("The part of the structure that changed.")


class ITrackedBackend(Interface):
    """Where a tracked structure is saved."""

    path = Attribute("The file (for messages).")
    lazy = Attribute("True when values are loaded on first use.")

    def open(tracker, default):
        """The root for `tracker`: loaded when saved before, else
        `default` wrapped and saved. Raises TrackedFileError for a file it
        cannot read (and leaves the file as it is)."""

    def save(root, changes):
        """Save after `changes` (None: everything)."""

    def close():
        """Release files and connections."""


class ISyncHub(Interface):
    """Serves tracked structures to devices over XML-RPC."""

    device_id = Attribute("The id of the hub as a device (conflict rule).")

    def add(tracked):
        """Serve `tracked` under its tracker's name."""

    def resource():
        """The XML-RPC resource (tracked.sync)."""

    def listen(endpoint, reactor=None):
        """Listen on a Twisted endpoint description; Deferred port."""


class ISyncDevice(Interface):
    """Keeps one tracked structure in sync with a hub."""

    device_id = Attribute("The id of this device (conflict rule).")

    def sync():
        """Run one sync cycle; a Deferred firing when it is done."""

    def start(interval):
        """Sync every `interval` seconds (on the injected clock)."""

    def stop():
        """Stop syncing periodically."""

# -- The checking engine: scheduler and checker (issue 3) --------------------

class ISchedule(Interface):
    """When each URL is due for a check: a persistent index by due time.

    Kept up to date by the URL events (linksync.scheduler subscribers), so
    that due work is found without scanning all URLs.
    """

    def add(url, due):
        """Schedule the IURL `url` at `due` unless scheduled already."""

    def reschedule(url, due):
        """Move the IURL `url` to `due` (schedules it if needed)."""

    def discard(url):
        """Forget everything about the IURL `url`."""

    def due_keys(now, after=None, worker=None):
        """Iterate over (due, url) with due <= now in due order.

        `after` is a (due, url) key to resume after (exclusive). With
        `worker` (a linksync.partition.Worker), only the URLs of that
        checker worker's shards, read from their own indexes.

        The iterator also has ``skip_run(key)``: given the key it just
        returned, it skips the following keys of the same due time and the
        same ``scheme://authority/`` start of URL (of the same host).
        """

    def due_at(url, default=None):
        """The due time of the IURL `url`, or `default`."""

    def orphans(before):
        """Iterate over (since, url) of URLs without a client since before
        `before`."""

    def record(url, state, reason, now, timing):
        """Apply the outcome of a check of the IURL `url` made at `now`.

        Publishes it with ``url.set_result`` unless it must be confirmed
        first (an ok URL failing), and schedules the next check by
        `timing` (a linksync.scheduler.Timing). Returns True when the
        state was published and changed.
        """


class IChecker(Interface):
    """Checks URLs over the network, politely."""

    def check(url):
        """Check the URL (str) once; a Deferred firing (state, reason).

        Never fails: every problem is a state (linksync.states) with a
        reason text.
        """

    def close():
        """Close cached connections; a Deferred."""


# -- The web status UI and metrics (issue 8) ----------------------------------

class IProblemIndex(Interface):
    """The URLs whose published state is a failure, overall and per client
    (linksync.problems): what alerts pages list, a range at a time.

    Kept up to date by the URL and client events.
    """

    def add(url, state, client_ids):
        """The normalised `url` is in `state` for the clients `client_ids`
        (nothing happens for a state that is not a failure)."""

    def remove(url, state, client_ids, everywhere=True):
        """The normalised `url` is no longer in `state` for `client_ids`,
        and for nobody when `everywhere`."""

    def keys(state, start='', excludemin=False):
        """Iterate over the (state, url) pairs of the URLs in `state`, in
        URL order, from the URL `start` on."""

    def client_keys(client_id, after=None):
        """Iterate over the (state, url) pairs of the client's URLs in a
        failure state, the most serious state first, then by URL, after
        the pair `after` (exclusive)."""

    def client_counts(client_id):
        """{state: count} of the client's URLs in each failure state."""


class IWebAccess(Interface):
    """Who may see which page of the web status UI (linksync.pages.access).

    The global pages need the management secret: HTTP Basic credentials
    with it as the password, or the signed cookie a login with it sets. A
    client's alerts page needs that, or the client's own credentials, or a
    signed, expiring token (the link getInfoFrameURL hands out).
    """

    def is_manager(request):
        """True when the request carries the management secret (Basic
        credentials or a valid session cookie)."""

    def login(request, secret):
        """Check `secret`; when right, set the session cookie and return
        True."""

    def alerts_token(client_id, now):
        """A token opening the alerts page of `client_id` until the token
        lifetime has passed after `now`."""

    def check_alerts_token(client_id, token, now):
        """True when `token` opens the alerts page of `client_id` at
        `now`."""


# -- Stores and the Synchronizer (linksync.stores) --------------------------

class IData(Interface):
    """One datum of a store: the fields every type has, and its own."""

    id = Attribute("The id (str), unique among the data of its type in a "
                   "store; None until the datum is added somewhere.")
    name = Attribute("A human name (str); data of other stores are matched "
                     "by it when their ids differ.")
    description = Attribute("Free text ('' by default).")
    created = Attribute("Epoch seconds of the creation, or None.")
    updated = Attribute("Epoch seconds of the last change, or None.")
    store = Attribute("The IStore the datum was read from or saved to.")
    dirty = Attribute("True when the datum has unsaved changes.")

    def record():
        """Every field as a plain dict (a copy)."""

    def changes():
        """{field: (saved value, current value)} of the unsaved changes."""

    def rollback():
        """Take back the unsaved changes."""

    def save():
        """Add or update the datum in its store."""


class IAccessor(Interface):
    """One data type in one store: what a new backend writes.

    Records are plain dicts holding ``id``, ``name``, ``description``,
    ``created``, ``updated`` and the fields of the type.
    """

    store = Attribute("The IStore this accessor works for.")
    data_type = Attribute("The IData class it holds.")
    enumerable = Attribute("False when find() needs a name (the store "
                           "cannot list all its data).")
    fields = Attribute("The fields this store keeps (a tuple).")
    owned = Attribute("Fields the store decides itself: written by nobody "
                      "else, and winning over other stores' values.")

    def create(**values):
        """A new IData of the type, bound to the store, not saved yet."""

    def get(id):
        """The record with that id, or None."""

    def find(name=None, **fields):
        """The records with that name and field values (all without any)."""

    def add(record):
        """Store a new record; AlreadyExists when its id is taken."""

    def update(record):
        """Replace the record of the same id; NotFound when there is none."""

    def remove(id):
        """Remove the record with that id; NotFound when there is none."""


class IStoreEvent(Interface):
    """What a store tells its observers, in lists (one list a write)."""

    action = Attribute("'added', 'updated' or 'removed'.")
    store = Attribute("The IStore that changed.")
    data = Attribute("The IData as it is now (as it was, when removed).")
    old = Attribute("The IData before an update, or None when unknown.")
    origin = Attribute("Who made the change through the store's methods "
                       "(a Synchronizer passes itself), or None.")


class IStore(Interface):
    """A set of data, reached through one IAccessor per data type.

    The write methods return their result, or a Deferred of it when the
    store works over the network with a Twisted client.
    """

    name = Attribute("A name for messages.")
    types = Attribute("The IData classes it holds.")
    connected = Attribute("True between connect() and disconnect().")

    def connect():
        """Open files and connections."""

    def disconnect():
        """Close them; the data stay where they are."""

    def observe(observer):
        """Call observer(events) with a list of IStoreEvent after writes."""

    def unobserve(observer):
        """Stop calling it."""

    def get(data_type, id):
        """The IData with that id, or None."""

    def find(data_type, name=None, **fields):
        """The IData with that name and field values."""

    def add(data, origin=None):
        """Add a new datum; returns it (with its id)."""

    def update(data, origin=None):
        """Save the changes of a datum."""

    def remove(data, origin=None):
        """Remove a datum."""

    def put(data, origin=None, names=()):
        """Add or update, matching by id, else by name: 'added',
        'updated', or None when nothing had to change."""

    def delete(data, origin=None, names=()):
        """Remove the matching datum: 'removed', or None if none."""


class ISynchronizer(Interface):
    """Propagates every add, update and remove among several stores."""

    stores = Attribute("The IStore objects, in order of precedence.")
    pending = Attribute("The propagations not made yet (failed ones "
                        "first, with their error and attempts).")

    def sync():
        """Make all stores agree now; a SyncReport (or a Deferred of it)."""

    def retry():
        """Try the failed propagations again now."""

    def settled():
        """A Deferred firing when no propagation is under way."""

    def close():
        """Stop observing the stores and retrying."""


# -- The client kit (linksync.client) ----------------------------------------

class ILMSClient(Interface):
    """A typed client of a linksync server, for one client id.

    The blocking flavour returns results; the Twisted one Deferreds.
    """

    url = Attribute("The server's XML-RPC URL.")
    client_id = Attribute("The id it logs in with.")

    def check_connection():
        """The protocol version (2); BadCredentials, ServerUnreachable."""

    def register_urls(urls):
        """Register URLs (in batches); [URLState] of those already known."""

    def unregister_urls(urls):
        """Unregister URLs (in batches)."""

    def get_url_states(urls):
        """[URLStatus] of the client's URLs among `urls` (in batches)."""


class ILinkDatabase(Interface):
    """A client's links and their states, in a file."""

    path = Attribute("The file.")

    def urls():
        """The URLs, sorted."""

    def add(*urls):
        """Add links; invalid URLs are refused before any is added."""

    def remove(*urls):
        """Remove links."""

    def received(rows):
        """Store [[url, state, reason], ...] pushed by the server."""
