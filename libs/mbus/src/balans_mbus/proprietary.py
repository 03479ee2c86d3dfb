"""Meters known to put a proprietary payload behind a standard-looking header.

Such a payload would parse as DIF/VIF records by accident and yield nonsense values, so the
decoder refuses it by name instead. A manufacturer-specific decoder for one of these would
replace its entry here.
"""

from __future__ import annotations

from balans_mbus.model import DeviceHeader

# (manufacturer, device type) -> what is sent instead of EN 13757-3 records
PROPRIETARY_PAYLOADS: dict[tuple[str, int], str] = {
    ("BFW", 0x08): "BFW 240 radio heat cost allocators send a proprietary payload after 0x2F2F",
}


def proprietary_payload(header: DeviceHeader | None) -> str | None:
    """Why this sender's payload is not EN 13757-3 records, or ``None``."""
    if header is None:
        return None
    return PROPRIETARY_PAYLOADS.get((header.manufacturer, header.device_type))
