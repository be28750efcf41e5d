"""The zoo: linksync's real checker against each behaviour of zoo_cases.

Every case starts its own real servers on 127.0.0.1 (a scripted HTTP or
HTTPS server, Twisted's FTP server, a twisted.names DNS responder) and
checks its URL with a Checker on a task.Clock, with short timeouts; the
clock only moves while every request the checker sent is being held by a
zoo server (or, for cases with no server to reach, in small steps), so no
verdict depends on the machine's speed.
"""

import socket

import pytest
from twisted.internet import task

from linksync import testing
from linksync.server import options as config
from linksync.server.checker.check import Checker
from linksync.testing import servers as testservers

import zoo_cases
import zoo_servers

LOOPBACK = config.network('127.0.0.0/8')
TIMEOUT = 10.0

#: The zoo's DNS zone: its hosts resolve to 127.0.0.1.
ZONE = {
    'www.zoo.test': [('A', '127.0.0.1')],
    'inside.zoo.test': [('A', '127.0.0.1')],
    'xn--bcher-kva.zoo.test': [('A', '127.0.0.1')],
    'mail.zoo.test': [('MX', (10, 'www.zoo.test'))],
    'mailonly.zoo.test': [('MX', (10, 'www.zoo.test'))],
    'nomail.zoo.test': [('MX', (0, ''))],
    'alias.zoo.test': [('CNAME', 'www.zoo.test')],
    'chain.zoo.test': [('CNAME', 'alias.zoo.test')],
    'dangling.zoo.test': [('CNAME', 'nothing.zoo.test')],
}
FAILING = ['broken.zoo.test']

_CA = {}


def certificates():
    """The zoo CA and the certificates of the TLS cases (made once)."""
    if not _CA:
        ca = testservers.make_certificate([], ca=True)
        stranger = testservers.make_certificate([], ca=True)
        ip = ['127.0.0.1', 'localhost']
        _CA.update(
            ca=ca,
            valid=(testservers.make_certificate(ip, issuer=ca), None),
            **{'self-signed': (testservers.make_certificate(ip), None),
               'expired': (zoo_servers.expired_certificate(ip, ca), None),
               'mismatch': (testservers.make_certificate(
                   ['other.example'], issuer=ca), None),
               'unknown-ca': (testservers.make_certificate(
                   ip, issuer=stranger), None),
               'sni': (testservers.make_certificate(
                   ['default.example'], issuer=ca),
                   {'localhost': testservers.make_certificate(
                       ['localhost'], issuer=ca)})})
    return _CA


