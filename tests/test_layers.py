"""The shape of the code: layers that import only downwards, no cycles.

The graph is built from the source with ``ast``: every ``import`` and
``from ... import``, at module level or inside a function, is an edge
(``from package import module`` is an edge to the module). Importing
inside a function does not hide a dependency from this test.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

SRC = pathlib.Path(__file__).resolve().parent.parent / 'src' / 'linksync'

#: The layers from the bottom up; a module may import from its own layer
#: and the layers below it, never from a layer above.
LAYERS = [
    # The shared vocabulary: states, what a URL is, the protocol version.
    ('vocabulary', ('linksync', 'linksync.states', 'linksync.urlnorm')),
    ('xmlrpc', ('linksync.xmlrpc',)),
    ('tracked', ('linksync.tracked',)),
    ('stores', ('linksync.stores',)),
    ('track', ('linksync.track',)),
    ('agents', ('linksync.agents',)),
    ('client', ('linksync.client',)),
    ('server', ('linksync.server',)),
    # What puts everything together: the command line, the test helpers,
    # the re-export of every interface.
    ('top', ('linksync.cli', 'linksync.commands', 'linksync.testing',
             'linksync.interfaces')),
]


def module_name(path):
    parts = list(path.relative_to(SRC.parent).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


MODULES = {module_name(p): p for p in sorted(SRC.rglob('*.py'))}


def layer_of(module):
    best = None
    for index, (name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + '.'):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    assert best is not None, 'module %s is in no layer' % module
    return best[0]


def is_extension(module):
    """True for a C extension module of linksync (built from a .c file)."""
    path = SRC.parent.joinpath(*module.split('.'))
    return path.with_suffix('.c').exists()


def imports_of(module):
    """(line, imported module) for every import of a linksync module."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding='utf-8'), str(path))
    package = module if path.name == '__init__.py' else \
        module.rpartition('.')[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                source = '.'.join(base + ([node.module] if node.module
                                          else []))
            else:
                source = node.module
            targets = []
            for alias in node.names:
                name = source + '.' + alias.name
                if name in MODULES:
                    targets.append(name)
                elif not is_extension(name):
                    targets.append(source)
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition('.')[0]
            if target and target != module:
                found.append((node.lineno, target))
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def test_every_module_is_in_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_module_imports_from_a_layer_above_it():
    upward = []
    for module, imports in GRAPH.items():
        for line, target in imports:
            if layer_of(target) > layer_of(module):
                upward.append('%s:%d imports %s (%s above %s)' % (
                    module, line, target, LAYERS[layer_of(target)][0],
                    LAYERS[layer_of(module)][0]))
    assert upward == []


def cycles(graph):
    """The strongly connected components of more than one module."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for _, w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph)))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def test_no_import_cycles():
    assert cycles(GRAPH) == []


def test_the_cycle_finder_finds_cycles():
    graph = {'a': [(1, 'b')], 'b': [(1, 'c')], 'c': [(1, 'a')], 'd': []}
    assert cycles(graph) == [['a', 'b', 'c']]
    assert cycles({'a': [(1, 'b')], 'b': []}) == []


@pytest.mark.parametrize('package', [
    'linksync.tracked', 'linksync.stores', 'linksync.track',
    'linksync.agents', 'linksync.xmlrpc', 'linksync.client'])
def test_lower_layers_load_no_server_module(package):
    loaded = subprocess.run(
        [sys.executable, '-c',
         'import sys, %s; print(" ".join(sorted(m for m in sys.modules '
         'if m.startswith("linksync.server") or m == "linksync.interfaces"'
         ')))' % package],
        capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []
