"""The benchmark scripts start: each of them, run as a script, leaves the
standard library's xmlrpc package reachable (bench/xmlrpc.py, named like
it, sits first on sys.path of a script run from bench/)."""

import os
import pathlib
import subprocess
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parent.parent / 'bench'
SCRIPTS = sorted(p.name for p in BENCH.glob('*.py'))

# Run the script's module code as `python bench/NAME` would (its directory
# first on sys.path) but not its main(); then import what Twisted and
# linksync import.
PROBE = """
import runpy, sys
sys.path.insert(0, {bench!r})
runpy.run_path({script!r}, run_name='probe')
import xmlrpc.client, twisted.web.xmlrpc, linksync.xmlrpc.proxy
assert xmlrpc.client.__file__.startswith(sys.base_prefix), xmlrpc.__file__
print('ok')
"""


@pytest.mark.parametrize('name', SCRIPTS)
def test_a_benchmark_script_leaves_the_stdlib_xmlrpc_reachable(name):
    script = str(BENCH / name)
    result = subprocess.run(
        [sys.executable, '-c', PROBE.format(bench=str(BENCH), script=script)],
        capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE='1'))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith('ok')


@pytest.mark.parametrize('name', SCRIPTS)
def test_a_benchmark_script_answers_help(name):
    result = subprocess.run([sys.executable, str(BENCH / name), '--help'],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'usage' in result.stdout
