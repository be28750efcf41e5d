"""The XML-RPC transport shared by the server, agents, tracked device sync
and the client kit: a hardened server resource and site (``resource``,
``site``), a hardened client (``proxy``) and the fault codes
(``faults``)."""
