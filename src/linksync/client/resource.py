"""CallbackResource: what a client serves to its linksync server.

The server calls a client back (PROTOCOL.md, "Client callback methods"):

* ``xmlrpc_getAllLinks(client_id, password)``: the client's whole link
  database, a list of URLs (also answered as ``getAllLinks``);
* ``updateManyStates(client_id, password, rows)``: states to store,
  ``[[url, state, reason], ...]``.

The server sends the client's own id and password; anything else is
answered with HTTP 401, before the database is touched. A batch of states
holding one bad row (not three strings, an unknown state) is refused
whole with a Fault, and nothing of it is stored.

The resource is the project's hardened XML-RPC resource
(:mod:`linksync.xmlrpc`: declared parameter types, size limits, defused
parsing, ``system.*`` methods, one log line per call). Serve it on a
:class:`linksync.xmlrpc.site.LinkSyncSite`.
"""

import hmac

from linksync.xmlrpc.faults import INVALID_PARAMS, Fault
from linksync.xmlrpc.resource import (DEFAULT_MAX_REQUEST_BYTES, MethodTable,
                                      Param, Unauthorized, XMLRPCResource)

methods = MethodTable()

_CREDENTIALS = [Param('client_id', str), Param('password', str)]


def same(given, expected):
    """Constant-time comparison of two strings."""
    return isinstance(given, str) and hmac.compare_digest(
        given.encode('utf-8', 'surrogatepass'),
        expected.encode('utf-8', 'surrogatepass'))


class CallbackMethods:
    """The callback methods for one link database and one client."""

    def __init__(self, link_db, client_id, password):
        self.link_db = link_db
        self.client_id = client_id
        self.password = password

    def authenticate(self, call, client_id, password):
        """Unauthorized (HTTP 401) unless these are the client's own id
        and password."""
        ok_id = same(client_id, self.client_id)
        ok_password = same(password, self.password)
        if not (ok_id and ok_password):
            raise Unauthorized()
        call.client_id = client_id

    @methods.method('xmlrpc_getAllLinks', _CREDENTIALS, list)
    def get_all_links(self, call, client_id, password):
        """The client's link database: a list of URLs."""
        self.authenticate(call, client_id, password)
        return self.link_db.urls()

    @methods.method('getAllLinks', _CREDENTIALS, list)
    def get_all_links_legacy(self, call, client_id, password):
        """The same as xmlrpc_getAllLinks."""
        return self.get_all_links(call, client_id, password)

    @methods.method('updateManyStates', _CREDENTIALS + [Param('rows', list)],
                    bool)
    def update_many_states(self, call, client_id, password, rows):
        """Store states: rows of [url, state, reason]. Returns True."""
        self.authenticate(call, client_id, password)
        try:
            self.link_db.received(rows)
        except ValueError as e:
            raise Fault(INVALID_PARAMS, 'updateManyStates: %s (no state of '
                        'this call was stored)' % e) from None
        return True


class CallbackResource(XMLRPCResource):
    """The XML-RPC resource answering the server for `link_db` (a
    LinkDatabase), checking `client_id` and `password`. More methods
    (a bound MethodTable) can be served with it: see add_methods()."""

    def __init__(self, link_db, client_id, password,
                 max_request_bytes=DEFAULT_MAX_REQUEST_BYTES):
        self.callbacks = CallbackMethods(link_db, client_id, password)
        super().__init__(methods.bind(self.callbacks), max_request_bytes)

    def add_methods(self, table):
        """Serve the methods of `table` (bound) too."""
        for name in table.names():
            self.table.add(table[name])
