"""The monthly consumption e-mail of one account, in the account holder's language.

What EU Directive 2018/2002 (EED annex VIIa) asks for remotely read meters, monthly: the
month's consumption, compared with the previous month, the same month last year and an
average comparable user (the portal's statement: ``balans_db.queries.allocation.
flat_statement``, every comparison over the same days), the invoice, where to see more,
and how to stop the e-mails."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from email.message import EmailMessage
from email.utils import formataddr
from typing import Any

from babel.dates import format_date

from balans_db.queries.allocation import StatementFigures
from balans_i18n.catalogs import Catalogs
from balans_i18n.localizer import Localizer

CATALOGS = Catalogs("balans_notify")


@dataclass(frozen=True)
class MonthlyInfo:
    account_id: int
    month: date  # the local month's first day
    recipient: Any  # balans_db.queries.api.monthly_recipient
    figures: StatementFigures
    invoice: Any  # balans_db.queries.billing.INVOICES row of the month's invoice


def message_id(account_id: int, month: date, domain: str) -> str:
    """The same for every send of one account's month: a receiver that gets it twice (a
    crash between the SMTP server's acceptance and our commit) can tell."""
    return f"<monthly-{account_id}-{month:%Y-%m}@{domain}>"


def _change(lang: Localizer, now: float | None, before: float | None) -> str:
    pct = StatementFigures.change_pct(now, before)
    if pct is None:
        return ""
    return f" ({'+' if pct > 0 else ''}{lang.number(pct)} %)"


def body(info: MonthlyInfo, lang: Localizer, portal_url: str) -> str:
    _ = lang.gettext
    r, f, inv = info.recipient, info.figures, info.invoice
    portal, settings = portal_url + "/my", portal_url + "/my/settings"
    month = format_date(info.month, "LLLL y", locale=lang.locale)
    kwh = f.kwh

    def line(
        label: str, value: float | None, days: float | None = None, compare: bool = True
    ) -> str:
        text = "  " + label + ": " + lang.quantity(value, "kWh")
        text += _change(lang, kwh, value) if compare else ""
        if value is not None and days is not None:
            text += ", " + _("{days} days with data", days=lang.number(days, 0, 1))
        return text

    lines = [
        _("Hello {name},", name=r["holder_name"]),
        "",
        _(
            "the heat your flat {flat}, {address} (account {account}) used in {month}:",
            flat=r["flat_number"],
            address=r["address"],
            account=r["number"],
            month=month,
        ),
        "",
        line(_("This month"), kwh, f.days_with_data, compare=False),
        line(_("Previous month"), f.previous_month_kwh, f.previous_month_days_with_data),
        line(
            _("Same month last year"),
            f.same_month_last_year_kwh,
            f.same_month_last_year_days_with_data,
        ),
        line(_("Comparable flats (same building, same number of rooms)"), f.comparable_user_kwh),
        "",
    ]
    if f.partial:
        lines += [
            _(
                "The month's data covers {days} of {total} days; every comparison covers the "
                "same first {days} days.",
                days=lang.number(f.days_compared, 0, 1),
                total=lang.number(f.days_in_month, 0, 1),
            ),
            "",
        ]
    lines += [
        _(
            "Invoice {number}: {total}, to pay by {due}.",
            number=inv["number"],
            total=lang.money(Decimal(inv["total"]), inv["currency"]),
            due=lang.date(inv["due_on"]),
        ),
        _("Open, print or download it: {url}", url=portal + "/invoices/" + str(inv["id"])),
        "",
        _("Your heat day by day, and what it is made of: {url}", url=portal),
        "",
        _(
            "You receive this information every month because your meters are read "
            "remotely (EU Energy Efficiency Directive, annex VIIa)."
        ),
        _(
            "To stop these e-mails, sign in to the portal and switch them off under "
            "Settings: {url}",
            url=settings,
        ),
    ]
    return "\n".join(lines) + "\n"


def compose(info: MonthlyInfo, locale: str, sender: str, portal_url: str) -> EmailMessage:
    lang = Localizer(locale, CATALOGS)
    month = format_date(info.month, "LLLL y", locale=locale)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = formataddr((info.recipient["holder_name"], info.recipient["email"]))
    message["Subject"] = lang.gettext("Your heat in {month}", month=month)
    domain = sender.rsplit("@", 1)[-1].strip("> ") or "balans.invalid"
    message["Message-ID"] = message_id(info.account_id, info.month, domain)
    message["Content-Language"] = locale
    message["List-Unsubscribe"] = f"<{portal_url}/my/settings>"
    message.set_content(body(info, lang, portal_url))
    return message
