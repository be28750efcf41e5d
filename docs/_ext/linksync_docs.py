"""Sphinx directives that document linksync from its code.

* ``.. linksync-options::`` lists the options of ``linksync serve`` (from
  linksync.server.options), so the guide never disagrees with ``--help``;
* ``.. linksync-xmlrpc::`` lists the XML-RPC methods with their signatures
  and help (from the API's method table and the admin operations);
* ``.. linksync-interfaces:: MODULE`` documents the zope.interface
  interfaces MODULE defines, with their attributes and methods (autodoc
  does not know interfaces: they are neither classes nor data).
"""

import importlib
import inspect

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective


def _cell(text):
    return ' '.join(str(text).split()) or ' '


class _Generated(SphinxDirective):
    has_content = False

    def render(self, lines):
        node = nodes.section()
        node.document = self.state.document
        self.state.nested_parse(StringList(lines, source='<linksync>'), 0,
                                node)
        return node.children


class OptionsDirective(_Generated):
    """A table of the options of `linksync serve`."""

    def run(self):
        from linksync.server import options as config
        lines = ['.. list-table::', '   :header-rows: 1',
                 '   :widths: 30 20 50', '',
                 '   * - option', '     - default', '     - meaning']
        for option in config.SERVER_OPTIONS:
            name = '``--%s%s``' % (option.name, ' %s' % option.metavar
                                  if option.metavar else '')
            default = '``%s``' % (option.default,) \
                if option.default not in (None, [], '') else '—'
            meaning = option.help
            if option.env:
                meaning += ' (also ``$%s``)' % option.env
            if option.multiple:
                meaning += ' (repeatable)'
            lines += ['   * - %s' % name, '     - %s' % _cell(default),
                      '     - %s' % _cell(meaning)]
        return self.render(lines)


class XMLRPCDirective(_Generated):
    """The XML-RPC methods of the server, with signatures and help."""

    def run(self):
        from linksync.server.admin import operations as admin
        from linksync.server.api import methods
        from linksync.server.configure import configure
        from linksync.xmlrpc.resource import MethodTable
        # The operations are those the composition root registers.
        configure()
        table = MethodTable()
        for name in methods.names():
            table.add(methods[name])
        lines = []
        for name in table.names():
            method = table[name]
            lines += self._method(name, [p.name + ('?' if p.optional else '')
                                         for p in method.params],
                                  method.signatures(), method.help)
        for name, op in admin.registered():
            params = ['secret'] + [p.name for p in op.params]
            lines += self._method('admin.' + name, params, None, op.help)
        return self.render(lines)

    def _method(self, name, params, signatures, help):
        lines = ['``%s(%s)``' % (name, ', '.join(params))]
        body = []
        if signatures:
            body.append('Signature%s: %s.' % (
                's' if len(signatures) > 1 else '',
                '; '.join('``%s``' % ' '.join(s) for s in signatures)))
            body.append('')
        body += (help or 'Undocumented.').splitlines()
        lines += ['   ' + line if line.strip() else '' for line in body]
        return lines + ['']


class InterfacesDirective(_Generated):
    """The interfaces a module defines, in the order it defines them."""

    required_arguments = 1

    def run(self):
        from zope.interface.interface import InterfaceClass, Method
        name = self.arguments[0]
        module = importlib.import_module(name)
        lines = ['.. py:module:: %s' % name, '   :no-index:', '']
        for iface in vars(module).values():
            if not isinstance(iface, InterfaceClass) or \
                    iface.__module__ != name:
                continue
            lines += ['.. py:class:: %s' % iface.__name__, '']
            bases = [b.__identifier__ for b in iface.__bases__
                     if b.__name__ != 'Interface']
            body = []
            if bases:
                body += ['Extends %s.' % ', '.join(
                    ':class:`~%s`' % b for b in bases), '']
            body += _doc(iface.__doc__)
            lines += _indent(body)
            for attr, description in iface.namesAndDescriptions():
                if isinstance(description, Method):
                    entry = ['.. py:method:: %s%s' % (
                        attr, description.getSignatureString()), '']
                else:
                    entry = ['.. py:attribute:: %s' % attr, '']
                entry += _indent(_doc(description.getDoc()))
                lines += _indent(entry)
        return self.render(lines)


def _doc(text):
    return (inspect.cleandoc(text or '') or 'Undocumented.').splitlines() \
        + ['']


def _indent(lines):
    return ['   ' + line if line.strip() else '' for line in lines]


def setup(app):
    app.add_directive('linksync-options', OptionsDirective)
    app.add_directive('linksync-xmlrpc', XMLRPCDirective)
    app.add_directive('linksync-interfaces', InterfacesDirective)
    return {'parallel_read_safe': True, 'version': '1'}
