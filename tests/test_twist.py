"""`twist linksync` runs the same service tree as `linksync serve`."""

import subprocess
import sys
import xmlrpc.client

from twisted.python import usage

from linksync.testing import free_port
from linksync.server.twist import Options, makeService


def test_options_map_to_settings(tmp_path):
    options = Options()
    options.parseOptions(['--data', str(tmp_path), '--max-request-bytes',
                          '1234', '--secret', 's'])
    assert options.settings.data == str(tmp_path)
    assert options.settings.max_request_bytes == 1234
    assert options.settings.listen == 'tcp:8080:interface=127.0.0.1'
    service = makeService(options)
    assert service.secret == 's'


def test_bad_values_are_usage_errors():
    options = Options()
    try:
        options.parseOptions(['--max-request-bytes', 'lots'])
    except usage.UsageError as e:
        assert 'not a whole number' in str(e)
    else:
        raise AssertionError('no UsageError')


def test_twist_serves(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, '-m', 'twisted', 'linksync', '--data',
         str(tmp_path), '--secret', 'sesame', '--listen',
         'tcp:%d:interface=127.0.0.1' % port],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in process.stdout:
            if 'listening on' in line:
                break
        proxy = xmlrpc.client.ServerProxy('http://127.0.0.1:%d/' % port)
        assert proxy.registerClient('sesame', 'fred', 'http://a.example/',
                                    'Fred', 'fred@example.com', 'pw')
        assert proxy.checkConnection('fred', 'pw') == 2
    finally:
        process.terminate()
        process.wait(30)
