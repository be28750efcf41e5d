"""The client kit: what an application needs to work with a linksync server.

* :class:`LMSClient` (blocking) and :class:`TwistedLMSClient` (Deferreds):
  every method of PROTOCOL.md, typed, in batches, with time limits, retries
  of what may pass, and one exception class per problem
  (:mod:`linksync.client.errors`);
* :class:`LinkDatabase`: the client's links and their states in a file
  (YAML by default), kept in sync with the server by a Synchronizer;
* :class:`CallbackResource`: the XML-RPC resource the server calls back
  (``xmlrpc_getAllLinks``, ``updateManyStates``), checking its credentials;
* :class:`ClientService`: all of it running, what ``linksync client
  serve`` starts.

docs/client.txt tells the story.
"""

from linksync.client.blocking import LMSClient
from linksync.client.deferred import TwistedLMSClient
from linksync.client.errors import (BadCredentials, ClientExists, LMSError,
                                    ServerFault, ServerUnreachable,
                                    UnexpectedAnswer)
from linksync.client.linkdb import LinkDatabase, StateChange
from linksync.client.methods import URLState, URLStatus
from linksync.client.resource import CallbackResource
from linksync.client.service import ClientService

__all__ = [
    'BadCredentials', 'CallbackResource', 'ClientExists', 'ClientService',
    'LMSClient', 'LMSError', 'LinkDatabase', 'ServerFault',
    'ServerUnreachable', 'StateChange', 'TwistedLMSClient', 'URLState',
    'URLStatus', 'UnexpectedAnswer',
]
