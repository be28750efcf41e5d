"""The link monitoring server: the top layer of linksync.

Its parts, each a subpackage or module named after what it holds:
``model`` (the persistent data), ``checker`` (checking URLs, and its URL
schemes), ``api`` (the protocol methods), ``web`` (the pages and metrics),
``syncer``, ``notifier`` and ``exporters`` (what goes out to clients and
other systems), ``database`` and ``storage`` (the seam to ZODB),
``admin`` (operations for the command line), ``options``, ``service``
(the service tree ``linksync serve`` runs) and ``configure``, the one
composition root that registers everything.
"""
