"""The composition root: importing registers nothing, configure() all."""

import subprocess
import sys

import zope.component

from linksync.agents.agent import agent_kinds
from linksync.server.admin import operations
from linksync.server.interfaces import IServerPart
from linksync.server.options import ROLES

IMPORT_EVERYTHING = '''
import importlib, pkgutil, sys
import linksync
for info in pkgutil.walk_packages(linksync.__path__, 'linksync.'):
    importlib.import_module(info.name)
import zope.component, zope.event
gsm = zope.component.getGlobalSiteManager()
print(len(list(gsm.registeredUtilities())), len(list(gsm.registeredAdapters())),
      len(list(gsm.registeredHandlers())),
      len(list(gsm.registeredSubscriptionAdapters())),
      len(zope.event.subscribers))
'''


def test_importing_every_module_registers_nothing():
    out = subprocess.run([sys.executable, '-c', IMPORT_EVERYTHING],
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ['0', '0', '0', '0', '0']


def test_configure_registers_every_part_kind_and_operation():
    # tests/conftest.py called configure(), as every entry point does.
    assert {role: zope.component.queryUtility(IServerPart, role) is not None
            for role in ROLES} == dict.fromkeys(ROLES, True)
    assert sorted(agent_kinds()) == ['jsonl', 'notifier', 'xmlrpc']
    names = [name for name, _ in operations.registered()]
    for name in ('stats', 'pack', 'agent_add', 'agent_remove', 'agent_run',
                 'agent_export', 'track_reset', 'sync',
                 'callback_credential'):
        assert name in names


def test_agent_add_help_lists_the_kinds():
    out = subprocess.run(
        [sys.executable, '-m', 'linksync.cli', 'agent', 'add', '--help'],
        capture_output=True, text=True, check=True).stdout
    assert 'KIND' in out
    assert 'one of: jsonl, xmlrpc' in ' '.join(out.split())
    # Each kind's options are offered too.
    assert '--file' in out and '--url' in out and '--max-bytes' in out
