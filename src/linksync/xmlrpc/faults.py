"""Fault codes: the XML-RPC interoperability codes, and HTTP-like codes for
application errors (see docs/xmlrpc.txt)."""

import xmlrpc.client

from twisted.logger import Logger


log = Logger()

#: Fault codes (the XML-RPC interoperability codes, and HTTP-like codes for
#: application errors; see docs/xmlrpc.txt).
PARSE_ERROR = -32700
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
UNAUTHORIZED = 401
TOO_LARGE = 413
CONFLICT = 409
UNAVAILABLE = 503

Fault = xmlrpc.client.Fault
