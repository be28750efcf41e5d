"""The linksync plugin of Twisted's `twist` command: `twist linksync ...`."""

from twisted.application.service import ServiceMaker

linksync = ServiceMaker(
    'linksync', 'linksync.server.twist',
    'the linksync link monitoring and synchronisation server', 'linksync')
