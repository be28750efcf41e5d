import io

from twisted.internet import task
from twisted.logger import LogLevel, Logger, LogPublisher

from linksync.server.logfile import LogWriter


def make(level=LogLevel.info):
    stream = io.StringIO()
    clock = task.Clock()
    writer = LogWriter(stream, level, clock, flush_interval=0.5)
    publisher = LogPublisher(writer)
    return stream, clock, writer, Logger(namespace='test',
                                         observer=publisher)


def test_lines_are_buffered_and_flushed_soon():
    stream, clock, writer, log = make()
    log.info('{peer} {method} ok', peer='127.0.0.1', method='checkConnection')
    assert stream.getvalue() == ''
    clock.advance(0.5)
    line = stream.getvalue()
    assert line.endswith(' [test#info] 127.0.0.1 checkConnection ok\n')
    assert line[:4].isdigit() and line[10] == 'T'


def test_warnings_and_errors_are_written_at_once():
    stream, clock, writer, log = make()
    log.info('first')
    log.warn('careful: {what}', what='disk')
    assert stream.getvalue().splitlines()[1].endswith(
        '[test#warn] careful: disk')


def test_levels_below_the_threshold_are_dropped():
    stream, clock, writer, log = make(LogLevel.warn)
    log.info('chatter')
    log.debug('more chatter')
    writer.flush()
    assert stream.getvalue() == ''


def test_failures_carry_their_traceback():
    stream, clock, writer, log = make()
    try:
        1 / 0
    except ZeroDivisionError:
        log.failure('in {part}', part='the checker')
    text = stream.getvalue()
    assert '[test#critical] in the checker' in text
    assert '\tZeroDivisionError' in text or 'ZeroDivisionError' in text


def test_twisted_style_formats_still_work():
    stream, clock, writer, log = make()
    log.info('{obj.name!r} has {n:03d}', obj=type('O', (), {'name': 'x'}),
             n=7)
    writer.close()
    assert stream.getvalue().endswith("'x' has 007\n")
