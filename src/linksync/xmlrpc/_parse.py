"""Reading plain XML-RPC requests without an XML parser's callbacks.

The standard library reads an XML-RPC request with expat calling Python
back for every element (``xmlrpc.client.Unmarshaller``): a dozen calls for
``checkConnection``, four per URL of a ``registerURLs``. Nearly every
request is the plain text an XML-RPC library writes: an optional
``<?xml version="1.0"?>`` declaration (UTF-8), elements without attributes,
strings, integers, booleans, arrays and structs, and no entity references,
comments, CDATA or processing instructions. :func:`read_request` reads that
text with one regular-expression split and a small recursive reader, and
returns None for anything else, which then goes to expat (with defusedxml)
as before. What it returns is exactly what the expat path returns for the
same text (tests/test_rpcparse.py compares them).

>>> read_request(b"<?xml version='1.0'?><methodCall><methodName>add"
...              b"</methodName><params><param><value><int>2</int></value>"
...              b"</param><param><value>x</value></param></params>"
...              b"</methodCall>")
((2, 'x'), 'add')
>>> read_request(b'<methodCall><methodName>a&amp;b</methodName>'
...              b'</methodCall>') is None
True
"""

import re

#: The XML declaration, UTF-8 (the default) only.
_DECLARATION = re.compile(
    r'<\?xml[ \t\n]+version[ \t\n]*=[ \t\n]*(["\'])1\.0\1'
    r'(?:[ \t\n]+encoding[ \t\n]*=[ \t\n]*(["\'])(?:utf|UTF)-8\2)?'
    r'[ \t\n]*\?>')
#: Characters that send a request to expat: references (entities,
#: characters), carriage returns (expat normalises line ends) and the
#: characters XML forbids; so do CDATA ends, comments, declarations and
#: processing instructions (:data:`_EXPAT_ONLY_TEXT`).
_EXPAT_ONLY = re.compile('[&\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]')
_EXPAT_ONLY_TEXT = (']]>', '<!', '<?')
#: The tokens of a plain request, each after optional blank text: the
#: scalar values whole (groups 1-2 a string, typed or bare; 3-4 an integer;
#: 5 a boolean), the method name (6), a member name (7) and a tag of the
#: structure (8, with its slash). A match's lastindex says which it is.
_TOKEN = re.compile(
    r'[ \t\n]*(?:'
    r'<value>(?:<string>([^<]*)</string>|([^<]*))</value>'
    r'|<value><(int|i4)>([^<]*)</\3></value>'
    r'|<value><boolean>([01])</boolean></value>'
    r'|<methodName>([^<]*)</methodName>'
    r'|<name>([^<]*)</name>'
    r'|<(/?(?:methodCall|params|param|value|array|data|struct|member))>'
    r')')
_STRING, _BARE, _INT, _BOOLEAN, _METHOD, _NAME, _TAG = 1, 2, 4, 5, 6, 7, 8

#: A request whose parameters are all strings (most calls), read whole:
#: the method name (1) and the parameters (2), read by :data:`_STRINGS`.
_FLAT = re.compile(
    r'[ \t\n]*<methodCall>[ \t\n]*<methodName>([^<]*)</methodName>'
    r'[ \t\n]*(?:<params>((?:[ \t\n]*<param>[ \t\n]*<value>'
    r'(?:<string>[^<]*</string>|[^<]*)</value>[ \t\n]*</param>)*)'
    r'[ \t\n]*</params>[ \t\n]*)?</methodCall>[ \t\n]*')
_STRINGS = re.compile(r'<value>(?:<string>([^<]*)</string>|([^<]*))</value>')

#: Arrays and structs nested deeper than this go to expat.
MAX_DEPTH = 64


class _NotPlain(Exception):
    """The request is not of the shapes read here."""


