"""Benchmark: one full synchronisation of a big client.

    .venv/bin/python bench/sync.py [--links 200000]

The client's link database holds LINKS links: half of them new to the
server, the other half registered already; the server also holds a quarter
as many URLs again that the client no longer has (so 150,000 before, 200,000
after, for 200,000 links). The client's callback is a separate process on
127.0.0.1 (it answers getAllLinks with a prepared answer and accepts every
updateManyStates).

Each synchronisation runs in a fresh process on its own copy of the same
FileStorage, and reports its wall time, the peak resident memory of that
process, and the longest time the reactor could not run other work (a
heartbeat every 10 ms measures it). Side by side:

* ``syncer``: linksync.server.syncer (units of work, savepoints, one transaction);
* ``baseline``: what one writes first: fetch, then register and unregister
  everything in one unit of work (linksync.server.model.registration), then send the
  states in batches.

Targets: the syncer under 60 s and 500 MiB for 200,000 links.
"""

import argparse
import http.server
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

# bench/xmlrpc.py is named like the standard library's xmlrpc package:
# a script run from here has this directory first on sys.path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') !=
               os.path.dirname(os.path.abspath(__file__))]
import xmlrpc.client  # noqa: E402

SECRET = 'bench-secret'
PASSWORD = 'bench-password'
E = 'http://www%d.example.com/page/%d'


def url(i):
    return E % (i % 997, i)


