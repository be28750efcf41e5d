"""The pages as Twisted resources, served by the API part of the server.

=====================================  =====================================
``GET /``                              the overview (management secret)
``GET /search?q=&match=&state=``       the URL search (management secret)
``GET /clients``, ``GET /agents``      the lists, a page at a time (idem)
``GET /url?u=URL``                     a URL's page, its history (idem)
``GET /alerts/CLIENT_ID``              a client's alerts page (see
                                       linksync.server.web.access)
``GET /login``, ``POST /login``        the login form (field ``secret``)
``POST /logout``                       removes the session cookie
=====================================  =====================================

A browser asking for a global page without the secret is sent to the
login form (303); a script without it (no ``Accept: text/html``) and wrong
HTTP Basic credentials get 401, a wrong or expired alerts
token 403, bad parameters 400, an unknown client 404: always a short page
saying so, never a traceback. Every page is read in one unit of work of
the API's database session, bounded whatever the size of the database
(see the page modules), and carries headers that forbid scripts, framing
(except the alerts page, made to be framed) and caching.
"""

import urllib.parse

import zope.component
from twisted.logger import Logger
from twisted.python import failure
from twisted.web import resource, server

from linksync.server.interfaces import IClientProvider, IDigests
from linksync.server.web import alerts as alerts_module
from linksync.server.web import digest, downloads, overview, search, urlpage
from linksync.server.web.access import FormGuard, basic_credentials, same_origin
from linksync.server.web.markup import CSP, Safe, href, page, render
from linksync.xmlrpc.resource import Unauthorized

log = Logger()

#: Query parameters longer than this (bytes) are refused. (Twisted cuts
#: request lines past 16 KiB.)
MAX_PARAMETER = 10_000
#: Login form bodies longer than this are refused.
MAX_FORM = 4096


class HTTPError(Exception):
    """Answer with status `code` and a page saying `message`."""

    def __init__(self, code, title, message, headers=()):
        super().__init__(message)
        self.code = code
        self.title = title
        self.message = message
        self.headers = list(headers)


class Download(Exception):
    """Answer with the file `data` of `content_type`, saved as
    `filename`."""

    def __init__(self, data, content_type, filename):
        super().__init__(filename)
        self.data = data
        self.content_type = content_type
        self.filename = filename


class Redirect(Exception):
    """Answer 303 See Other to `location`."""

    def __init__(self, location):
        super().__init__(location)
        self.location = location


def argument(request, name, default=''):
    """The query parameter `name` as text (the first one given)."""
    values = request.args.get(name.encode('ascii'))
    if not values:
        return default
    value = values[0]
    if len(value) > MAX_PARAMETER:
        raise HTTPError(400, 'Bad request', 'The parameter %s is too long.'
                        % name)
    try:
        return value.decode('utf-8')
    except UnicodeDecodeError:
        raise HTTPError(400, 'Bad request', 'The parameter %s is not UTF-8 '
                        'text.' % name) from None


#: The WWW-Authenticate header of the global pages.
MANAGER_CHALLENGE = (b'www-authenticate',
                     b'Basic realm="linksync", charset="UTF-8"')


def wants_html(request):
    """True for a browser (it accepts text/html), whom a login form suits
    better than a 401."""
    return b'text/html' in (request.getHeader(b'accept') or b'')


def safe_next(target):
    """A place on this server to go back to after the login ('/' unless
    `target` is a local path)."""
    if not target.startswith('/') or target.startswith('//') or \
            '\\' in target or any(not 33 <= ord(c) <= 126 for c in target):
        return '/'
    return target


