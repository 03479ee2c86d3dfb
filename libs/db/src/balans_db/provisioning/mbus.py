"""Standard M-Bus meters in the world document: a meter's ``mbus`` address (manufacturer,
id, version, medium, AES key) as the ``mbus_meters`` entity of an import.

A registered meter is read through a *virtual radio module* (serial ``2^48 | M << 32 |
id``, outside the u32 range of real modules) that hangs off its building's first
concentrator and carries the meter's registers (:func:`balans_db.topology.add_virtual_module`).
The virtual module, its channel and sensor pair follow from the address and never appear
in a document. The AES key is sealed with the master key (context ``mbus:<M>:<id>``) like
concentrator keys and never read back into a document: a document that leaves it out
keeps the stored one (docs/provisioning.md, "Standard M-Bus meters").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from cryptography.exceptions import InvalidTag

from balans_db.provisioning.document import MBUS_MEDIA, MbusDoc
from balans_db.secrets import KeyVault
from balans_db.topology import add_virtual_module

if TYPE_CHECKING:
    from balans_db.provisioning.changes import Changes, Rows

MBUS_INPUT = 0  # the virtual module's input that counts the meter's own register
VIRTUAL_SERIAL_BASE = 1 << 48
_MEDIUM_NAMES = {code: name for name, code in MBUS_MEDIA.items()}
# which media a meter of each utility may report (EN 13757-3 table 3)
MEDIA_OF_UTILITY: dict[str, frozenset[str]] = {
    "heat": frozenset({"heat", "heat_inlet", "heat_cooling"}),
    "hot_water": frozenset({"warm_water", "hot_water", "water", "dual_water"}),
    "cold_water": frozenset({"cold_water", "water", "dual_water"}),
    "gas": frozenset({"gas"}),
    "electricity": frozenset({"electricity"}),
}


def manufacturer_number(code: str) -> int:
    """The 15-bit M field of a three-letter FLAG code (inverse of the link layer's decoding)."""
    letters = [ord(char) - 64 for char in code.upper()]
    if len(letters) != 3 or any(not 0 <= value <= 31 for value in letters):
        raise ValueError(f"not a manufacturer code: {code!r}")
    return (letters[0] << 10) | (letters[1] << 5) | letters[2]


def virtual_module_serial(manufacturer: str, device_id: str) -> int:
    """A radio-module serial for a standard meter, outside the u32 range of real modules."""
    return VIRTUAL_SERIAL_BASE | manufacturer_number(manufacturer) << 32 | int(device_id, 16)


def key_context(manufacturer: str, device_id: str) -> bytes:
    """What a meter key is bound to when sealed (a key moved to another row will not open)."""
    return f"mbus:{manufacturer}:{device_id}".encode()


def medium_name(code: int | None) -> str | None:
    """The document's name of a stored medium code."""
    return None if code is None else _MEDIUM_NAMES.get(code, f"0x{code:02X}")


@dataclass(frozen=True)
class SealedKey:
    """A stored key as a document comparison sees it: opaque, bound to its address."""

    ciphertext: bytes
    manufacturer: str
    device_id: str


def document_values(code: str, doc: MbusDoc) -> tuple[Any, ...]:
    """The ``mbus_meters`` row of a document's meter (key: the meter's serial)."""
    return (
        code,
        doc.manufacturer.upper(),
        doc.id.upper(),
        doc.version,
        doc.medium,
        None if doc.key is None else doc.key.upper(),
    )


def stored_values(code: str, row: Any) -> tuple[Any, ...]:
    """The same row from a stored record of :data:`STORED_SQL`."""
    sealed = row["key_ciphertext"]
    return (
        code,
        row["manufacturer"],
        row["device_id"],
        row["version"],
        medium_name(row["medium"]),
        None if sealed is None else SealedKey(sealed, row["manufacturer"], row["device_id"]),
    )


KEY_POSITION = 5  # in the values above: a document without a key keeps the stored one

STORED_SQL = """
select mt.building_id, mt.serial, mm.manufacturer, mm.device_id, mm.version, mm.medium,
       mm.key_ciphertext
from mbus_meters mm join meters mt on mt.id = mm.meter_id
where mt.building_id = any($1::int[]) order by mm.id
"""


def drop_unchanged_keys(changes: Changes, old: Rows, vault: KeyVault) -> None:
    """Forget the updates whose only difference is a key equal to the stored one: the
    comparison cannot see through a sealed key, and without this a document that carries
    keys would re-seal them (and announce a change) on every import."""
    updates = changes.update["mbus_meters"]
    for serial, values in list(updates.items()):
        before = old["mbus_meters"][serial]
        if values[:KEY_POSITION] == before[:KEY_POSITION] and _same_key(
            vault, values[KEY_POSITION], before[KEY_POSITION]
        ):
            del updates[serial]


def _same_key(vault: KeyVault, new: str | SealedKey | None, stored: SealedKey | None) -> bool:
    if isinstance(new, SealedKey) or stored is None:
        return new == stored or (not new and stored is None)
    if not new:
        return False
    try:
        opened = vault.open(
            stored.ciphertext, context=key_context(stored.manufacturer, stored.device_id)
        )
    except InvalidTag:  # sealed under another master key: seal the given key again
        return False
    return opened == bytes.fromhex(new)


DELETE_SQL = """
delete from radio_modules where serial in (
  select mm.module_serial from mbus_meters mm join meters mt on mt.id = mm.meter_id
  where mt.serial = any($1::text[]))"""


def _sealed(
    vault: KeyVault, key: str | SealedKey | None, manufacturer: str, device_id: str
) -> bytes | None:
    """The ciphertext to store for ``key``: a new key sealed, a kept one as it is (or
    re-sealed when the meter's address changed), ``""`` or None for none."""
    if not key:
        return None
    context = key_context(manufacturer, device_id)
    if isinstance(key, SealedKey):
        if (key.manufacturer, key.device_id) == (manufacturer, device_id):
            return key.ciphertext
        old = key_context(key.manufacturer, key.device_id)
        return vault.seal(vault.open(key.ciphertext, context=old), context=context)
    return vault.seal(bytes.fromhex(key), context=context)


async def register(
    conn: asyncpg.Connection,
    vault: KeyVault,
    meter_id: int,
    manufacturer: str,
    device_id: str,
    *,
    version: int | None = None,
    medium: int | None = None,
    key: str | SealedKey | None = None,
) -> int:
    """Map an M-Bus address to ``meter_id`` (a meter without a channel): its virtual module,
    channel, sensor pair (heat meters) and ``mbus_meters`` row. Returns the module serial.
    Inside the caller's transaction."""
    manufacturer, device_id = manufacturer.upper(), device_id.upper()
    serial = virtual_module_serial(manufacturer, device_id)
    await add_virtual_module(conn, meter_id, serial, f"M-Bus {manufacturer}", MBUS_INPUT)
    await conn.execute(
        """insert into mbus_meters (meter_id, manufacturer, device_id, module_serial,
                                    key_ciphertext, version, medium)
           values ($1, $2, $3, $4, $5, $6, $7)""",
        meter_id,
        manufacturer,
        device_id,
        serial,
        _sealed(vault, key, manufacturer, device_id),
        version,
        medium,
    )
    return serial


async def write_rows(
    conn: asyncpg.Connection, rows: dict[Any, tuple[Any, ...]], vault: KeyVault
) -> None:
    """Create or update the ``mbus_meters`` rows of an import (meter serial -> values). An
    address that changes is a new virtual module (the old one goes with its channel)."""
    for serial, (_, manufacturer, device_id, version, medium, key) in rows.items():
        meter = await conn.fetchrow(
            """select mt.id, mm.module_serial from meters mt
               left join mbus_meters mm on mm.meter_id = mt.id where mt.serial = $1""",
            serial,
        )
        code = None if medium is None else MBUS_MEDIA[medium]
        if meter["module_serial"] == virtual_module_serial(manufacturer, device_id):
            await conn.execute(
                """update mbus_meters set version = $2, medium = $3, key_ciphertext = $4
                   where meter_id = $1""",
                meter["id"],
                version,
                code,
                _sealed(vault, key, manufacturer, device_id),
            )
            continue
        if meter["module_serial"] is not None:
            await conn.execute(
                "delete from radio_modules where serial = $1", meter["module_serial"]
            )
        await register(
            conn, vault, meter["id"], manufacturer, device_id, version=version, medium=code, key=key
        )
