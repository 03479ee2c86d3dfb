"""Tells a resident, by e-mail and once, of an alert balance opened on a meter of their own
flat that they can act on: a leak inside the flat, a magnet at the meter, a meter that
stopped. The message names only their flat and meter (no other flat's data, not balance's
summary, which may compare with neighbours). Sent whatever the monthly e-mail choice:
it may be water running. The account told is the one holding the flat on the alert's first
hour (a tenant who moved out is not told of the next tenant's flat); a vacant flat tells no
one (``vacant``)."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import asyncpg

from balans_i18n.localizer import N_, Localizer
from balans_notify import metrics
from balans_notify.mailer import Mailer
from balans_notify.monthly_message import CATALOGS
from balans_notify.resident_mail import ResidentMail, resident_message
from balans_notify.settings import NotifySettings
from balans_protocol.messages import AlertMessage

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
    return resident_message(
        lang,
        recipient,
        settings,
        subject=lang.gettext("Alert on your flat: {what}", what=what),
        message_id=f"alert-{alert.alert_id}-{recipient['flat_id']}",
        paragraphs=[
            lang.gettext(
                "we noticed {what}: flat {flat}, {address}, meter {meter}, since {since}.",
                what=what,
                flat=recipient["flat_number"],
                address=recipient["address"],
                meter=meter["serial"],
                since=since,
            ),
            advice,
        ],
    )


class ResidentAlerts:
    def __init__(self, pool: asyncpg.Pool, mailer: Mailer, settings: NotifySettings) -> None:
        self.mail = ResidentMail(pool, mailer, settings, METRIC)

    async def handle(self, alert: AlertMessage) -> None:
        if alert.state != "open" or alert.kind not in KINDS or alert.meter_id is None:
            metrics.EMAILS.labels(METRIC, "not_for_residents").inc()
            return
        await self.mail.tell(
            alert.meter_id,
            alert.first_hour or alert.opened_at,
            key=(alert.opened_at, f"alert.{alert.alert_id}"),
            compose=lambda meter, recipient, locale: compose(
                alert, meter, recipient, locale, self.mail.settings
            ),
            alert_id=alert.alert_id,
            alert_kind=alert.kind,
        )
