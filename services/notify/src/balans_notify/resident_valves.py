"""Tells a resident, by e-mail and once, that the valve at a meter of their own flat was
closed (an operator's ``valve_close`` command the module carried out: ``CommandFinished``
with status ``done``). The account told is the one holding the flat on the day it closed;
the message names only their flat and meter."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import asyncpg

from balans_i18n.localizer import Localizer
from balans_notify import metrics
from balans_notify.mailer import Mailer
from balans_notify.monthly_message import CATALOGS
from balans_notify.resident_mail import ResidentMail, resident_message
from balans_notify.settings import NotifySettings
from balans_protocol.messages import CommandFinished

METRIC = "valve"


def compose(
    command: CommandFinished, meter: Any, recipient: Any, locale: str, settings: NotifySettings
) -> EmailMessage:
    lang = Localizer(locale, CATALOGS)
    return resident_message(
        lang,
        recipient,
        settings,
        subject=lang.gettext("The valve of your flat was closed"),
        message_id=f"valve-{command.command_id}-{recipient['flat_id']}",
        paragraphs=[
            lang.gettext(
                "the valve at meter {meter} of flat {flat}, {address}, was closed on {when}.",
                meter=meter["serial"],
                flat=recipient["flat_number"],
                address=recipient["address"],
                when=lang.datetime(command.finished_at, recipient["timezone"]),
            ),
            lang.gettext(
                "Nothing flows through this meter until the valve is opened again. If you do "
                "not know why it was closed, call your utility."
            ),
        ],
    )


class ResidentValves:
    def __init__(self, pool: asyncpg.Pool, mailer: Mailer, settings: NotifySettings) -> None:
        self.mail = ResidentMail(pool, mailer, settings, METRIC)

    async def handle(self, command: CommandFinished) -> None:
        if command.action != "valve_close" or command.status != "done":
            metrics.EMAILS.labels(METRIC, "not_for_residents").inc()
            return
        await self.mail.tell(
            command.meter_id,
            command.finished_at,
            key=(command.finished_at, f"valve.{command.command_id}"),
            compose=lambda meter, recipient, locale: compose(
                command, meter, recipient, locale, self.mail.settings
            ),
            command_id=command.command_id,
        )
