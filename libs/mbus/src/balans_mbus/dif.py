"""Walking EN 13757-3 record headers: where a DIF/DIFE/VIF/VIFE header ends and how many
data bytes follow it. Used to cut a payload into records (so one bad record does not cost
the others) and to expand compact frames. Interpreting the header is pymbusparser's job.
"""

from __future__ import annotations

# Data length by the low nibble of the DIF (EN 13757-3 table 4); None = variable (LVAR).
_DATA_LENGTH: dict[int, int | None] = {
    0x0: 0, 0x1: 1, 0x2: 2, 0x3: 3, 0x4: 4, 0x5: 4, 0x6: 6, 0x7: 8,
    0x8: 0, 0x9: 1, 0xA: 2, 0xB: 3, 0xC: 4, 0xD: None, 0xE: 6,
}  # fmt: skip
EXTENSION = 0x80
IDLE_FILLER = 0x2F
_SPECIAL = 0x0F  # low nibble of 0x0F/0x1F manufacturer data, 0x2F filler, 0x7F global readout
_PLAIN_TEXT_VIF = 0x7C
_MAX_EXTENSIONS = 10  # EN 13757-3 allows up to 10 DIFE and 10 VIFE


class HeaderError(Exception):
    """A header or data block that does not fit the bytes available."""


def is_special(dif: int) -> bool:
    """Manufacturer-specific data (0x0F, 0x1F), idle filler (0x2F) or global readout (0x7F)."""
    return dif & 0x0F == _SPECIAL


def _chain_end(buf: bytes, pos: int, what: str) -> int:
    """Position after a byte and its extension chain starting at ``pos``."""
    for _ in range(_MAX_EXTENSIONS + 1):
        if pos >= len(buf):
            raise HeaderError(f"data ends inside a {what} chain")
        pos += 1
        if not buf[pos - 1] & EXTENSION:
            return pos
    raise HeaderError(f"more than {_MAX_EXTENSIONS} {what} extensions")


def plain_text_span(buf: bytes, vif_pos: int) -> tuple[int, int] | None:
    """Where the unit text of a plain-text VIF at ``vif_pos`` lies, or ``None`` for others.

    EN 13757-3: for VIF 0x7C / 0xFC "the true VIF is represented by the following ASCII
    string with the length given in the first byte": the length byte and the text follow
    the VIF itself, and the VIFEs announced by 0xFC's extension bit come after the text
    (as meters send it and libmbus, jMBus and wmbusmeters read it).
    """
    if vif_pos >= len(buf) or buf[vif_pos] & 0x7F != _PLAIN_TEXT_VIF:
        return None
    if vif_pos + 1 >= len(buf):
        raise HeaderError("plain-text VIF without its length")
    start = vif_pos + 2
    end = start + buf[vif_pos + 1]
    if end > len(buf):
        raise HeaderError("plain-text VIF longer than the data")
    return start, end


def header_end(buf: bytes, pos: int) -> int:
    """Position after the DIF..VIFE header that starts at ``pos`` (not a special DIF)."""
    vif_pos = _chain_end(buf, pos, "DIF/DIFE")
    text = plain_text_span(buf, vif_pos)
    if text is None:
        return _chain_end(buf, vif_pos, "VIF/VIFE")
    if not buf[vif_pos] & EXTENSION:
        return text[1]
    return _chain_end(buf, text[1], "VIFE")


def lvar_length(lvar: int) -> int:
    """Bytes after a variable-length (LVAR) byte, EN 13757-3 table 5."""
    if lvar <= 0xBF:
        return lvar
    if lvar <= 0xEF:
        return lvar & 0x0F
    raise HeaderError(f"LVAR 0x{lvar:02X} is reserved or not supported")


def data_length(dif: int, data: bytes, pos: int) -> int:
    """Data bytes of a record with ``dif`` whose data starts at ``data[pos]`` (LVAR included)."""
    fixed = _DATA_LENGTH[dif & 0x0F]
    if fixed is not None:
        return fixed
    if pos >= len(data):
        raise HeaderError("data ends before a variable-length (LVAR) byte")
    return 1 + lvar_length(data[pos])
