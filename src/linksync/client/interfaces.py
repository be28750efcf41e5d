"""The interfaces of the client kit."""

from zope.interface import Attribute, Interface


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
