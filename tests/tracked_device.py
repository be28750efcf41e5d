"""A device process for the two-process sync test (not a test module).

    python tracked_device.py HUB_URL NAME DEVICE_ID SECRET

tracks NAME (saved as NAME.yaml in the current directory), syncs it with
the hub at HUB_URL, and obeys one JSON command per line of stdin,
answering one JSON line on stdout:

* ``{"op": "sync"}``: one sync cycle;
* ``{"op": "do", "code": "data['x'] = 1"}``: change the structure;
* ``{"op": "dump"}``: the structure (wire encoding);
* ``{"op": "quit"}``.
"""

import json
import sys

from linksync import testing
from linksync.tracked import plain_copy, track, wire
from linksync.tracked.devicesync import SyncDevice


def main():
    url, name, device_id, secret = sys.argv[1:5]
    rt = testing.reactor_thread()
    data = track({}, name)
    device = SyncDevice(data, url, device_id, secret=secret,
                        reactor=rt.reactor, timeout=30)
    for line in sys.stdin:
        command = json.loads(line)
        op = command['op']
        try:
            result = None
            if op == 'sync':
                rt.call(device.sync)
            elif op == 'do':
                exec(command['code'], {'data': data})
            elif op == 'dump':
                result = wire.encode(plain_copy(data))
            elif op == 'quit':
                break
            reply = {'ok': True, 'result': result}
        except Exception as e:
            reply = {'ok': False, 'error': '%s: %s' % (type(e).__name__, e)}
        print(json.dumps(reply), flush=True)
    print(json.dumps({'ok': True, 'result': 'bye'}), flush=True)


if __name__ == '__main__':
    main()
