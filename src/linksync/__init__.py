"""linksync: an XML-RPC link monitoring and synchronisation server and kit."""

__version__ = '0.1.0.dev0'

#: The version of the wire protocol (see PROTOCOL.md); checkConnection
#: answers it.
PROTOCOL_VERSION = 2
