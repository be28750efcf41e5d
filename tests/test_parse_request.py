"""The server reads a request as the standard library reads it.

Every request here is read both ways: by linksync.xmlrpc.resource's
parse_request (expat through defusedxml) and by the standard library
(expat and xmlrpc.client.Unmarshaller). Where the standard library reads
a call, the answers must be equal; where it refuses one, parse_request
answers a Fault.

(These requests held linksync.xmlrpc._parse, a reader without expat
removed on 2026-12-03, to expat; they now hold parse_request to the
standard library.)
"""

import random
import xmlrpc.client

import pytest

from linksync.xmlrpc.faults import Fault
from linksync.xmlrpc.resource import parse_request


def expat(body):
    """(params, name) as the standard library reads them, or None."""
    try:
        return xmlrpc.client.loads(body, use_builtin_types=True)
    except Exception:
        return None


def check(body):
    """parse_request's answer (None: a Fault), after checking it against
    the standard library's."""
    expected = expat(body)
    try:
        read = parse_request(body)
    except Fault as fault:
        assert fault.faultCode == -32700, body
        # Refused where the standard library refuses it too, or reads no
        # method name (defusedxml refuses DTDs besides).
        assert expected is None or not expected[1] or b'<!DOCTYPE' in body
        return None
    assert read == expected, body
    assert type(read[0]) is tuple
    return read


def random_value(rng, depth=0):
    kind = rng.choice(['str', 'str', 'int', 'bool', 'list', 'dict']
                      if depth < 3 else ['str', 'int', 'bool'])
    if kind == 'str':
        return ''.join(rng.choice(['a', 'Z', ' ', '\n', '\t', 'é', '€',
                                   '<', '>', '&', '"', "'", '/', 'http://x',
                                   '\U0001f600', ']]', ''])
                       for _ in range(rng.randint(0, 6)))
    if kind == 'int':
        return rng.choice([0, 1, -1, 7, 2 ** 31 - 1, -2 ** 31])
    if kind == 'bool':
        return rng.choice([True, False])
    if kind == 'list':
        return [random_value(rng, depth + 1)
                for _ in range(rng.randint(0, 4))]
    return {str(random_value(rng, 3) if rng.random() < 0.3 else 'k') + str(i):
            random_value(rng, depth + 1) for i in range(rng.randint(0, 3))}


def variants(body):
    """The same request written in other ways XML-RPC libraries write."""
    text = body.decode('utf-8')
    yield text
    yield text.replace('\n', '')
    yield text.replace('\n', '\n  \t')
    yield text.replace("<?xml version='1.0'?>\n", '')
    yield text.replace("<?xml version='1.0'?>",
                       '<?xml version="1.0" encoding="UTF-8"?>')
    yield text.replace('<int>', '<i4>').replace('</int>', '</i4>')
    yield text.replace('<value><string>', '<value>').replace(
        '</string></value>', '</value>')


def test_random_requests_read_like_expat():
    rng = random.Random(2)
    read_count = 0
    for _ in range(400):
        params = tuple(random_value(rng) for _ in range(rng.randint(0, 4)))
        body = xmlrpc.client.dumps(params, rng.choice(
            ['checkConnection', 'registerURLs', 'system.multicall']))
        for text in variants(body.encode('utf-8')):
            data = text.encode('utf-8')
            if check(data) is not None:
                read_count += 1
            else:
                # A library's request is always read.
                pytest.fail('not read: %r' % data)
    assert read_count > 1000


def test_mangled_requests_are_never_read_differently():
    # Cut, doubled and swapped pieces: whatever the standard library makes
    # of them (often an error), parse_request makes the same.
    rng = random.Random(3)
    for _ in range(3000):
        params = tuple(random_value(rng) for _ in range(rng.randint(0, 3)))
        body = xmlrpc.client.dumps(params, 'm').encode('utf-8')
        cuts = sorted(rng.randint(0, len(body)) for _ in range(2))
        piece = body[cuts[0]:cuts[1]]
        mangled = rng.choice([
            body[:cuts[0]] + body[cuts[1]:],
            body[:cuts[0]] + piece + piece + body[cuts[1]:],
            body[:cuts[0]] + body[cuts[1]:] + piece,
            body.replace(b'<', b' <', 1 + rng.randint(0, 5)),
        ])
        check(mangled)


