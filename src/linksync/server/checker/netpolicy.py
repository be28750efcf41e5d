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
>>> policy.refusal('64:ff9b::a00:1')
'blocked by policy: 64:ff9b::a00:1 is a private address'
>>> policy.refusal('224.0.0.1')
'blocked by policy: 224.0.0.1 is a multicast address'
>>> NetworkPolicy(['127.0.0.0/8']).refusal('127.0.0.5') is None
True

The same policy vets the server's other outgoing calls: client callbacks
(the notifier's and the syncer's ``updateManyStates``,
``xmlrpc_getAllLinks``) and export agents (:func:`callback_policy`), whose
refusals say which option opens the address:

>>> callback_policy(None).refusal('127.0.0.1')
'blocked by policy: 127.0.0.1 is a loopback address (--allow-network 127.0.0.1/32 opens it)'

IPv6 forms that carry an IPv4 address (IPv4-mapped and -compatible, the
SIIT ``::ffff:0:0:0/96`` form, NAT64, 6to4 and Teredo) are judged by the
IPv4 address inside them, since that is where the packets end up.
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


#: IPv6 prefixes whose last 32 bits are an IPv4 address.
_LOW32_PREFIXES = tuple(ipaddress.ip_network(n) for n in (
    '::/96',            # IPv4-compatible (deprecated, still routed by some)
    '::ffff:0:0/96',    # IPv4-mapped
    '::ffff:0:0:0/96',  # SIIT IPv4-translated
    '64:ff9b::/96',     # NAT64 well-known prefix
    '64:ff9b:1::/48',   # NAT64 local-use prefix
))


def embedded_ipv4(ip):
    """The IPv4 address an IPv6 address carries, or None.

    >>> str(embedded_ipv4(ipaddress.ip_address('::10.0.0.1')))
    '10.0.0.1'
    >>> str(embedded_ipv4(ipaddress.ip_address('2002:a00:1::1')))
    '10.0.0.1'
    >>> embedded_ipv4(ipaddress.ip_address('::1')) is None
    True
    """
    if ip.version != 6:
        return None
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    for prefix in _LOW32_PREFIXES:
        if ip in prefix:
            if prefix.prefixlen == 96 and int(ip) >> 32 == 0 \
                    and int(ip) <= 1:
                return None  # :: and ::1 are IPv6 themselves
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


class NetworkPolicy:
    """Refuses non-global addresses except in the allowed networks; with
    `advise`, a refusal names the ``--allow-network`` that opens it."""

    def __init__(self, allowed=(), advise=False):
        self.allowed = [ipaddress.ip_network(n, strict=False)
                        if isinstance(n, str) else n for n in allowed or ()]
        self.advise = advise

    def refusal(self, address):
        """None when `address` (text) may be reached, else the reason."""
        try:
            ip = ipaddress.ip_address(address.split('%', 1)[0])
        except ValueError:
            return 'blocked by policy: %r is not an IP address' % (address,)
        inner = embedded_ipv4(ip)
        checked = inner if inner is not None else ip
        for network in self.allowed:
            if any(a.version == network.version and a in network
                   for a in (ip, checked)):
                return None
        # is_global holds for multicast groups (224.0.0.1 among them);
        # a checker has no business sending to a group.
        if checked.is_global and not checked.is_multicast:
            return None
        for test, name in _KINDS:
            if getattr(checked, test):
                break
        else:
            name = 'non-global'
        refusal = 'blocked by policy: %s is a %s address' % (address, name)
        if self.advise:
            refusal += ' (--allow-network %s/%d opens it)' % (
                ip, ip.max_prefixlen)
        return refusal


def callback_policy(settings):
    """The policy of the server's calls to clients and export targets:
    the checker's (the ``--allow-network`` ranges of `settings`), its
    refusals naming the option."""
    return NetworkPolicy(getattr(settings, 'allow_network', None) or (),
                         advise=True)
