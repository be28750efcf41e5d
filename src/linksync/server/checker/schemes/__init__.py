"""The checks of each URL scheme: HTTP(S), FTP and mailto.

Each module holds one checker class with ``check(url)`` returning a Deferred
that fires (state, reason) or fails with a linksync.server.checker.classify error;
linksync.server.checker.check picks the one for a URL's scheme.
"""
