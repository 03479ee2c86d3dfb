"""What the resident e-mails about their own flat share (an alert, a closed valve): who is
told (the account holding the meter's flat on the day it happened, its address and
language), the message's frame, and sending it once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import formataddr
from typing import Any

import asyncpg
import structlog

from balans_db.queries import api
from balans_i18n.catalogs import DEFAULT_LOCALE
from balans_i18n.localizer import Localizer
from balans_notify import metrics
from balans_notify.mailer import Mailer
from balans_notify.once import send_once
from balans_notify.settings import NotifySettings

log = structlog.get_logger("notify")

Compose = Callable[[Any, Any, str], EmailMessage]
"""(meter, recipient, locale) -> the e-mail."""


def resident_message(
    lang: Localizer,
    recipient: Any,
    settings: NotifySettings,
    *,
    subject: str,
    message_id: str,
    paragraphs: list[str],
) -> EmailMessage:
    """A greeting, the paragraphs and the portal's address, to the account's holder."""
    message = EmailMessage()
    message["From"] = settings.notify_mail_from
    message["To"] = formataddr((recipient["holder_name"], recipient["email"]))
    message["Subject"] = subject
    domain = settings.notify_mail_from.rsplit("@", 1)[-1].strip("> ") or "balans.invalid"
    message["Message-ID"] = f"<{message_id}@{domain}>"
    message["Content-Language"] = lang.locale
    lines = [lang.gettext("Hello {name},", name=recipient["holder_name"]), ""]
    for paragraph in paragraphs:
        lines += [paragraph, ""]
    lines.append(
        lang.gettext("Details in the portal: {url}", url=settings.notify_portal_url + "/my")
    )
    message.set_content("\n".join(lines) + "\n")
    return message


class ResidentMail:
    """Tells the account holding a meter's flat at a time, once per key; ``metric`` is the
    e-mail's kind in ``balans_notify_emails_total``."""

    def __init__(
        self, pool: asyncpg.Pool, mailer: Mailer, settings: NotifySettings, metric: str
    ) -> None:
        self.pool = pool
        self.mailer = mailer
        self.settings = settings
        self.metric = metric

    async def tell(
        self,
        meter_id: int,
        at: datetime,
        *,
        key: tuple[datetime, str],
        compose: Compose,
        **context: Any,
    ) -> bool:
        """Send the e-mail ``compose`` writes to the account holding the meter's flat on the
        local day of ``at``; ``key`` (period start, kind) makes it once per account. False
        when nothing was sent (counted: not_for_residents, vacant, unknown_account,
        no_email, duplicate)."""
        meter = await api.meter_holder(self.pool, meter_id, at)
        if meter is None:  # a meter of no flat (a building's, a riser's)
            metrics.EMAILS.labels(self.metric, "not_for_residents").inc()
            return False
        if meter["account_id"] is None:
            metrics.EMAILS.labels(self.metric, "vacant").inc()
            log.info("flat vacant: nobody told", meter_id=meter_id, at=at, **context)
            return False
        recipient = await api.monthly_recipient(self.pool, meter["account_id"])
        if recipient is None:  # deleted since
            metrics.EMAILS.labels(self.metric, "unknown_account").inc()
            return False
        if not recipient["email"]:
            metrics.EMAILS.labels(self.metric, "no_email").inc()
            return False
        locale = recipient["language"] or DEFAULT_LOCALE
        sent = await send_once(
            self.pool,
            self.mailer,
            compose(meter, recipient, locale),
            account_id=meter["account_id"],
            period_start=key[0],
            kind=key[1],
            language=locale,
            metric=self.metric,
        )
        if sent:
            log.info(
                f"{self.metric} e-mail sent",
                account_id=meter["account_id"],
                language=locale,
                **context,
            )
        return sent