def plan(links):
    """(kept, new, removed) URL lists for a client with `links` links."""
    half = links // 2
    kept = [url(i) for i in range(half)]
    new = [url(i) for i in range(half, links)]
    removed = [url(i) for i in range(links, links + links // 4)]
    return kept, new, removed


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the parts, each in its own process ------------------------------------------

def setup(data, links, callback_url):
    """Create the server's database: fred with kept + removed URLs."""
    from linksync.server import database, storage
    from linksync.server.configure import configure
    configure()
    from linksync.server.model import registration
    from linksync.server.interfaces import IClientProvider
    from linksync.server.model.client import Client
    kept, new, removed = plan(links)
    db = database.Database(storage.open_storage(data))
    session = db.session()

    def add(app):
        import zope.component
        client = Client('fred', callback_url, 'Fred', 'fred@example.com',
                        PASSWORD)
        client.set_callback_password(PASSWORD, SECRET)
        zope.component.getUtility(IClientProvider).add(client)
    session.run(add)
    have = kept + removed
    for start in range(0, len(have), 10_000):
        def register(app, chunk=have[start:start + 10_000]):
            import zope.component
            client = zope.component.getUtility(IClientProvider).get('fred')
            registration.register(client, chunk, 0)
        session.run(register)
    session.close()
    db.close()


def callback_server(links, port_file):
    """Serve fred's callback until killed."""
    kept, new, removed = plan(links)
    answer = xmlrpc.client.dumps((kept + new,), methodresponse=True,
                                 encoding='utf-8').encode('utf-8')
    ok = xmlrpc.client.dumps((True,), methodresponse=True).encode('utf-8')

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'

        def do_POST(self):
            body = self.rfile.read(int(self.headers['content-length']))
            method = xmlrpc.client.loads(body)[1]
            data = answer if method == 'xmlrpc_getAllLinks' else ok
            self.send_response(200)
            self.send_header('content-type', 'text/xml')
            self.send_header('content-length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    with open(port_file + '.tmp', 'w') as f:
        f.write(str(server.server_address[1]))
    os.rename(port_file + '.tmp', port_file)
    server.serve_forever()


def run_sync(data, how, links):
    """Synchronise fred once; print the figures as JSON."""
    from twisted.internet import reactor, task

    from linksync.server import database, storage
    from linksync.server.configure import configure
    configure()
    db = database.Database(storage.open_storage(data))
    session = db.session()
    before = peak_mib()
    gaps = {'last': None, 'max': 0.0}

    def beat():
        now = time.perf_counter()
        if gaps['last'] is not None:
            gaps['max'] = max(gaps['max'], now - gaps['last'])
        gaps['last'] = now
    heart = task.LoopingCall(beat)
    outcome = {}

    def go():
        heart.start(0.01)
        started = time.perf_counter()
        if how == 'syncer':
            d = _ours(session, reactor)
        else:
            d = _baseline(session, reactor)

        def done(result):
            outcome['seconds'] = time.perf_counter() - started
            outcome['result'] = result
        d.addCallbacks(done, lambda f: outcome.setdefault('error', str(f)))
        d.addBoth(lambda _: reactor.stop())
    reactor.callWhenRunning(go)
    reactor.run()
    session.close()
    db.close()
    if 'error' in outcome:
        raise SystemExit('%s failed: %s' % (how, outcome['error']))
    print(json.dumps({'seconds': outcome['seconds'], 'peak_mib': peak_mib(),
                      'before_mib': before, 'stall': gaps['max'],
                      'result': outcome['result']}))


def _ours(session, reactor):
    from linksync.server.syncer import Syncer
    syncer = Syncer(session, reactor, reactor, SECRET)
    d = syncer.sync_clients(['fred'])

    def check(results):
        result = results[0]
        if result.status != 'ok':
            raise RuntimeError(result.error)
        return result.as_dict()
    d.addCallback(check)
    d.addBoth(lambda r: syncer.pool.closeCachedConnections().addCallback(
        lambda _: r))
    return d


def _baseline(session, reactor):
    import zope.component
    from twisted.internet import defer

    from linksync import states, urlnorm
    from linksync.server.model import registration
    from linksync.xmlrpc.proxy import CallbackProxy
    from linksync.server.interfaces import IClientProvider

    @defer.inlineCallbacks
    def sync():
        url, credentials = session.read(lambda app: (
            fred().callback_url, fred().callback_credentials(SECRET)))
        proxy = CallbackProxy(url, reactor)
        links = yield proxy.get_all_links(*credentials)

        def apply(app):
            client = fred()
            wanted = set(urlnorm.normalize_many(links))
            gone = [u for u in client.url_keys() if u not in wanted]
            registration.unregister(client, gone, 0)
            registration.register(client, links, 0)
            return [[spelling, states.wire_state(u.state), u.reason]
                    for u in client.urls
                    for spelling in client.spellings(u.url)]
        rows = session.run(apply)
        for start in range(0, len(rows), 1000):
            yield proxy.update_many_states(credentials[0], credentials[1],
                                           rows[start:start + 1000])
        yield proxy.agent._pool.closeCachedConnections()
        return {'links': len(links), 'states': len(rows)}

    def fred():
        return zope.component.getUtility(IClientProvider).get('fred')
    return sync()


# -- the driver ------------------------------------------------------------------

def child(*args):
    return [sys.executable, os.path.abspath(__file__), '--child', *args]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--links', type=int, default=200_000)
    parser.add_argument('--child', nargs='+', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        how, rest = args.child[0], args.child[1:]
        if how == 'setup':
            return setup(rest[0], args.links, rest[1])
        if how == 'callback':
            return callback_server(args.links, rest[0])
        return run_sync(rest[0], how, args.links)

    work = tempfile.mkdtemp(prefix='linksync-bench-sync-')
    port_file = os.path.join(work, 'port')
    callback = subprocess.Popen(child('callback', port_file,) +
                                ['--links', str(args.links)])
    try:
        while not os.path.exists(port_file):
            time.sleep(0.05)
        with open(port_file) as f:
            callback_url = 'http://127.0.0.1:%s/' % f.read()
        kept, new, removed = plan(args.links)
        print('client: %d links (%d new, %d kept); server: %d URLs of it '
              'before (%d removed since)' % (
                  args.links, len(new), len(kept), len(kept) + len(removed),
                  len(removed)))
        started = time.perf_counter()
        pristine = os.path.join(work, 'pristine')
        subprocess.run(child('setup', pristine, callback_url) +
                       ['--links', str(args.links)], check=True)
        print('set-up: %.1f s' % (time.perf_counter() - started))
        figures = {}
        for how in ('syncer', 'baseline'):
            data = os.path.join(work, how)
            shutil.copytree(pristine, data)
            out = subprocess.run(child(how, data) + ['--links',
                                                     str(args.links)],
                                 check=True, capture_output=True, text=True)
            figures[how] = json.loads(out.stdout.splitlines()[-1])
            f = figures[how]
            print('%-8s  %6.1f s  peak %6.0f MiB (%4.0f MiB before)  '
                  'longest reactor stall %6.2f s' % (
                      how, f['seconds'], f['peak_mib'], f['before_mib'],
                      f['stall']))
        ours, base = figures['syncer'], figures['baseline']
        result = ours['result']
        assert (result['registered'], result['unregistered'],
                result['kept'], result['states']) == (
                    len(new), len(removed), len(kept), args.links), result
        print('syncer / baseline: time %.2f, peak memory %.2f, longest '
              'stall %.3f' % (ours['seconds'] / base['seconds'],
                              ours['peak_mib'] / base['peak_mib'],
                              ours['stall'] / max(base['stall'], 1e-9)))
        print('targets: < 60 s: %s, < 500 MiB: %s' % (
            'met' if ours['seconds'] < 60 else 'MISSED',
            'met' if ours['peak_mib'] < 500 else 'MISSED'))
    finally:
        callback.kill()
        callback.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
