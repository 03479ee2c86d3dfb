"""Invoice exports: JSON for the API, CSV for integrators, a printable HTML page and its
PDF (WeasyPrint) for residents, in Romanian, Russian or English."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from functools import cache

from jinja2 import Environment, PackageLoader, select_autoescape
from weasyprint import HTML

from balans_billing.charges import Line
from balans_billing.document import InvoiceDocument
from balans_i18n.catalogs import DEFAULT_LOCALE, Catalogs
from balans_i18n.localizer import N_, Localizer

CSV_COLUMNS = (
    "invoice_id",
    "number",
    "kind",
    "corrects_id",
    "account_number",
    "period_first_day",
    "period_last_day",
    "line_no",
    "utility",
    "code",
    "description",
    "quantity",
    "unit",
    "unit_price",
    "amount",
)

CATALOGS = Catalogs("balans_billing")

_templates = Environment(
    loader=PackageLoader("balans_billing", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

UTILITIES = {
    "heat": N_("heat"),
    "cold_water": N_("cold water"),
    "hot_water": N_("hot water"),
    "gas": N_("gas"),
    "electricity": N_("electricity"),
}
CHARGES = {
    "fixed": N_("fixed charge"),
    "capacity": N_("capacity charge"),
    "operations": N_("operations charge (metering, network, billing)"),
}
# the units of the lines that are not units of a utility
LINE_UNITS = {
    "month": N_("month"),
    "point-month": N_("metering point × month"),
    "kW-month": N_("kW × month"),
    "m2-month": N_("m² × month"),
}
BASES = {"account": N_("account"), "resident": N_("resident"), "m2": N_("m²")}
# charges.py words a block "consumption, block 2 (3-6 m3 per resident)" or "(over 6 ...)"
_BLOCK = re.compile(
    r"consumption, block (?P<n>\d+) \((?:over (?P<over>\S+)|(?P<low>\S+)-(?P<high>\S+))"
    r" (?P<unit>\S+) per (?P<basis>\w+)\)"
)


def describe(line: Line, lang: Localizer) -> str:
    """The line's charge in the reader's language (the stored text is English)."""
    if line.code in CHARGES:
        return lang(CHARGES[line.code])
    if line.code.startswith("tax_"):
        return lang.gettext(
            "tax {name}, {rate} %",
            name=line.code[4:].upper(),
            rate=lang.number(100 * line.unit_price, 0, 2),
        )
    block = _BLOCK.fullmatch(line.description)
    if block is None:
        return line.description
    unit, basis = lang.unit(block["unit"]), lang(BASES.get(block["basis"], block["basis"]))
    if block["over"] is not None and Decimal(block["over"]) == 0:
        return lang.gettext("consumption")  # a single, flat price
    if block["over"] is not None:
        return lang.gettext(
            "consumption, block {n}: over {low} {unit} per {basis}",
            n=block["n"], low=block["over"], unit=unit, basis=basis,
        )  # fmt: skip
    return lang.gettext(
        "consumption, block {n}: {low} to {high} {unit} per {basis}",
        n=block["n"], low=block["low"], high=block["high"], unit=unit, basis=basis,
    )  # fmt: skip


def line_unit(unit: str, lang: Localizer) -> str:
    return lang(LINE_UNITS[unit]) if unit in LINE_UNITS else lang.unit(unit)


def to_json(doc: InvoiceDocument) -> str:
    """The document as JSON; money and quantities are decimal strings, never floats."""
    return doc.model_dump_json(indent=2)


def to_csv(doc: InvoiceDocument) -> str:
    """One row per line (``CSV_COLUMNS``); the invoice total is the sum of ``amount``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for n, line in enumerate(doc.lines, start=1):
        writer.writerow(
            (
                doc.invoice_id,
                doc.number,
                doc.kind,
                doc.corrects_id or "",
                doc.account_number,
                doc.period_first_day.isoformat(),
                doc.period_last_day.isoformat(),
                n,
                line.utility,
                line.code,
                line.description,
                line.quantity,
                line.unit,
                line.unit_price,
                line.amount,
            )
        )
    return out.getvalue()


@cache
def _localizer(locale: str) -> Localizer:
    return Localizer(locale, CATALOGS)


def to_html(doc: InvoiceDocument, locale: str = DEFAULT_LOCALE) -> str:
    """A self-contained printable page (inline CSS, A4 print rules) in ``locale``."""
    lang = _localizer(locale)
    return _templates.get_template("invoice.html.j2").render(
        doc=doc,
        lang=lang,
        _=lang.gettext,
        locale=locale,
        utility=lambda u: lang(UTILITIES[u]) if u in UTILITIES else u,
        describe=lambda line: describe(line, lang),
        line_unit=lambda unit: line_unit(unit, lang),
    )


def to_pdf(doc: InvoiceDocument, locale: str = DEFAULT_LOCALE) -> bytes:
    """The printable page as an A4 PDF (WeasyPrint; fonts from the system's fontconfig)."""
    return HTML(string=to_html(doc, locale)).write_pdf()
