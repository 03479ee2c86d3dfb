"""EN 13757 (M-Bus, wireless M-Bus, OMS) telegram decoding for balans.

``decode_telegram`` is the entry point: bytes in, a :class:`DecodedTelegram` out, never an
exception. See docs/mbus.md.
"""