def read_request(body):
    """``(params, method name)`` of an XML-RPC request `body` (bytes), or
    None when it is not plain (see the module docstring)."""
    try:
        text = body.decode('utf-8')
    except UnicodeDecodeError:
        return None
    declaration = _DECLARATION.match(text)
    if declaration is not None:
        text = text[declaration.end():]
    if _EXPAT_ONLY.search(text) is not None or \
            any(bad in text for bad in _EXPAT_ONLY_TEXT):
        return None
    flat = _FLAT.fullmatch(text)
    if flat is not None:
        # A string value is typed or bare: one of its groups is empty.
        return tuple(typed or bare for typed, bare in
                     _STRINGS.findall(flat[2] or '')), flat[1]
    try:
        return _read(text)
    except _NotPlain:
        return None


def _read(text):
    """Read the tokens of `text` in order, checking the structure as it
    goes (see :data:`_NEXT` for what may follow what)."""
    # The containers being filled: [kind, container, member name], kind
    # 'params', 'array' or 'struct'.
    stack = []
    # Closing tags that must come next, in order, before anything else.
    expected = []
    want = 'call'
    name = None
    params = None
    position = 0
    match = _TOKEN.match
    while True:
        token = match(text, position)
        if token is None:
            break
        position = token.end()
        kind = token.lastindex
        if expected:
            if kind != _TAG or token[8] != expected.pop(0):
                raise _NotPlain()
            continue
        if kind == _TAG:
            tag = token[8]
            if want == 'value':
                if tag == 'value':
                    if len(stack) > MAX_DEPTH:
                        raise _NotPlain()
                    inner = match(text, position)
                    if inner is None or inner.lastindex != _TAG:
                        raise _NotPlain()
                    position = inner.end()
                    if inner[8] == 'array':
                        stack.append(['array', [], None])
                        expected.append('data')
                    elif inner[8] == 'struct':
                        stack.append(['struct', {}, None])
                        want = 'member'
                    else:
                        raise _NotPlain()
                    continue
                if tag == '/data' and stack[-1][0] == 'array':
                    expected += ['/array', '/value']
                    want = _deliver(stack, stack.pop()[1])
                    continue
                raise _NotPlain()
            if want == 'member' and tag == '/struct':
                expected.append('/value')
                want = _deliver(stack, stack.pop()[1])
                continue
            if want == 'params':
                params = []
                if tag == 'params':
                    stack.append(['params', params, None])
            elif want == 'param' and tag == '/params':
                stack.pop()
                expected.append('/methodCall')
            want = _NEXT.get((want, tag))
            if want is None:
                raise _NotPlain()
        elif want == 'value':
            if kind == _STRING or kind == _BARE:
                value = token[kind]
            elif kind == _INT:
                try:
                    value = int(token[4])
                except ValueError:
                    raise _NotPlain() from None
            elif kind == _BOOLEAN:
                value = token[5] == '1'
            else:
                raise _NotPlain()
            top = stack[-1]
            if top[0] == 'array':
                top[1].append(value)  # the common case, kept short
            else:
                want = _deliver(stack, value)
        elif want == 'name' and kind == _METHOD:
            name = token[6]
            want = 'params'
        elif want == 'membername' and kind == _NAME:
            stack[-1][2] = token[7]
            want = 'value'
        else:
            raise _NotPlain()
    if want != 'done' or expected or text[position:].strip(' \t\n'):
        raise _NotPlain()
    return tuple(params), name


#: (state, tag) -> the next state, for the tags of the structure that the
#: reader does not handle itself.
_NEXT = {
    ('call', 'methodCall'): 'name',
    ('params', 'params'): 'param',
    ('params', '/methodCall'): 'done',
    ('param', 'param'): 'value',
    ('param', '/params'): 'done',
    ('endparam', '/param'): 'param',
    ('member', 'member'): 'membername',
    ('endmember', '/member'): 'member',
}


def _deliver(stack, value):
    """Put a finished value in its container; returns the next state."""
    top = stack[-1]
    if top[0] == 'params':
        top[1].append(value)
        return 'endparam'
    if top[0] == 'array':
        top[1].append(value)
        return 'value'
    top[1][top[2]] = value
    return 'endmember'
