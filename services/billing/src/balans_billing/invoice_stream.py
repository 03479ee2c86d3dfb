"""The INVOICES JetStream stream: every InvoiceIssued on ``balans.billing.invoice.<account>``
is kept, so an integrator that was offline (or subscribes later) still gets every invoice
and correction, once each (the message id is the invoice id)."""

from __future__ import annotations

from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError

from balans_protocol import subjects

INVOICES_STREAM = "INVOICES"
RETENTION_DAYS = 400  # a year of monthly invoices plus late corrections

INVOICES_STREAM_CONFIG = StreamConfig(
    name=INVOICES_STREAM,
    description="Invoices and corrections issued by billing (InvoiceIssued)",
    subjects=[subjects.INVOICES_ALL],
    retention=RetentionPolicy.LIMITS,
    storage=StorageType.FILE,
    max_age=RETENTION_DAYS * 24 * 3600.0,
    duplicate_window=3600.0,
)


def invoice_msg_id(invoice_id: int) -> str:
    """JetStream de-duplication id of an invoice's announcement."""
    return f"invoice-{invoice_id}"


async def ensure_invoice_stream(js: JetStreamContext) -> None:
    """Create the INVOICES stream, or bring an existing one to the configuration above."""
    try:
        await js.add_stream(INVOICES_STREAM_CONFIG)
    except BadRequestError:  # exists with another configuration: converge on ours
        await js.update_stream(INVOICES_STREAM_CONFIG)
