"""`twist linksync`: the server run by Twisted's own launcher.

``twist linksync --data DIR ...`` takes the options of ``linksync serve``
and runs the same service tree (:class:`linksync.server.service.LinkSyncService`);
``twist`` adds its own logging, daemon-free operation and reactor choice.
"""

import argparse

from twisted.python import usage

from linksync.server import options as config


class Options(usage.Options):
    """The options of `linksync serve`, in twisted.python.usage form."""

    synopsis = '[options]'
    optParameters = [['config', None, None,
                      'ini file with a [linksync] section']] + [
        [o.name, None, None, o.help + (
            ' (default: %s)' % (o.default,) if o.default is not None
            else '')]
        for o in config.SERVER_OPTIONS if not o.multiple]

    def __init__(self):
        super().__init__()
        for option in config.SERVER_OPTIONS:
            if option.multiple:
                self[option.dest] = []
                setattr(self, 'opt_' + option.name.replace('-', '_'),
                        self._appender(option))

    def _appender(self, option):
        def append(value):
            self[option.dest].append(value)
        append.__doc__ = option.help + ' (repeatable)'
        return append

    def postOptions(self):
        from linksync.server.service import check_roles
        try:
            self.settings = config.resolve(self._namespace(),
                                           config.SERVER_OPTIONS)
            check_roles(self.settings)
        except config.ConfigError as e:
            raise usage.UsageError(str(e)) from None

    def _namespace(self):
        namespace = argparse.Namespace(config=self['config'])
        for option in config.SERVER_OPTIONS:
            if option.multiple:
                value = [option.parse(v, 'command line')
                         for v in self[option.dest]] or None
            else:
                value = self.get(option.name)
                if value is not None:
                    value = option.parse(value, 'command line')
            setattr(namespace, option.dest, value)
        return namespace


def makeService(options):
    from linksync.server.configure import configure
    from linksync.server.secret import secret_for
    from linksync.server.service import LinkSyncService
    # The composition root: twist is an entry point of its own.
    configure()
    settings = options.settings
    return LinkSyncService(settings,
                           secret=secret_for(settings, settings.role))
