"""The server's log: twisted.logger events written as lines, cheaply.

The server logs one line per XML-RPC call. Twisted's text observer formats
each event through its own formatter and flushes after every line, which
costs more than a call itself. :class:`LogWriter` formats with plain
``str.format`` (falling back to Twisted's formatter for fancier formats),
reuses the timestamp text within a second and buffers lines: they are
written within `flush_interval` seconds, at once for warnings and errors,
and when the writer is closed.

A line: ``2026-11-23T10:00:00+0000 [linksync.xmlrpc#info] text``.
"""

import sys
import time

from twisted.logger import LogLevel, formatEvent
from zope.interface import implementer
from twisted.logger import ILogObserver


#: Levels written at once.
_URGENT = frozenset(x for x in LogLevel.iterconstants() if x >= LogLevel.warn)


@implementer(ILogObserver)
class LogWriter:
    """A log observer writing lines to a text stream."""

    def __init__(self, stream=None, level=LogLevel.info, reactor=None,
                 flush_interval=0.5, max_buffered=200):
        self.stream = stream if stream is not None else sys.stdout
        self.level = level
        self.reactor = reactor
        self.flush_interval = flush_interval
        self.max_buffered = max_buffered
        self._buffer = []
        self._second = None
        self._stamp = ''
        self._pending = None

    @property
    def level(self):
        return self._level

    @level.setter
    def level(self, level):
        # Sets of levels: comparing LogLevel constants is slow.
        self._level = level
        self._written = {x for x in LogLevel.iterconstants() if x >= level}

    def __call__(self, event):
        level = event.get('log_level', LogLevel.info)
        if level not in self._written:
            return
        text = self._text(event)
        if text is None:
            return
        when = event.get('log_time') or time.time()
        second = int(when)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime('%Y-%m-%dT%H:%M:%S+0000',
                                        time.gmtime(second))
        namespace = event.get('log_namespace', '-')
        if namespace == 'log_legacy':
            namespace = event.get('log_system', '-')
        self._buffer.append('%s [%s#%s] %s\n' % (
            self._stamp, namespace, level.name, text))
        if level in _URGENT or len(self._buffer) >= self.max_buffered \
                or self.reactor is None:
            self.flush()
        elif self._pending is None:
            self._pending = self.reactor.callLater(self.flush_interval,
                                                   self.flush)

    def _text(self, event):
        fmt = event.get('log_format')
        if fmt is None:
            text = formatEvent(event) if 'log_io' in event or \
                'log_text' in event else None
            if not text and 'log_failure' not in event:
                return None
            text = text or ''
        else:
            try:
                text = fmt.format_map(event)
            except Exception:
                text = formatEvent(event)
        failure = event.get('log_failure')
        if failure is not None:
            text += '\n' + failure.getTraceback().rstrip('\n')
        return text.replace('\n', '\n\t') if '\n' in text else text

    def flush(self):
        if self._pending is not None:
            if self._pending.active():
                self._pending.cancel()
            self._pending = None
        if self._buffer:
            lines, self._buffer = self._buffer, []
            try:
                self.stream.write(''.join(lines))
                self.stream.flush()
            except (OSError, ValueError):
                pass

    close = flush
