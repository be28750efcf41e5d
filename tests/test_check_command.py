"""linksync check: URLs checked once from the command line."""

import os
import subprocess
import sys

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


def test_check_refuses_loopback_by_default():
    web = testservers.HTTPTestServer('127.0.0.2').start()
    url = web.url('/status/200')
    done = linksync('check', url)
    assert done.returncode == 1
    assert done.stdout == ('%s\tunsupported protocol\tblocked by policy: '
                           '127.0.0.2 is a loopback address\n' % url)
    assert web.log == []


def test_check_bad_input_is_a_clear_error():
    done = linksync('check', 'http://a b/')
    assert done.returncode == 1
    assert done.stderr == ('linksync: error: invalid URL: white space or '
                           "control character in 'http://a b/'\n")
    done = linksync('check', '--per-host-delay', 'soon', 'http://x.test/')
    assert done.returncode == 2
    assert "invalid seconds value: 'soon'" in done.stderr
    done = linksync('check', '--allow-network', '10.0.0.0/33', 'http://x/')
    assert done.returncode == 2
