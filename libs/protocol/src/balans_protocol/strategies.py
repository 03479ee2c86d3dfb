"""Hypothesis strategies for every record and frame (tests and the fuzz target use them).

Needs ``hypothesis``: the ``strategies`` extra (``balans-protocol[strategies]``; the
workspace's dev group has it). Production code never imports this.
"""

from __future__ import annotations

from hypothesis import strategies as st

from balans_protocol.auth import NONCE_BYTES
from balans_protocol.errors import NackReason
from balans_protocol.frames import (
    MAX_DETAIL_BYTES,
    Ack,
    Body,
    Command,
    CommandAction,
    CommandResult,
    CommandStatus,
    Frame,
    Hello,
    Nack,
    Ping,
    Upload,
)
from balans_protocol.records import (
    EventRecord,
    Medium,
    PulseRecord,
    RawTelegramRecord,
    Record,
    StatusRecord,
    TemperatureRecord,
)

u8 = st.integers(0, 0xFF)
i8 = st.integers(-128, 127)
u16 = st.integers(0, 0xFFFF)
i16 = st.integers(-0x8000, 0x7FFF)
u32 = st.integers(0, 0xFFFF_FFFF)
u64 = st.integers(0, 0xFFFF_FFFF_FFFF_FFFF)
nonces = st.binary(min_size=NONCE_BYTES, max_size=NONCE_BYTES)

records: st.SearchStrategy[Record] = st.one_of(
    st.builds(PulseRecord, module=u32, input=u8, ts_unix=u32, count=u32),
    st.builds(TemperatureRecord, module=u32, ts_unix=u32, supply_centi_c=i16, return_centi_c=i16),
    st.builds(
        StatusRecord,
        module=u32,
        ts_unix=u32,
        battery_mv=u16,
        rssi_dbm=i8,
        hops=u8,
        parent=u32,
        tamper=st.booleans(),
        error_bits=u16,
    ),
    st.builds(EventRecord, module=u32, ts_unix=u32, code=u16),
    st.builds(
        RawTelegramRecord,
        module=u32,
        medium=st.sampled_from(Medium),
        received_unix=u32,
        rssi_dbm=i8,
        data=st.binary(max_size=300),
    ),
)


def _detail() -> st.SearchStrategy[str]:
    return st.text(max_size=60).filter(lambda s: len(s.encode()) <= MAX_DETAIL_BYTES)


bodies: st.SearchStrategy[Body] = st.one_of(
    st.builds(Hello, boot=u32, nonce=nonces, echo=nonces),
    st.lists(records, max_size=40).map(Upload.of),
    st.builds(Ack, acked_seq=u32),
    st.builds(Nack, refused_seq=u32, reason=st.sampled_from(NackReason)),
    st.builds(Command, module=u32, action=st.sampled_from(CommandAction), input=u8),
    st.builds(
        CommandResult,
        command_seq=u32,
        status=st.sampled_from(CommandStatus),
        detail=_detail(),
    ),
    st.builds(Ping, reply=st.booleans()),
)

frames: st.SearchStrategy[Frame] = st.builds(Frame, concentrator=u64, seq=u32, body=bodies)
keys = st.binary(min_size=32, max_size=32)
