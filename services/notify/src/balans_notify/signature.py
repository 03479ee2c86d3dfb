"""The webhook signature, after Stripe's: ``Balans-Signature: t=<unix time>,v1=<hex>`` where
``<hex>`` is HMAC-SHA256 with the subscription's secret over ``"<t>." + body``. The
timestamp lets a receiver refuse replays (docs/api.md, "Webhooks")."""

from __future__ import annotations

import hashlib
import hmac

HEADER = "Balans-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header's value for ``body`` sent at ``timestamp``."""
    signed = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
