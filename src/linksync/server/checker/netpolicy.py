"""Which addresses the checker may connect to (the SSRF guard).

A server that checks URLs its clients hand it must not become a way into
the networks around it. Loopback, private, link-local, multicast and other
non-global addresses are refused unless an ``--allow-network`` range opens
them. The check is made on the address the host name resolved to, just
before connecting to exactly that address, so a name that resolves to an
internal address (or changes its answer between two look-ups) does not pass.

>>> policy = NetworkPolicy()
>>> policy.refusal('93.184.216.34') is None
True
>>> policy.refusal('127.0.0.1')
'blocked by policy: 127.0.0.1 is a loopback address'
>>> policy.refusal('10.1.2.3')
'blocked by policy: 10.1.2.3 is a private address'
>>> policy.refusal('::ffff:192.168.0.1')
'blocked by policy: ::ffff:192.168.0.1 is a private address'
>>> NetworkPolicy(['127.0.0.0/8']).refusal('127.0.0.5') is None
True
"""

import ipaddress

#: (test, name) in the order they are tried; the first that holds names the
#: refusal.
_KINDS = (
    ('is_loopback', 'loopback'),
    ('is_link_local', 'link-local'),
    ('is_multicast', 'multicast'),
    ('is_unspecified', 'unspecified'),
    ('is_private', 'private'),
    ('is_reserved', 'reserved'),
)


class NetworkPolicy:
    """Refuses non-global addresses except in the allowed networks."""

    def __init__(self, allowed=()):
        self.allowed = [ipaddress.ip_network(n, strict=False)
                        if isinstance(n, str) else n for n in allowed or ()]

    def refusal(self, address):
        """None when `address` (text) may be reached, else the reason."""
        try:
            ip = ipaddress.ip_address(address.split('%', 1)[0])
        except ValueError:
            return 'blocked by policy: %r is not an IP address' % (address,)
        mapped = getattr(ip, 'ipv4_mapped', None)
        checked = mapped if mapped is not None else ip
        for network in self.allowed:
            if checked.version == network.version and checked in network:
                return None
        if checked.is_global:
            return None
        for test, name in _KINDS:
            if getattr(checked, test):
                break
        else:
            name = 'non-global'
        return 'blocked by policy: %s is a %s address' % (address, name)
