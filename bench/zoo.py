"""The zoo side by side: linksync's checker and LinkChecker on each case.

    .venv/bin/python bench/zoo.py

Starts the servers of every case of tests/zoo/zoo_cases.py (all at once,
each on its own loopback port), checks each case's URL with linksync's
real checker exactly as tests/zoo/test_zoo.py does, then gives every URL
LinkChecker can be pointed at to one LinkChecker run (PyPI ``linkchecker``,
installed into bench/out/lc-venv as bench/checker.py does; ``-r0
--no-robots``, CSV output, the zoo CA as its ``sslverify`` file, the same
10 s timeout, up to 100 requests/s per host). It prints one line per case
(case, expected, linksync's verdict, LinkChecker's) and per tool the
counts of right verdicts, false alarms (expected fine, the tool says
broken) and missed breaks (expected broken, the tool says fine).

The judgement compared is the one an editor acts on:

* ``fine``: the state ``ok``;
* ``broken``: ``temporary unavailable`` or ``unavailable`` (a person
  would fix or watch the link either way);
* ``unsupported``: ``unsupported protocol`` (no checker for the scheme,
  or the network policy refuses the address).

LinkChecker's result maps as: ``valid`` True (with or without warnings;
its warnings are advice, such as "redirected" or "content size zero") is
``fine``, ``valid`` False is ``broken``; a URL LinkChecker reports as
ignored (its result is "ignored": a scheme it has no checker for) is
``unsupported``; a URL missing from its output is ``broken`` (it gave no
verdict). ``-v`` makes it list valid URLs too. Run as root, LinkChecker
becomes the user nobody, so its files here are world-readable.

LinkChecker is n/a (printed so, excluded from its counts) where it cannot
be pointed at the case: the zoo's DNS zone is served by a local responder
LinkChecker cannot be told to use (it uses the system's resolver), and it
has no network policy to test (the SSRF cases, and a redirect into a
private network, which it would follow off loopback). The totals say how
many.
Traffic goes only to 127.0.0.0/8.
"""

import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
# As in bench/checker.py: bench/xmlrpc.py must not shadow the stdlib.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != HERE]
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'tests', 'zoo'))
sys.path.insert(0, HERE)

import checker as bench_checker  # noqa: E402 (bench/checker.py)
import test_zoo  # noqa: E402
import zoo_cases  # noqa: E402
from linksync import states, testing  # noqa: E402

JUDGEMENT = {states.OK: 'fine', states.TEMPORARY: 'broken',
             states.UNAVAILABLE: 'broken',
             states.UNSUPPORTED: 'unsupported'}


#: Cases whose URL leads off loopback for a checker without linksync's
#: network policy: LinkChecker would follow them there, so it never gets
#: them.
OFF_LOOPBACK = {'redirect-into-blocked-network'}


def linkchecker_applies(case):
    return (case.kind != 'dns' and case.profile != 'strict'
            and case.category != 'ssrf' and case.name not in OFF_LOOPBACK)


def run_linkchecker(urls, ca_file, workdir):
    """{URL: judgement} from one LinkChecker run over `urls`."""
    exe = bench_checker.linkchecker_path()
    config = os.path.join(workdir, 'linkcheckerrc')
    with open(config, 'w') as f:
        f.write('[checking]\nsslverify=%s\nmaxrequestspersecond=100\n'
                'timeout=%d\n' % (ca_file, test_zoo.TIMEOUT))
    args = [exe, '-f', config, '-v', '-r0', '--no-robots', '--no-status',
            '-t', '20', '--timeout', str(int(test_zoo.TIMEOUT)),
            '--stdin', '-o', 'csv']
    proc = subprocess.run(args, input='\n'.join(urls) + '\n', text=True,
                          capture_output=True, cwd=workdir)
    rows = [line for line in proc.stdout.splitlines()
            if line and not line.startswith('#')]
    found = {}
    for row in csv.DictReader(io.StringIO('\n'.join(rows)), delimiter=';'):
        if row.get('result') == 'ignored':
            verdict = 'unsupported'
        elif row.get('valid') == 'True':
            verdict = 'fine'
        else:
            verdict = 'broken'
        found[row['urlname']] = (verdict, row.get('result') or '')
    if os.environ.get('ZOO_DEBUG'):
        print(proc.stdout, proc.stderr, file=sys.stderr)
    return found


def score(pairs):
    """(right, false alarms, missed breaks, other wrong) of
    (expected, got) judgement pairs."""
    right = sum(e == g for e, g in pairs)
    alarms = sum(e == 'fine' and g == 'broken' for e, g in pairs)
    missed = sum(e == 'broken' and g == 'fine' for e, g in pairs)
    return right, alarms, missed, len(pairs) - right - alarms - missed


def main(argv=None):
    import argparse
    import pathlib
    argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    workdir = tempfile.mkdtemp(prefix='zoo-')
    os.chmod(workdir, 0o755)
    rows = []
    try:
        for i, case in enumerate(zoo_cases.CASES):
            tmp = pathlib.Path(workdir, 'case-%03d' % i)
            tmp.mkdir()
            url, (state, reason), _ = test_zoo.run_case(case, tmp)
            rows.append((case, url, JUDGEMENT[state], reason))
        ca_file = os.path.join(workdir, 'case-000', 'zoo-ca.pem')
        lc = run_linkchecker([url for case, url, _, _ in rows
                              if linkchecker_applies(case)], ca_file, workdir)
    finally:
        testing.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    width = max(len(c.name) for c in zoo_cases.CASES)
    print('%-*s  %-11s  %-11s  %-11s  %s' % (
        width, 'case', 'expected', 'linksync', 'LinkChecker',
        "linksync's reason | LinkChecker's result"))
    ours, theirs = [], []
    for case, url, got, reason in rows:
        expected = JUDGEMENT[case.expected]
        ours.append((expected, got))
        if linkchecker_applies(case):
            lc_got, lc_reason = lc.get(url, ('broken', 'no verdict'))
            theirs.append((expected, lc_got))
        else:
            lc_got = lc_reason = 'n/a'
        print('%-*s  %-11s  %-11s  %-11s  %.40s | %.40s' % (
            width, case.name, expected, got, lc_got, reason, lc_reason))
    print()
    print('%-12s %5s %6s %12s %13s %11s' % (
        'tool', 'cases', 'right', 'false alarms', 'missed breaks',
        'other wrong'))
    for tool, pairs in (('linksync', ours), ('LinkChecker', theirs)):
        print('%-12s %5d %6d %12d %13d %11d' % ((tool, len(pairs)) +
                                                  score(pairs)))
    print('LinkChecker n/a on %d of %d cases (local DNS zone, SSRF policy)'
          % (len(ours) - len(theirs), len(ours)))


if __name__ == '__main__':
    main()
