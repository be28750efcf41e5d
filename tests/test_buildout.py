"""The buildout instance: bin/linksync-ctl starts, shows and stops its ZEO
server and server for real (after `make buildout`; CI runs this file
after its buildout step)."""

import os
import subprocess
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CTL = os.path.join(ROOT, 'bin', 'linksync-ctl')


def ctl(*args):
    return subprocess.run([CTL] + list(args), capture_output=True,
                          text=True, timeout=180, cwd=ROOT)


@pytest.fixture
def instance():
    if not os.path.exists(CTL):
        pytest.skip('no bin/linksync-ctl: run `make buildout` first')
    if ctl('status').returncode == 0:
        pytest.skip('the buildout instance is running: not touching it')
    yield
    ctl('stop')


def test_linksync_ctl_start_status_stop(instance):
    started = ctl('start')
    assert started.returncode == 0, started.stdout + started.stderr
    assert 'zeo: started' in started.stdout
    assert 'server: started' in started.stdout
    status = ctl('status')
    assert status.returncode == 0, status.stdout
    lines = status.stdout.splitlines()
    assert [line.split(':')[0] for line in lines] == ['zeo', 'server']
    assert all(': running (pid ' in line for line in lines)
    address = lines[1].split(', ')[1]
    # A browser is sent to the login form of the status page.
    request = urllib.request.Request('http://%s/' % address,
                                     headers={'Accept': 'text/html'})
    with urllib.request.urlopen(request, timeout=30) as page:
        assert page.status == 200
        assert page.url.endswith('/login?next=%2F')
    stopped = ctl('stop')
    assert stopped.returncode == 0
    assert stopped.stdout == 'server: stopped\nzeo: stopped\n'
    status = ctl('status')
    assert status.returncode == 1
    assert status.stdout == 'zeo: stopped\nserver: stopped\n'
    log = open(os.path.join(ROOT, 'var', 'log', 'server.log')).read()
    assert 'linksync stopped; the database is closed' in log
