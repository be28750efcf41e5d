"""Agents that export the changes to other systems.

* ``jsonl`` (:class:`JSONLinesAgent`): appends one JSON object per reduced
  change to a file, fsynced, rotated past a size;
* ``xmlrpc`` (:class:`XMLRPCPushAgent`): calls a method of any XML-RPC
  endpoint with batches of changes (an array of structs).

The items are those of linksync.server.model.records.describe, for example::

    {"action": "modified", "flags": ["state_changed"], "object": "url",
     "url": "http://www.example.org/", "state": "unavailable",
     "reason": "404 Not Found", "last_check": "2011-02-07T12:34:46Z",
     "timestamp": 1297082086}
"""

import json
import os
import urllib.parse

from linksync.server.model import records as changes
from linksync.agents.agent import PushSyncAgent, RecordUploader
from linksync.agents.errors import AgentError
from linksync.xmlrpc.proxy import CallbackProxy

#: Rotate the export file when it is larger than this (bytes).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: Rotated files kept (FILE.1 ... FILE.N).
DEFAULT_KEEP = 5


class _ExportingAgent(PushSyncAgent):
    """Exports linksync.server.model.records.describe items."""

    def _generate_records(self, changes_, app, till):
        return [changes.describe(c) for c in changes_]

    def export_page(self, app, after, now):
        return changes.snapshot_page(after, now)

    def item_str(self, item):
        return json.dumps(item, sort_keys=True)


def confined_path(directory, name):
    """`name` resolved inside `directory`, or AgentError when it leaves it.

    >>> confined_path('/srv/var', 'out.jsonl')
    '/srv/var/out.jsonl'
    >>> confined_path('/srv/var', '../etc/passwd')
    Traceback (most recent call last):
    ...
    linksync.agents.errors.AgentError: export file '../etc/passwd' is outside the data directory /srv/var
    """
    if '\0' in name:
        raise AgentError('export file name %r has a NUL byte' % (name,))
    root = os.path.realpath(directory)
    path = os.path.realpath(os.path.join(root, name))
    if path == root or os.path.commonpath([root, path]) != root:
        raise AgentError('export file %r is outside the data directory %s'
                         % (name, root))
    return path


class JSONLinesAgent(_ExportingAgent):
    """Appends the changes to a JSON-lines file."""

    kind = 'jsonl'
    options = {
        'file': (str, 'the file to append to (required)'),
        'max_bytes': (int, 'rotate past this size (default %d)'
                      % DEFAULT_MAX_BYTES),
        'keep': (int, 'rotated files kept (default %d)' % DEFAULT_KEEP),
    }

    def __init__(self, aid, file, max_bytes=DEFAULT_MAX_BYTES,
                 keep=DEFAULT_KEEP, **kw):
        super().__init__(aid, **kw)
        if not file:
            raise AgentError('a jsonl agent needs --file')
        if max_bytes < 1 or keep < 0:
            raise AgentError('--max-bytes must be at least 1 and --keep at '
                             'least 0')
        self.file = file
        self.max_bytes = max_bytes
        self.keep = keep

    def confine(self, directory):
        """Resolve the file inside `directory` (the data directory).

        A relative name is taken relative to `directory`; the resolved
        path (symbolic links followed, ``..`` removed) of the file and of
        its rotated copies must lie inside it, else AgentError.
        """
        self.file = confined_path(directory, self.file)

    def describe(self):
        return 'file %s (rotated past %d bytes, %d kept)' % (
            self.file, self.max_bytes, self.keep)

    def uploader(self, app, context):
        return JSONLinesWriter(self.file, self.max_bytes, self.keep,
                               agent=self.id, batch_size=self.batch_size,
                               retries=context.retries,
                               backoff=context.backoff, clock=context.clock)


class JSONLinesWriter(RecordUploader):
    """Appends batches to a file, one JSON object a line.

    Each batch is flushed and fsynced before it counts as uploaded; a batch
    that fails half-way is cut off again, so the file never holds a partial
    line. Before a batch, a file past `max_bytes` is rotated: FILE becomes
    FILE.1, FILE.1 becomes FILE.2, ..., `keep` rotated files are kept.
    """

    def __init__(self, path, max_bytes=DEFAULT_MAX_BYTES, keep=DEFAULT_KEEP,
                 **kw):
        super().__init__(**kw)
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep

    def _upload_batch(self, batch):
        data = ''.join(json.dumps(item, sort_keys=True) + '\n'
                       for item in batch).encode('utf-8')
        self._rotate()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            try:
                _write_all(fd, data)
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)

    def _rotate(self):
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return
        if size < self.max_bytes:
            return
        if self.keep == 0:
            os.unlink(self.path)
        else:
            for n in range(self.keep - 1, 0, -1):
                older = '%s.%d' % (self.path, n)
                if os.path.exists(older):
                    os.replace(older, '%s.%d' % (self.path, n + 1))
            os.replace(self.path, self.path + '.1')
        directory = os.open(os.path.dirname(os.path.abspath(self.path)),
                            os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class XMLRPCPushAgent(_ExportingAgent):
    """Calls `method` on an XML-RPC endpoint with batches of changes."""

    kind = 'xmlrpc'
    options = {
        'url': (str, 'the XML-RPC endpoint (required)'),
        'method': (str, 'the method called with each batch (default '
                   'linksync.push)'),
    }

    def __init__(self, aid, url, method='linksync.push', **kw):
        super().__init__(aid, **kw)
        parts = urllib.parse.urlsplit(url or '')
        if parts.scheme not in ('http', 'https') or not parts.hostname:
            raise AgentError('an xmlrpc agent needs an http or https --url, '
                             'not %r' % (url,))
        if not method or not isinstance(method, str):
            raise AgentError('an xmlrpc agent needs a --method name')
        self.url = url
        self.method = method

    def describe(self):
        return '%s on %s' % (self.method, self.url)

    def uploader(self, app, context):
        return XMLRPCUploader(
            CallbackProxy(self.url, context.reactor, agent=context.http,
                          **({'timeout': context.timeout}
                             if context.timeout else {})),
            self.method, agent=self.id, batch_size=self.batch_size,
            retries=context.retries, backoff=context.backoff,
            clock=context.clock)


class XMLRPCUploader(RecordUploader):
    """Calls proxy.call(method, batch) for each batch."""

    def __init__(self, proxy, method, **kw):
        super().__init__(**kw)
        self.proxy = proxy
        self.method = method

    def _upload_batch(self, batch):
        return self.proxy.call(self.method, batch)
