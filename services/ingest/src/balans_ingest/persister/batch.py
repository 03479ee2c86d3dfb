"""Gathering the records of many UPLOAD messages into one write (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from balans_ingest.persister.copy_rows import wire_records
from balans_protocol.messages import ReadingsStored
from balans_protocol.records import RawTelegramRecord, RecordType, decode_section, split_sections
from balans_protocol.uploads import UploadHeaders

HOUR_S = 3600


@dataclass
class BuildingSpan:
    """The hours and the number of readings a batch holds for one building."""

    first_unix: int
    last_unix: int
    rows: int = 0

    def event(self, building_id: int) -> ReadingsStored:
        return ReadingsStored(
            building_id=building_id,
            hour_from=datetime.fromtimestamp(self.first_unix // HOUR_S * HOUR_S, UTC),
            hour_to=datetime.fromtimestamp(self.last_unix // HOUR_S * HOUR_S, UTC),
            rows=self.rows,
        )


@dataclass
class Batch:
    """Readings of several messages, by record type, ready for one COPY per table."""

    tables: dict[RecordType, list[np.ndarray]] = field(default_factory=dict)
    raw_telegrams: list[tuple[UploadHeaders, RawTelegramRecord]] = field(default_factory=list)
    spans: dict[int, BuildingSpan] = field(default_factory=dict)

    def add(self, headers: UploadHeaders, body: bytes) -> None:
        """Add one UPLOAD body; raises ``ProtocolError`` (and adds nothing) if it is bad."""
        sections = split_sections(body)
        for section in sections:
            if section.record_type is RecordType.RAW_TELEGRAM:
                self.raw_telegrams += [
                    (headers, record)
                    for record in decode_section(section)
                    if isinstance(record, RawTelegramRecord)
                ]
                continue
            records = wire_records(section.record_type, section.payload)
            self.tables.setdefault(section.record_type, []).append(records)
            self._extend_span(headers.building_id, records["ts"])

    def _extend_span(self, building_id: int, ts: np.ndarray) -> None:
        first, last = int(ts.min()), int(ts.max())
        span = self.spans.get(building_id)
        if span is None:
            span = self.spans[building_id] = BuildingSpan(first, last)
        span.first_unix = min(span.first_unix, first)
        span.last_unix = max(span.last_unix, last)
        span.rows += len(ts)

    def add_readings(self, hours_by_building: dict[int, list[datetime]]) -> None:
        """Announce readings written outside the COPY path (M-Bus telegrams) too."""
        for building_id, hours in hours_by_building.items():
            if hours:
                ts = np.array([int(hour.timestamp()) for hour in hours], dtype=np.int64)
                self._extend_span(building_id, ts)

    def events(self) -> list[ReadingsStored]:
        return [span.event(building_id) for building_id, span in sorted(self.spans.items())]
