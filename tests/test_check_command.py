"""linksync check: URLs checked once from the command line."""

import os
import signal
import subprocess
import sys
import time

import pytest

from linksync.testing import servers as testservers


def linksync(*args):
    return subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), 'linksync')] +
        list(args),
        capture_output=True, text=True, timeout=120)


def test_check_prints_state_and_reason():
    web = testservers.HTTPTestServer('127.0.0.2').start()
    ok, gone = web.url('/redirect/2'), web.url('/status/404')
    done = linksync('check', '--allow-network', '127.0.0.0/8',
                    '--per-host-delay', '0.1', ok, gone, 'gopher://x.test/')
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        '%s\tok\t200 OK after 2 redirects' % ok,
        '%s\tunavailable\t404 Not Found' % gone,
        'gopher://x.test/\tunsupported protocol\tunsupported protocol: '
        'gopher']
    done = linksync('check', '--allow-network', '127.0.0.0/8', ok)
    assert done.returncode == 0
    assert [h.path for h in web.log].count('/redirect/2') == 2


def test_check_does_not_sit_out_a_long_retry_after():
    # The host asks for an hour: its other URLs are reported at once, and
    # the other host's are checked as usual.
    web = testservers.HTTPTestServer('127.0.0.2').start()
    other = testservers.HTTPTestServer('127.0.0.3').start()
    busy, later, fine = (web.url('/status/429?retry-after=3600'),
                         web.url('/status/200'), other.url('/status/200'))
    done = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), 'linksync'), 'check',
         '--allow-network', '127.0.0.0/8', '--per-host-delay', '30',
         busy, later, fine],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        '%s\ttemporary unavailable\t429 Unknown Status' % busy,
        '%s\ttemporary unavailable\thost asked to wait 3600 s' % later,
        '%s\tok\t200 OK' % fine]
    assert [h.path for h in web.log] == ['/status/429?retry-after=3600']


def test_check_refuses_loopback_by_default():
    web = testservers.HTTPTestServer('127.0.0.2').start()
    url = web.url('/status/200')
    done = linksync('check', url)
    assert done.returncode == 1
    assert done.stdout == ('%s\tunsupported protocol\tblocked by policy: '
                           '127.0.0.2 is a loopback address\n' % url)
    assert web.log == []


def test_check_bad_input_is_a_clear_error():
    done = linksync('check', '--per-host-delay', 'soon', 'http://x.test/')
    assert done.returncode == 2
    assert "invalid seconds value: 'soon'" in done.stderr
    done = linksync('check', '--allow-network', '10.0.0.0/33', 'http://x/')
    assert done.returncode == 2


def test_check_goes_on_after_an_invalid_url():
    web = testservers.HTTPTestServer('127.0.0.2').start()
    ok = web.url('/status/200')
    done = linksync('check', '--allow-network', '127.0.0.0/8',
                    'http://a b/', ok, 'http:///x')
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        'http://a b/\tunavailable\tinvalid URL: white space or control '
        "character in 'http://a b/'",
        '%s\tok\t200 OK' % ok,
        "http:///x\tunavailable\tinvalid URL: no host in 'http:///x'"]
    assert done.stderr == ''


@pytest.mark.parametrize('signum, status', [(signal.SIGINT, 130),
                                            (signal.SIGTERM, 143)])
def test_an_interrupt_ends_cleanly_without_made_up_verdicts(signum, status):
    web = testservers.HTTPTestServer('127.0.0.2').start()
    slow = web.url('/slow')
    proc = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), 'linksync'), 'check',
         '--allow-network', '127.0.0.0/8', slow],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Interrupted while the server holds the request.
        for _ in range(6000):
            if web.hits('/slow') or proc.poll() is not None:
                break
            time.sleep(0.01)
        assert web.hits('/slow')
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == status, stderr
    assert stdout == ''
    assert 'Traceback' not in stderr, stderr