class WebUI:
    """The pages of one server, on the API part's session.

    `access` is the IWebAccess of the server, `api` its LinkSyncAPI (its
    cached check of client credentials), `metrics` its Metrics (the check
    rate and queue of a checker running in this process).
    """

    def __init__(self, session, access, api, clock, metrics=None):
        self.session = session
        self.access = access
        self.api = api
        self.clock = clock
        self.metrics = metrics
        #: The server's --public-url: its origin is this server's too.
        self.public_url = getattr(api, 'public_url', None)
        self.overview = _Page(self, self.overview_page)

    def install(self, root):
        """Hang the pages (but the overview, the root's own) below `root`."""
        root.putChild(b'login', _Login(self))
        root.putChild(b'logout', _Logout(self))
        root.putChild(b'search', _Page(self, self.search_page))
        root.putChild(b'clients', _Page(self, self.clients_page))
        root.putChild(b'agents', _Page(self, self.agents_page))
        root.putChild(b'alerts', _Alerts(self))
        root.putChild(b'url', _URL(self))
        root.putChild(b'digest', _Digest(self))

    # -- answering ------------------------------------------------------------

    def respond(self, request, make):
        """Render make(request) -> (title, body, layout) into the answer;
        errors become short pages."""
        now = self.clock.seconds()
        framed = False
        try:
            if request.postpath not in ([], [b'']):
                raise HTTPError(404, 'Not found', 'No such page.')
            title, body, layout = make(request)
            framed = layout == 'frame'
            manager = layout == 'manager'
            data = page(title, body, now, navigation=manager, frame=framed,
                        logout_token=self.access.logout_guard.token(request)
                        if manager else '')
        except Download as d:
            request.setHeader(b'content-type', d.content_type)
            request.setHeader(b'content-disposition', b'attachment; '
                              b'filename="%s"' % d.filename.encode('ascii'))
            request.setHeader(b'cache-control', b'no-store')
            request.setHeader(b'x-content-type-options', b'nosniff')
            return d.data
        except Redirect as r:
            request.setResponseCode(303)
            request.setHeader(b'location', r.location.encode('ascii'))
            data = page('Moved', render('<p><a href="{}">Go on</a></p>',
                                        r.location), now, navigation=False)
        except HTTPError as e:
            request.setResponseCode(e.code)
            for name, value in e.headers:
                request.setHeader(name, value)
            data = page(e.title, render('<h1>{}</h1><p>{}</p>', e.title,
                                        e.message), now, navigation=False)
        except Exception:
            log.failure('rendering {path} failed',
                        path=request.uri[:200].decode('ascii', 'replace'))
            request.setResponseCode(500)
            data = page('Error', Safe(
                '<h1>Internal error</h1><p>The page could not be made; the '
                'error is in the server log.</p>'), now, navigation=False)
        request.setHeader(b'content-type', b'text/html; charset=utf-8')
        request.setHeader(b'cache-control', b'no-store')
        request.setHeader(b'x-content-type-options', b'nosniff')
        request.setHeader(b'referrer-policy', b'no-referrer')
        csp = CSP if framed else CSP + "; frame-ancestors 'none'"
        request.setHeader(b'content-security-policy', csp.encode('ascii'))
        if not framed:
            request.setHeader(b'x-frame-options', b'DENY')
        return data

    # -- access ---------------------------------------------------------------

    def require_manager(self, request):
        """Return when the request carries the management secret; else
        401 for wrong credentials or a script without any, and a browser
        without any off to the login form."""
        if self.access.is_manager(request):
            return
        if basic_credentials(request) is not None:
            raise HTTPError(401, 'Not allowed', 'Wrong credentials: the '
                            'password is the management secret.',
                            [MANAGER_CHALLENGE])
        if not wants_html(request):
            raise HTTPError(401, 'Not allowed', 'This page needs the '
                            'management secret: log in at /login, or give '
                            'it as the password of HTTP Basic credentials.',
                            [MANAGER_CHALLENGE])
        raise Redirect(href('/login', next=request.uri.decode(
            'ascii', 'replace')))

    def _is_manager(self, request):
        """access.is_manager(request), asked once per request (a wrong
        secret counts once against the throttle)."""
        verdict = getattr(request, 'linksync_manager', None)
        if verdict is None:
            verdict = request.linksync_manager = \
                self.access.is_manager(request)
        return verdict

    def _client_credentials(self, request, client_id):
        """The password of HTTP Basic credentials naming `client_id` (as
        the user), or None."""
        credentials = basic_credentials(request)
        if credentials is not None and credentials[0] == client_id and \
                credentials[1] is not None:
            return credentials[1]
        return None

    def verify_alerts_client(self, request, client_id):
        """Verify the client's own credentials of an alerts request before
        its page is made: None when there is nothing to verify (or the
        answer is known at once), else a Deferred firing once the password
        was hashed, in the API's hashing threads (never in the reactor
        thread) and throttled as XML-RPC logins are. The verdict is kept on
        the request for :meth:`alerts_layout`."""
        password = self._client_credentials(request, client_id)
        if password is None or self._is_manager(request) or \
                argument(request, 'token', None) is not None:
            return None
        peer = getattr(request.getClientAddress(), 'host', '-')
        try:
            verifying = self.api.verify(client_id, password, peer)
        except Unauthorized:
            request.linksync_client_verified = False
            return None
        if verifying is None:
            request.linksync_client_verified = True
            return None

        def verdict(result):
            request.linksync_client_verified = not isinstance(
                result, failure.Failure)
            if isinstance(result, failure.Failure) and \
                    not result.check(Unauthorized):
                log.failure('verifying the credentials of {client} failed',
                            result, client=client_id)
        return verifying.addBoth(verdict)

    def alerts_layout(self, request, client_id):
        """How the request may see a client's alerts page: 'manager' or
        'frame'; raises 401 or 403 when it may not."""
        if self._is_manager(request):
            return 'manager'
        token = argument(request, 'token', None)
        if token is not None:
            if self.access.check_alerts_token(client_id, token,
                                              self.clock.seconds()):
                return 'frame'
            raise HTTPError(403, 'Link expired', 'This link to the alerts '
                            'page has expired or is not valid. Open the '
                            'page of your application that shows it again '
                            'for a new one.')
        # Verified before, by verify_alerts_client (in a thread).
        if self._client_credentials(request, client_id) is not None and \
                getattr(request, 'linksync_client_verified', False):
            return 'frame'
        raise HTTPError(401, 'Not allowed', "This page needs the client's "
                        'credentials (or the link the application shows).',
                        [(b'www-authenticate',
                          b'Basic realm="linksync alerts", '
                          b'charset="UTF-8"')])

    # -- the pages ------------------------------------------------------------

    def overview_page(self, request):
        self.require_manager(request)
        now = self.clock.seconds()

        def read(app):
            return (overview.summary(app, now),
                    overview.clients_page(app, limit=overview.OVERVIEW_ROWS,
                                          now=now),
                    overview.agents_page(app, now,
                                         limit=overview.OVERVIEW_ROWS),
                    overview.trends_data(app, now))
        data, clients, agents, trends = self.session.read(read)
        queue = rate = None
        if self.metrics is not None:
            queue = self.metrics.read('linksync_check_queue')
            if queue is not None:
                rate = self.metrics.checks_per_minute(now)
        return 'Status', overview.render_overview(
            data, clients, agents, rate, queue, now, trends), 'manager'

    def search_page(self, request):
        self.require_manager(request)
        asked = any(request.args.get(k) for k in (b'q', b'state', b'after'))
        try:
            query = search.Query(
                argument(request, 'q'), argument(request, 'match', 'prefix')
                or 'prefix', argument(request, 'state'),
                argument(request, 'after'))
        except search.SearchError as e:
            raise HTTPError(400, 'Bad search', str(e)) from None
        result = self.session.read(query.run) if asked else None
        return 'Find a URL', search.render_search(
            query, result, self.clock.seconds()), 'manager'

    def url_page(self, request):
        self.require_manager(request)
        guard = FormGuard(self.access.secret, 'url check now')
        if request.method == b'POST':
            form = self._form(request)
            url = form.get('u', '')
            if not guard.allows(request, form.get('token'), url):
                raise HTTPError(403, 'Not allowed', 'This form was not '
                                'sent from its page: open the page of the '
                                'URL again and use its button.')
            if not self.session.run(urlpage.check_now, url,
                                    self.clock.seconds()):
                raise HTTPError(404, 'Not found', 'No URL %r is checked.'
                                % (url,))
            raise Redirect(href('/url', u=url))
        url = argument(request, 'u').strip()
        if not url:
            raise HTTPError(400, 'Bad request', 'Which URL? Give it as the '
                            'parameter u.')
        now = self.clock.seconds()
        data = self.session.read(urlpage.url_data, url, now)
        if data is None:
            raise HTTPError(404, 'Not found', 'No URL %r is monitored.'
                            % (url,))
        return 'URL', urlpage.render_url(
            data, now, guard.token(request, data['url'])), 'manager'

    def clients_page(self, request):
        self.require_manager(request)
        after = argument(request, 'after') or None
        now = self.clock.seconds()
        rows, next_after = self.session.read(overview.clients_page, after,
                                             None, now)
        return 'Clients', overview.render_clients(
            rows, next_after, after, now), 'manager'

    def agents_page(self, request):
        self.require_manager(request)
        after = argument(request, 'after') or None
        now = self.clock.seconds()
        rows, next_after = self.session.read(overview.agents_page, now,
                                             after)
        return 'Agents', overview.render_agents(
            rows, next_after, after, now), 'manager'

    def alerts_page(self, request, client_id):
        layout = self.alerts_layout(request, client_id)
        fmt = argument(request, 'format')
        if fmt:
            if fmt not in downloads.FORMATS:
                raise HTTPError(400, 'Bad request', 'The format is csv or '
                                'json.')
            rows = downloads.problem_rows(self.session.read, client_id)
            if rows is None:
                raise HTTPError(404, 'Not found', 'No client %r.'
                                % (client_id,))
            data = downloads.as_csv(rows) if fmt == 'csv' else \
                downloads.as_json(client_id, rows)
            raise Download(data, downloads.FORMATS[fmt],
                           'link-problems.' + fmt)
        after = argument(request, 'after')
        try:
            after = alerts_module.parse_after(after) if after else None
        except ValueError as e:
            raise HTTPError(400, 'Bad request', str(e)) from None
        data = self.session.read(alerts_module.alerts, client_id, after,
                                 None, self.clock.seconds())
        if data is None:
            raise HTTPError(404, 'Not found', 'No client %r.' % (client_id,))
        token = argument(request, 'token', None)
        return 'Link problems', alerts_module.render_alerts(
            data, self.clock.seconds(), token, layout == 'manager'), layout

    def unsubscribe_page(self, request):
        """The signed link of a digest e-mail (linksync.server.web.digest):
        GET asks, POST (the page's button, or a mail program's one-click
        unsubscribe) does it."""
        fields = {}
        if request.method == b'POST':
            fields = self._form(request)
        client_id = fields.get('client') or argument(request, 'client')
        token = fields.get('token') or argument(request, 'token')
        if not client_id or not token:
            raise HTTPError(400, 'Bad request', 'This link lacks its client '
                            'or its signature: use the whole link of the '
                            'e-mail.')
        if not digest.unsubscribe_signer(self.access.secret).verify(
                client_id, token, self.clock.seconds()):
            raise HTTPError(403, 'Link not valid', 'This unsubscribe link is '
                            'not valid or has expired: use the link of the '
                            'latest digest e-mail.')

        def change(app, action):
            digests = zope.component.getUtility(IDigests)
            if zope.component.getUtility(IClientProvider).get(
                    client_id) is None:
                return None
            if action == 'subscribe':
                digests.subscribe(client_id)
            elif action == 'unsubscribe':
                digests.unsubscribe(client_id, self.clock.seconds())
            return digests.subscribed(client_id)
        if request.method == b'POST':
            action = fields.get('action', 'unsubscribe')
            if action not in ('subscribe', 'unsubscribe'):
                raise HTTPError(400, 'Bad request', 'The action is subscribe '
                                'or unsubscribe.')
            subscribed = self.session.run(change, action)
            body = None if subscribed is None else digest.render_done(
                client_id, token, subscribed)
        else:
            subscribed = self.session.read(change, None)
            body = None if subscribed is None else digest.render_question(
                client_id, token, subscribed)
        if body is None:
            raise HTTPError(404, 'Not found', 'No client %r.' % (client_id,))
        return 'Daily digest', body, 'public'

    def login_page(self, request, failed=False):
        target = safe_next(argument(request, 'next', '/'))
        if request.method == b'POST':
            if not same_origin(request, self.public_url):
                raise HTTPError(403, 'Forbidden', 'A login from another '
                                'site is refused.')
            form = self._form(request)
            target = safe_next(form.get('next', '/'))
            if self.access.login(request, form.get('secret', '')):
                raise Redirect(target)
            failed = True
        elif self.access.is_manager(request):
            raise Redirect(target)
        if failed:
            request.setResponseCode(401)
        message = render('<p class="error" role="alert">Wrong secret.</p>') \
            if failed else Safe('')
        body = render(
            '<h1>Log in</h1><section>{}<form class="login" method="post" '
            'action="/login"><label for="secret">Management secret</label>'
            '<input id="secret" name="secret" type="password" required '
            'autocomplete="current-password" autofocus>'
            '<input type="hidden" name="next" value="{}">'
            '<button class="primary" type="submit">Log in</button></form>'
            '<p class="note">The secret is the one given to '
            '<code>linksync serve</code> (or kept in its data directory, in '
            'the file <code>secret</code>).</p></section>', message, target)
        return 'Log in', body, 'login'

    def _form(self, request):
        body = request.content.read(MAX_FORM + 1) if request.content else b''
        if len(body) > MAX_FORM:
            raise HTTPError(413, 'Too large', 'The form is too large.')
        try:
            fields = urllib.parse.parse_qs(body.decode('utf-8'),
                                           max_num_fields=10,
                                           strict_parsing=False)
        except (UnicodeDecodeError, ValueError):
            raise HTTPError(400, 'Bad request', 'The form could not be '
                            'read.') from None
        return {k: v[0] for k, v in fields.items()}


