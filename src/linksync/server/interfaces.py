"""The interfaces of linksync.

Every component of the server declares one of these; the registrations that
tie implementations to them live in :mod:`linksync.server.configure` and nowhere
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
    failures = Attribute(
        "Temporary failures in a row (0 after any other result): the "
        "back-off of the schedule.")
    pending = Attribute(
        "The failing state of an ok URL awaiting its confirming check, or "
        "None: the state stays ok until the next check confirms it.")

    def set_result(state, reason, now, changes=None):
        """Store the outcome of a check made at `now`.

        Returns True when the state changed (the first result of a URL
        counts as a change). The change is notified as an
        IURLStateChangedEvent, or appended to the list `changes` when one
        is given (its caller notifies them).
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
    renamed_from = Attribute(
        "The URL's earlier key when its state moved with it to a new key"
        " (no check changed it); None after a check.")


# -- The syncer (linksync.server.syncer) ------------------------------------------

class ISyncer(Interface):
    """Synchronises the clients' link databases with the server's."""

    busy = Attribute("True while a synchronisation asked for is not done "
                     "(several clients are synchronised at once).")

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

    def send(to_address, subject, body, headers=()):
        """Send a plain-text message, with the extra `headers` ((name,
        value) pairs); returns a Deferred firing on delivery.

        Fails (errback) when the message could not be handed to the mail
        server.
        """


class IClientEvent(IObjectEvent):
    """Something happened to a client (`object` is the IClient)."""


class IClientAddedEvent(IClientEvent):
    """A client was added to the client provider."""

    now = Attribute("Epoch seconds of the addition, or None.")


class IClientRemovedEvent(IClientEvent):
    """A client was removed from the client provider."""

    now = Attribute("Epoch seconds of the removal, or None.")

# -- The checking engine: the due index and the checker -----------------------

class ISchedule(Interface):
    """When each URL is due for a check: a persistent index by due time.

    Kept up to date by the URL events (subscribers in
    linksync.server.model.due), so that due work is found without scanning
    all URLs.
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
        `worker` (a linksync.server.model.partition.Worker), only the URLs of that
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

    def record(url, state, reason, now, timing, changes=None):
        """Apply the outcome of a check of the IURL `url` made at `now`.

        Publishes it with ``url.set_result`` unless it must be confirmed
        first (an ok URL failing), and schedules the next check by
        `timing` (a linksync.server.checker.service.Timing). Returns True when the
        state was published and changed. `changes` is handed to
        ``set_result``.
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


# -- The web status UI and metrics --------------------------------------------

class ITrends(Interface):
    """The bounded series the status pages draw
    (linksync.server.model.trends): URLs per state, checks per minute and
    each client's problems, sampled at fixed steps."""

    def count_checks(n):
        """`n` more check results were stored (in their transaction)."""

    def sample(now, counts):
        """Sample the checks total and the URLs per state."""

    def sample_clients(now, clients, problems, batch=500):
        """Sample a batch of this hour's clients; True while some are
        left."""

    def checks_per_minute(start, end):
        """[(time, checks per minute)]."""

    def state_samples(start, end):
        """[(time, {state: count})]."""

    def client_samples(client_id, start, end):
        """[(time, (unavailable, temporary, unsupported, urls))]."""

    def client_uptime(client_id, now, window, current=None):
        """The share of the client's URLs not in trouble over the last
        `window` seconds (None when unknown)."""

    def client_uptimes(client, problems, now):
        """[(label, uptime)] of the client over 24 h, 7 d and 30 d."""


class IDigests(Interface):
    """What broke and recovered per client since its last digest e-mail
    (linksync.server.model.digests), and who unsubscribed."""

    def record(client_id, url, old_state, new_state, reason, now):
        """A state change of one of the client's URLs."""

    def pending(client_id):
        """The client's ClientDigest (None when nothing is pending)."""


class IHistory(Interface):
    """The recent check results and state changes of every URL
    (linksync.server.model.history), bounded per URL."""

    def get(url):
        """The URLHistory of a normalised URL (empty when none)."""

    def record(url, state, reason, now, latency=None, published=None):
        """Add a check result (in the transaction storing it); the state
        changes follow the `published` state."""

    def prune(before, after=None, batch=10000):
        """Forget what is older than `before`, a batch at a time."""


class IProblemIndex(Interface):
    """The URLs whose published state is a failure, overall and per client
    (linksync.server.model.problems): what alerts pages list, a range at a time.

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
    """Who may see which page of the web status UI (linksync.server.web.access).

    The global pages need the management secret: HTTP Basic credentials
    with it as the password, or the cookie of a session a login with it
    started (kept by the server until it expires or logs out). A
    client's alerts page needs that, or the client's own credentials, or a
    signed, expiring token (the link getInfoFrameURL hands out).
    """

    def is_manager(request):
        """True when the request carries the management secret (Basic
        credentials or a valid session cookie)."""

    def login(request, secret):
        """Check `secret`; when right, start a session, set its cookie and
        return True."""

    def logout(request):
        """End the request's session, on the server and in the browser."""

    def alerts_token(client_id, now):
        """A token opening the alerts page of `client_id` until the token
        lifetime has passed after `now`."""

    def check_alerts_token(client_id, token, now):
        """True when `token` opens the alerts page of `client_id` at
        `now`."""


# -- The composition root (linksync.server.configure) -------------------------

class IRootParts(Interface):
    """The persistent parts of the application root (a utility)."""

    def install(app):
        """Create the parts `app` lacks and register its local utilities."""


class IServerPart(Interface):
    """The service of one role of the server (a utility named after the
    role, linksync.server.options.ROLES): called with the LinkSyncService,
    it returns the twisted.application IService of that part."""

    def __call__(server):
        """A new IService of this part of `server`."""


class IOperation(Interface):
    """An administrative operation (a utility named after it); see
    linksync.server.admin.operations."""

    name = Attribute("The name: admin.NAME over XML-RPC.")
    func = Attribute("The operation itself, called as ``func(context, *args)``.")
    params = Attribute("The Param declarations of the arguments.")
    returns = Attribute("The XML-RPC type of the result.")
    transactional = Attribute("True when it runs in one unit of work.")
    help = Attribute("What it does (the function's docstring).")
