"""linksync-ctl (linksync.server.control): an instance's ZEO server and server as
background processes, with pid files and logs."""

import os
import socket
import xmlrpc.client

import pytest

from linksync import testing
from linksync.server import control

LINKSYNC = testing.LINKSYNC_COMMAND


def instance(tmp_path):
    """The programs of an instance on free ports, as buildout.cfg makes."""
    var = tmp_path / 'var'
    zeo = '127.0.0.1:%d' % testing.free_port()
    port = testing.free_port()
    programs = [
        dict(name='zeo', command=LINKSYNC + [
            'zeo', '--data', str(var / 'zeo'), '--listen', zeo],
            address=zeo),
        dict(name='server', command=LINKSYNC + [
            'serve', '--zeo', zeo, '--data', str(var / 'server'),
            '--listen', 'tcp:%d:interface=127.0.0.1' % port,
            '--secret', 'sesame'],
            address='127.0.0.1:%d' % port),
    ]
    return programs, str(var)


def ctl(capsys, programs, var, *argv):
    code = control.main(programs, var, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def stopped_at_the_end():
    stops = []
    yield stops.append
    for programs, var in stops:
        control.main(programs, var, ['stop'])


def test_start_status_stop(tmp_path, capsys, stopped_at_the_end):
    programs, var = instance(tmp_path)
    stopped_at_the_end((programs, var))
    assert ctl(capsys, programs, var, 'status')[:2] == (
        1, 'zeo: stopped\nserver: stopped\n')
    code, out, err = ctl(capsys, programs, var, 'start')
    assert code == 0, err
    assert out.startswith('zeo: started (pid ')
    assert '\nserver: started (pid ' in out
    pids = [int(open(os.path.join(var, 'run', name + '.pid')).read())
            for name in ('zeo', 'server')]
    code, out, _ = ctl(capsys, programs, var, 'status')
    assert code == 0
    assert 'zeo: running (pid %d, %s, log ' % (
        pids[0], programs[0]['address']) in out
    # The server answers, on the ZEO database.
    proxy = xmlrpc.client.ServerProxy(
        'http://%s/RPC2' % programs[1]['address'])
    proxy.registerClient('sesame', 'fred', 'http://127.0.0.1:9/', 'Fred',
                         'fred@example.com', 'pw')
    assert proxy.checkConnection('fred', 'pw') == 2
    # Starting again starts nothing.
    code, out, _ = ctl(capsys, programs, var, 'start')
    assert code == 0 and out.count('already running') == 2

    code, out, _ = ctl(capsys, programs, var, 'restart')
    assert code == 0
    assert out.index('server: stopped') < out.index('zeo: stopped') < \
        out.index('zeo: started')
    assert ctl(capsys, programs, var, 'stop')[:2] == (
        0, 'server: stopped\nzeo: stopped\n')
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not os.listdir(os.path.join(var, 'run'))
    # What they printed is in their logs; the data stayed.
    log = open(os.path.join(var, 'log', 'server.log')).read()
    assert 'linksync running: api, checker, syncer, agents' in log
    assert 'linksync stopped; the database is closed' in log
    assert os.path.exists(os.path.join(var, 'zeo', 'Data.fs'))
    assert ctl(capsys, programs, var, 'stop')[1] == \
        'server: not running\nzeo: not running\n'


def test_stale_pid_files_are_noticed(tmp_path, capsys):
    programs, var = instance(tmp_path)
    os.makedirs(os.path.join(var, 'run'))
    # A pid that is not running, and one that is another program (this
    # test: pids are reused).
    with open(os.path.join(var, 'run', 'zeo.pid'), 'w') as f:
        f.write('%d\n' % (2 ** 22 + 1))
    with open(os.path.join(var, 'run', 'server.pid'), 'w') as f:
        f.write('%d\n' % os.getpid())
    assert ctl(capsys, programs, var, 'status')[:2] == (
        1, 'zeo: stopped\nserver: stopped\n')
    assert not os.listdir(os.path.join(var, 'run'))


def test_a_failed_start_is_reported_and_rolled_back(tmp_path, capsys,
                                                    stopped_at_the_end):
    programs, var = instance(tmp_path)
    stopped_at_the_end((programs, var))
    programs[1]['command'].append('--log-level=chatty')  # refused at start
    code, out, err = ctl(capsys, programs, var, 'start')
    assert code == 1
    assert err.startswith('linksync-ctl: error: server exited at once '
                          '(status 1); the end of ')
    assert "unknown log level 'chatty'" in err
    assert 'zeo: started' in out and 'zeo: stopped again' in out
    assert ctl(capsys, programs, var, 'status')[0] == 1
    # A port taken by another process is named.
    with socket.socket() as taken:
        host, port = programs[0]['address'].split(':')
        taken.bind((host, int(port)))
        taken.listen()
        code, _, err = ctl(capsys, programs, var, 'start')
    assert code == 1
    assert err == 'linksync-ctl: error: zeo: %s is in use by another ' \
        'process\n' % programs[0]['address']


def test_usage(tmp_path, capsys):
    programs, var = instance(tmp_path)
    with pytest.raises(SystemExit) as info:
        control.main(programs, var, ['begin'])
    assert info.value.code == 2
    assert "invalid choice: 'begin'" in capsys.readouterr().err