class _Page(resource.Resource):
    """A page answered by one method of WebUI, for the HTTP `methods`."""

    isLeaf = True
    methods = (b'GET', b'HEAD')

    def __init__(self, ui, make):
        super().__init__()
        self.ui = ui
        self.make = make

    def render(self, request):
        if request.method not in self.methods:
            allowed = b', '.join(self.methods)
            return self.ui.respond(request, lambda r: _not_allowed(allowed))
        data = self.ui.respond(request, self.make)
        return b'' if request.method == b'HEAD' else data


class _Login(_Page):
    methods = (b'GET', b'HEAD', b'POST')

    def __init__(self, ui):
        super().__init__(ui, ui.login_page)


class _URL(_Page):
    methods = (b'GET', b'HEAD', b'POST')

    def __init__(self, ui):
        super().__init__(ui, ui.url_page)


class _Unsubscribe(_Page):
    methods = (b'GET', b'HEAD', b'POST')

    def __init__(self, ui):
        super().__init__(ui, ui.unsubscribe_page)


class _Digest(resource.Resource):
    """/digest/: the unsubscribe page of the digest e-mails."""

    def __init__(self, ui):
        super().__init__()
        self.ui = ui
        self.putChild(b'unsubscribe', _Unsubscribe(ui))

    def getChild(self, name, request):
        return _Page(self.ui, _not_found)

    def render(self, request):
        return self.ui.respond(request, _not_found)