def silent_udp():
    """A bound UDP socket that never answers (a silent DNS server)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(('127.0.0.1', 0))
    testing.on_cleanup(sock.close)
    return sock.getsockname()


def ftp_tree(root):
    (root / 'pub' / 'docs').mkdir(parents=True)
    (root / 'pub' / 'file.txt').write_bytes(b'hello\n' * 1000)
    (root / 'pub' / 'empty.txt').write_bytes(b'')
    (root / 'pub' / 'café.txt').write_bytes(b'utf-8 name\n')
    server = testservers.FTPTestServer(str(root), users={'joe': 's3cret'})
    server.start()
    (root / 'home' / 'joe' / 'private.txt').write_bytes(b'mine')
    return server


def pyftp_tree(root, latin1=False):
    """pyftpdlib on a tree with a non-ASCII name, speaking UTF-8 or
    latin-1 on the wire (pyftpdlib decodes a path with its encoding, then
    opens the file by that name: the name on disk is the machine's)."""
    (root / 'docs').mkdir(parents=True)
    (root / 'home').mkdir()
    with open(root / 'café.txt', 'wb') as f:
        f.write(b'hello\n')
    return zoo_servers.PyFTPServer(
        root, users={'joe': ('s3cret', root / 'home')},
        encoding='latin-1' if latin1 else 'utf8').start()


def start(case, tmp_path):
    """(URL, servers to settle on, checker settings, the pyftpdlib server
    or None) for `case`."""
    settings = dict(per_host_delay=0.0, timeout=TIMEOUT,
                    connect_timeout=TIMEOUT, allow_network=[LOOPBACK],
                    dns_server=[('127.0.0.1', 9)])
    ca_path = tmp_path / 'zoo-ca.pem'
    ca_path.write_bytes(certificates()['ca'][1])
    settings['ca_file'] = str(ca_path)
    fill = {'free': testing.free_port()}
    servers = []
    if case.kind == 'dns':
        dns = zoo_servers.DNSZoneServer(ZONE, failing=FAILING).start()
        settings['dns_server'] = [dns.address]
    pyftp = None
    if case.kind == 'ftp':
        server = ftp_tree(tmp_path / 'ftp')
        fill.update(port=server.port, base='ftp://127.0.0.1:%d' % server.port)
    elif case.kind.startswith('pyftp'):
        pyftp = pyftp_tree(tmp_path / 'pyftp', case.kind == 'pyftp-latin1')
        fill.update(port=pyftp.port, base='ftp://127.0.0.1:%d' % pyftp.port)
        servers.append(pyftp)
    elif case.kind == 'tls':
        cert, by_name = certificates()[case.script]
        server = zoo_servers.ScriptedHTTPServer(
            zoo_cases.answer(), tls=zoo_servers.server_tls(cert, by_name))
        server.start()
        servers.append(server)
        fill.update(port=server.port, base='https://127.0.0.1:%d' % server.port)
    elif case.kind == 'to-tls':
        # A plain server redirecting to the zoo's valid HTTPS server.
        cert, _ = certificates()['valid']
        tls = zoo_servers.ScriptedHTTPServer(
            zoo_cases.answer(), tls=zoo_servers.server_tls(cert)).start()
        server = zoo_servers.ScriptedHTTPServer(zoo_cases.redirect(
            'https://localhost:%d/' % tls.port, 301, 'Moved Permanently'))
        servers += [server.start(), tls]
        fill.update(port=server.port, base='http://127.0.0.1:%d' % server.port)
    elif case.script is not None:
        greeting = case.script if isinstance(case.script, bytes) else None
        server = zoo_servers.ScriptedHTTPServer(
            None if greeting else case.script, greeting=greeting).start()
        if greeting is None:
            # (No request ever reaches a server that only greets.)
            servers.append(server)
        host = 'www.zoo.test' if case.kind == 'dns' else '127.0.0.1'
        fill.update(port=server.port,
                    base='http://%s:%d' % (host, server.port))
    if case.profile == 'strict':
        settings['allow_network'] = []
    elif case.profile == 'silent-dns':
        settings['dns_server'] = [silent_udp()]
    return case.url.format(**fill), servers, settings, pyftp


def _param(case):
    marks = ()
    if case.xfail:
        marks = (pytest.mark.xfail(strict=True, reason=case.xfail),)
    return pytest.param(case, id=case.name, marks=marks)


def test_the_zoo_is_large_and_its_names_unique():
    names = [c.name for c in zoo_cases.CASES]
    assert len(names) == len(set(names))
    assert len(names) >= 110


def run_case(case, tmp_path):
    """(URL, (state, reason), pyftpdlib server or None): linksync's real
    checker on `case`, whose servers run until the next testing.cleanup()."""
    url, servers, settings, pyftp = start(case, tmp_path)
    rt = testing.reactor_thread()
    clock = task.Clock()
    checker = rt.call(Checker, config.defaults(**settings), rt.reactor, clock)
    testing.on_cleanup(rt.call, checker.close)
    if servers:
        results = testservers.run_checks(checker, [url], servers)
    else:
        # Nothing to settle on: small steps, up to a few timeouts' worth.
        results = testservers.run_checks(
            checker, [url], step=0.05, max_steps=int(4 * TIMEOUT / 0.05),
            settle=False)
    return url, results[url], pyftp


@pytest.mark.parametrize('case', [_param(c) for c in zoo_cases.CASES])
def test_case(case, tmp_path):
    url, (state, reason), pyftp = run_case(case, tmp_path)
    # Nothing smuggled into the URL may have reached an FTP server.
    assert not [p for p in tmp_path.rglob('pwned')]
    assert not [c for c in getattr(pyftp, 'commands', ())
                if c.upper().startswith('MKD')]
    assert (state, case.name) == (case.expected, case.name), reason