@pytest.mark.parametrize('body', [
    # References, comments, CDATA, DTDs, processing instructions.
    b'<methodCall><methodName>a&amp;b</methodName></methodCall>',
    b'<methodCall><methodName>a&#65;</methodName></methodCall>',
    b'<methodCall><!-- x --><methodName>a</methodName></methodCall>',
    b'<methodCall><methodName><![CDATA[a]]></methodName></methodCall>',
    b'<!DOCTYPE x [<!ENTITY e "e">]><methodCall><methodName>&e;'
    b'</methodName></methodCall>',
    b'<?xml version="1.0"?><?pi x?><methodCall><methodName>a</methodName>'
    b'</methodCall>',
    # Line ends expat rewrites, other encodings, a byte-order mark.
    b'<methodCall>\r\n<methodName>a\r\nb</methodName></methodCall>',
    b'<?xml version="1.0" encoding="ISO-8859-1"?><methodCall><methodName>'
    b'\xe9</methodName></methodCall>',
    b'\xef\xbb\xbf<methodCall><methodName>a</methodName></methodCall>',
    b'<methodCall><methodName>\xff</methodName></methodCall>',
    # Attributes, empty-element tags, namespaces, types read by expat.
    b'<methodCall a="1"><methodName>a</methodName></methodCall>',
    b'<methodCall><methodName>a</methodName><params/></methodCall>',
    b'<methodCall><methodName>a</methodName><params><param><value><nil/>'
    b'</value></param></params></methodCall>',
    b'<methodCall><methodName>a</methodName><params><param><value><double>'
    b'1.5</double></value></param></params></methodCall>',
    b'<x:methodCall xmlns:x="u"><x:methodName>a</x:methodName>'
    b'</x:methodCall>',
    # Bad structure: expat or the Unmarshaller decide.
    b'<methodCall><methodName>a</methodName><params><param><value>1'
    b'</value><value>2</value></param></params></methodCall>',
    b'<methodCall><methodName>a</methodName><params><param><value><int>1'
    b'</i4></value></param></params></methodCall>',
    b'<methodCall><methodName>a</methodName><params><param><value><int>x'
    b'</int></value></param></params></methodCall>',
    b'<methodCall><methodName>a</methodName><params><param><value>'
    b'<boolean>2</boolean></value></param></params></methodCall>',
    b'<methodCall><methodName>a</methodName></methodCall>junk',
    b'<methodCall><methodName>a</methodName></methodCall><methodCall>',
    b'<methodCall><methodName>a</methodName>',
    b'<methodCall><params></params></methodCall>',
    b'<methodCall><methodName>a</methodName><params><param><value><array>'
    b'<data><value>1</value></array></value></param></params></methodCall>',
    b'<methodCall><methodName>a</methodName><params><param><value><struct>'
    b'<member><value>1</value><name>n</name></member></struct></value>'
    b'</param></params></methodCall>',
    b'',
    b'not xml at all',
])
def test_what_only_expat_reads_is_read_as_expat_reads_it(body):
    # Read (or refused) as it always was.
    try:
        params, name = parse_request(body)
    except Fault:
        # Refused like expat does (defusedxml refuses DTDs besides).
        assert expat(body) is None or not expat(body)[1] or \
            b'<!DOCTYPE' in body
    else:
        assert (params, name) == expat(body)


def test_deep_nesting_is_read():
    value = 'x'
    # (The removed reader left arrays deeper than 64 to expat.)
    for _ in range(64 + 5):
        value = [value]
    body = xmlrpc.client.dumps((value,), 'm').encode('utf-8')
    assert parse_request(body) == ((value,), 'm')


def test_an_empty_method_name_is_a_fault():
    for body in (b'<methodCall><methodName></methodName></methodCall>',
                 b'<methodCall><methodName></methodName><params><param>'
                 b'<value>&amp;</value></param></params></methodCall>'):
        with pytest.raises(Fault) as e:
            parse_request(body)
        assert e.value.faultCode == -32700


@pytest.mark.parametrize('shape', ['params', 'blanks', 'text', 'array'])
def test_hostile_shapes_are_read_in_linear_time(shape):
    # Regular expressions that can match one text in many ways backtrack
    # exponentially when the match fails at the end; these requests fail
    # at their very end after long runs of what the expressions repeat.
    import time
    n = 20_000
    middle = {
        'params': b'<param> <value>a</value> </param>\n \t' * n,
        'blanks': b' \n\t' * n * 10,
        'text': b'<param><value>' + b'a >' * n * 10 + b'</value></param>',
        'array': b'<param><value><array><data>' +
                 b' <value>u</value> ' * n + b'</data></array></value>'
                 b'</param>',
    }[shape]
    body = (b'<methodCall><methodName>m</methodName><params>' + middle +
            b'</params></methodCall><')
    started = time.process_time()
    with pytest.raises(Fault):
        parse_request(body)
    # Linear: well under a second for these ~600 KB (an exponential
    # matcher would not finish).
    assert time.process_time() - started < 2
