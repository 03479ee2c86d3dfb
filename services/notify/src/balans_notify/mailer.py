"""Where an e-mail goes: an SMTP server (aiosmtplib, retried with backoff by tenacity), or,
with no SMTP host set, a local Maildir (the default of ``make run``: nothing leaves the
machine, and every message can be read there)."""

from __future__ import annotations

import asyncio
import mailbox
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib
import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from balans_notify import metrics
from balans_notify.settings import NotifySettings

log = structlog.get_logger("notify")

SMTP_FAILURES = (aiosmtplib.SMTPException, OSError)
"""A refused message or an unreachable server: tried again, then redelivered."""


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    """Sends through the configured SMTP server; each failed try is logged and counted."""

    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings

    async def _try(self, message: EmailMessage) -> None:
        s = self.settings
        try:
            await aiosmtplib.send(
                message,
                hostname=s.notify_smtp_host,
                port=s.notify_smtp_port,
                username=s.notify_smtp_username or None,
                password=s.notify_smtp_password or None,
                use_tls=s.notify_smtp_tls,
                timeout=s.notify_smtp_timeout_s,
            )
        except SMTP_FAILURES as exc:
            metrics.SMTP_ERRORS.inc()
            log.warning(
                "smtp try failed", to=message["To"], error=repr(exc), host=s.notify_smtp_host
            )
            raise

    async def send(self, message: EmailMessage) -> None:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self.settings.notify_smtp_attempts),
            wait=wait_exponential(multiplier=self.settings.notify_smtp_backoff_s),
            retry=retry_if_exception_type(SMTP_FAILURES),
            reraise=True,
        ):
            with attempt:
                await self._try(message)


class MaildirMailer:
    """Writes each message as a file of a Maildir (read it with any mail client)."""

    def __init__(self, settings: NotifySettings) -> None:
        self.path = settings.notify_maildir

    async def send(self, message: EmailMessage) -> None:
        def write() -> None:
            mailbox.Maildir(self.path, create=True).add(message)

        await asyncio.to_thread(write)


def mailer_for(settings: NotifySettings) -> Mailer:
    if settings.notify_smtp_host:
        return SmtpMailer(settings)
    log.info("no SMTP host set: e-mails go to a Maildir", maildir=str(settings.notify_maildir))
    return MaildirMailer(settings)
