"""Tells a resident, by e-mail and once, of an alert balance opened on a meter of their own
flat that they can act on: a leak inside the flat, a magnet at the meter, a meter that
stopped. The message names only their flat and meter (no other flat's data, not balance's
summary, which may compare with neighbours). Sent whatever the monthly e-mail choice:
it may be water running."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formataddr
from typing import Any

import asyncpg
import structlog

from balans_db.queries import api
from balans_i18n.catalogs import DEFAULT_LOCALE
from balans_i18n.localizer import N_, Localizer
from balans_notify import metrics
from balans_notify.mailer import Mailer
from balans_notify.monthly_message import CATALOGS
from balans_notify.once import send_once
from balans_notify.settings import NotifySettings
from balans_protocol.messages import AlertMessage

log = structlog.get_logger("notify")

METRIC = "alert"

# balance's alert kinds a resident acts on -> (what it is, what to do)
KINDS = {
    "consumer_leak": (
        N_("a possible leak in your flat"),
        N_(
            "Water or heat keeps flowing at hours it usually does not: check the taps, the "
            "toilet cistern and the radiators."
        ),
    ),
    "magnet": (
        N_("a magnet at your meter"),
        N_(
            "A magnetic field was detected at the meter; it falsifies the reading. Remove "
            "any magnet; the utility will check the meter."
        ),
    ),
    "stuck_meter": (
        N_("a meter that stopped counting"),
        N_("The meter did not move while your flat used water or heat; the utility will check it."),
    ),
}


def compose(
    alert: AlertMessage, meter: Any, recipient: Any, locale: str, settings: NotifySettings
) -> EmailMessage:
    lang = Localizer(locale, CATALOGS)
    what, advice = (lang.gettext(text) for text in KINDS[alert.kind])
    since = lang.datetime(alert.opened_at, recipient["timezone"])
    message = EmailMessage()
    message["From"] = settings.notify_mail_from
    message["To"] = formataddr((recipient["holder_name"], recipient["email"]))
    message["Subject"] = lang.gettext("Alert on your flat: {what}", what=what)
    domain = settings.notify_mail_from.rsplit("@", 1)[-1].strip("> ") or "balans.invalid"
    message["Message-ID"] = f"<alert-{alert.alert_id}-{recipient['flat_id']}@{domain}>"
    message["Content-Language"] = locale
    lines = [
        lang.gettext("Hello {name},", name=recipient["holder_name"]),
        "",
        lang.gettext(
            "we noticed {what}: flat {flat}, {address}, meter {meter}, since {since}.",
            what=what,
            flat=recipient["flat_number"],
            address=recipient["address"],
            meter=meter["serial"],
            since=since,
        ),
        "",
        advice,
        "",
        lang.gettext("Details in the portal: {url}", url=settings.notify_portal_url + "/my"),
    ]
    message.set_content("\n".join(lines) + "\n")
    return message


class ResidentAlerts:
    def __init__(self, pool: asyncpg.Pool, mailer: Mailer, settings: NotifySettings) -> None:
        self.pool = pool
        self.mailer = mailer
        self.settings = settings

    async def handle(self, alert: AlertMessage) -> None:
        if alert.state != "open" or alert.kind not in KINDS or alert.meter_id is None:
            metrics.EMAILS.labels(METRIC, "not_for_residents").inc()
            return
        meter = await api.meter_holder(self.pool, alert.meter_id)
        recipient = await api.monthly_recipient(self.pool, meter["account_id"]) if meter else None
        if recipient is None:
            metrics.EMAILS.labels(METRIC, "not_for_residents").inc()
            return
        if not recipient["email"]:
            metrics.EMAILS.labels(METRIC, "no_email").inc()
            return
        locale = recipient["language"] or DEFAULT_LOCALE
        message = compose(alert, meter, recipient, locale, self.settings)
        if await send_once(
            self.pool,
            self.mailer,
            message,
            account_id=meter["account_id"],
            period_start=alert.opened_at,
            kind=f"alert.{alert.alert_id}",
            language=locale,
            metric=METRIC,
        ):
            log.info("alert e-mail sent", alert_id=alert.alert_id, kind=alert.kind, language=locale)
