"""Invoice exports: JSON for the API, CSV for integrators, printable HTML for consumers."""

from __future__ import annotations

import csv
import io

from jinja2 import Environment, PackageLoader, select_autoescape

from balans_billing.document import InvoiceDocument

CSV_COLUMNS = (
    "invoice_id",
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

_templates = Environment(
    loader=PackageLoader("balans_billing", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


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


def to_html(doc: InvoiceDocument) -> str:
    """A self-contained printable page (inline CSS, A4 print rules)."""
    return _templates.get_template("invoice.html.j2").render(doc=doc)
