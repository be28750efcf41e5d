"""The management secret: the one place that finds, or makes, it.

It protects ``registerClient``, the admin methods and the status pages,
and it seals the passwords the server presents to clients' callbacks
(linksync.server.model.credentials): every process of one deployment
must know the same one.
"""

import os
import secrets as secrets_module

#: The file in the data directory that keeps a generated secret.
SECRET_FILE = 'secret'

#: Roles that need the management secret: the API checks it, the agents
#: unseal the clients' callback credentials with it.
SECRET_ROLES = frozenset({'api', 'agents'})


def load_secret(settings, announce=print):
    """The management secret: --secret, $LINKSYNC_SECRET, or DIR/secret.

    When none exists, one is generated, stored in DIR/secret (mode 0600)
    and announced once.
    """
    if settings.secret:
        return settings.secret
    path = os.path.join(settings.data or 'var', SECRET_FILE)
    try:
        with open(path, encoding='utf-8') as f:
            secret = f.read().strip()
        if secret:
            return secret
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    secret = secrets_module.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        f.write(secret + '\n')
    announce('linksync: generated the management secret (kept in %s): %s'
             % (path, secret))
    return secret


def secret_for(settings, roles=None, announce=print):
    """The management secret of a process running `roles` (see
    load_secret); '' for a process whose roles have no use for it, so a
    checker worker never generates one."""
    if roles is not None and not SECRET_ROLES.intersection(roles):
        return ''
    return load_secret(settings, announce)