class _Logout(_Page):
    methods = (b'POST',)

    def __init__(self, ui):
        super().__init__(ui, self.logout)

    def logout(self, request):
        access = self.ui.access
        if access.has_session(request) and not access.logout_guard.allows(
                request, self.ui._form(request).get('token'),
                public_url=self.ui.public_url):
            raise HTTPError(403, 'Forbidden', 'This logout did not come '
                            'from a page of this server.')
        access.logout(request)
        raise Redirect('/login')


class _Alerts(resource.Resource):
    """/alerts/CLIENT_ID (the id percent-encoded, as access.alerts_path
    makes it)."""

    def __init__(self, ui):
        super().__init__()
        self.ui = ui

    def getChild(self, name, request):
        try:
            client_id = name.decode('utf-8')
        except UnicodeDecodeError:
            client_id = ''
        if not client_id:
            return _Page(self.ui, _not_found)
        return _AlertsPage(self.ui, client_id)

    def render(self, request):
        return self.ui.respond(request, _not_found)


class _AlertsPage(_Page):
    """A client's alerts page: a client's own password is verified first,
    off the reactor thread, and the page made once that is done."""

    def __init__(self, ui, client_id):
        super().__init__(ui, lambda r: ui.alerts_page(r, client_id))
        self.client_id = client_id

    def render(self, request):
        if request.method not in self.methods:
            return super().render(request)
        try:
            verifying = self.ui.verify_alerts_client(request, self.client_id)
        except HTTPError:
            verifying = None        # a bad parameter: the page says so
        if verifying is None:
            return super().render(request)

        def answer(_):
            if request._disconnected:
                return
            data = super(_AlertsPage, self).render(request)
            request.write(data)
            request.finish()
        verifying.addCallback(answer).addErrback(
            lambda f: log.failure('answering {path} failed', f,
                                  path=request.uri[:200].decode(
                                      'ascii', 'replace')))
        return server.NOT_DONE_YET


def _not_found(request):
    raise HTTPError(404, 'Not found', 'No such page.')


def _not_allowed(allowed):
    raise HTTPError(405, 'Method not allowed', 'This page answers %s only.'
                    % allowed.decode('ascii'), [(b'allow', allowed)])
