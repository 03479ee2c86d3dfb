"""A language at work: translate, and format numbers, quantities, money and dates per locale."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal

from balans_i18n.catalogs import Catalogs


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark, translate later"
    """Mark a message for the catalogs without translating it here."""
    return message


# a unit as stored -> its msgid (translated by the common catalog: кВт·ч, Гкал, м³)
UNITS: Mapping[str, str] = {
    "kWh": N_("kWh"),
    "Gcal": N_("Gcal"),
    "m3": N_("m³"),
    "MWh": N_("MWh"),
    "kW": N_("kW"),
    "m2": N_("m²"),
}


@dataclass(frozen=True)
class Localizer:
    locale: str
    catalogs: Catalogs

    def gettext(self, message: str, **values: object) -> str:
        text: str = self.catalogs.translations(self.locale).gettext(message)
        return text.format(**values) if values else text

    __call__ = gettext

    def unit(self, unit: str) -> str:
        return self.gettext(UNITS[unit]) if unit in UNITS else unit

    def number(self, value: float | Decimal | None, digits: int = 1, most: int = 0) -> str:
        """``digits`` decimals (up to ``most`` when they are not zeros); ``None`` is
        "no data", never 0."""
        if value is None:
            return self.gettext("no data")
        decimals = "0" * digits + "#" * max(0, most - digits)
        pattern = f"#,##0.{decimals}" if decimals else "#,##0"
        return format_decimal(value, format=pattern, locale=self.locale)

    def quantity(
        self, value: float | Decimal | None, unit: str, digits: int = 1, most: int = 0
    ) -> str:
        if value is None:
            return self.gettext("no data")
        return f"{self.number(value, digits, most)}\u00a0{self.unit(unit)}"

    def money(self, amount: Decimal, currency: str = "MDL") -> str:
        return format_currency(amount, currency, locale=self.locale, currency_digits=True)

    def date(self, day: date) -> str:
        return format_date(day, format="long", locale=self.locale)

    def datetime(self, moment: datetime, zone: str) -> str:
        return format_datetime(moment, format="medium", tzinfo=ZoneInfo(zone), locale=self.locale)
