"""Sending mail: the registration password, notification alarms.

:class:`SMTPMailer` hands messages to an SMTP server (``--smtp HOST:PORT``)
with Twisted's SMTP client; :class:`NoMailer` stands in when no mail
delivery is configured and fails every message with a clear error.
"""

import email.message
import email.policy
import email.utils

from twisted.internet import defer
from twisted.mail import smtp
from zope.interface import implementer

from linksync.server.interfaces import IMailer

DEFAULT_SENDER = 'linksync@localhost'
LONG_LINES = email.policy.default.clone(max_line_length=998)


class MailNotConfigured(Exception):
    """No mail delivery is configured on this server."""


@implementer(IMailer)
class SMTPMailer:
    """Delivers mail through an SMTP server."""

    configured = True

    def __init__(self, host, port=25, sender=DEFAULT_SENDER, reactor=None,
                 timeout=60, username=None, password=None):
        if reactor is None:
            from twisted.internet import reactor
        self.host = host
        self.port = port
        self.sender = sender
        self.reactor = reactor
        self.timeout = timeout
        self.username = username
        self.password = password

    def __repr__(self):
        return '<SMTPMailer %s:%d from %s>' % (self.host, self.port,
                                               self.sender)

    def message(self, to_address, subject, body, headers=()):
        """The message as bytes (RFC 5322), with the extra `headers`
        ((name, value) pairs)."""
        # Lines up to RFC 5322's 998 characters: a long header (a link in
        # List-Unsubscribe) stays readable instead of becoming encoded words.
        msg = email.message.EmailMessage(policy=LONG_LINES)
        msg['From'] = self.sender
        msg['To'] = to_address
        msg['Subject'] = subject
        msg['Date'] = email.utils.formatdate(localtime=False)
        msg['Message-ID'] = email.utils.make_msgid(domain='linksync')
        for name, value in headers:
            msg[name] = value
        msg.set_content(body)
        return msg.as_bytes()

    def send(self, to_address, subject, body, headers=()):
        d = smtp.sendmail(
            self.host.encode() if isinstance(self.host, str) else self.host,
            self.sender, [to_address],
            self.message(to_address, subject, body, headers), port=self.port,
            reactor=self.reactor, username=self.username,
            password=self.password, requireAuthentication=False,
            requireTransportSecurity=False)
        d.addTimeout(self.timeout, self.reactor)
        return d


@implementer(IMailer)
class NoMailer:
    """No mail delivery: every message fails with MailNotConfigured."""

    configured = False

    def send(self, to_address, subject, body, headers=()):
        return defer.fail(MailNotConfigured(
            'no mail delivery is configured (start the server with --smtp)'))


def make_mailer(settings, reactor):
    """The IMailer the settings ask for (--smtp), else a NoMailer."""
    if settings.smtp:
        host, port = settings.smtp
        return SMTPMailer(host, port, settings.mail_from, reactor=reactor)
    return NoMailer()
