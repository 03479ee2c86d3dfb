"""The persister's announcement covers every kind of row it stores: a late module status or
temperature (which moves no allocation figure, so brings no allocation event) reaches
balance through the batch's ``ReadingsStored``, whose first hour is the late row's."""

from __future__ import annotations

from datetime import UTC, datetime

from balans_ingest.persister.batch import Batch
from balans_protocol.frames import Upload
from balans_protocol.messages import ReadingsStored
from balans_protocol.records import PulseRecord, StatusRecord, TemperatureRecord
from balans_protocol.uploads import UploadHeaders

HOUR = 3600
NOW = 1_780_000_000 // HOUR * HOUR


def _headers(seq: int) -> UploadHeaders:
    return UploadHeaders(concentrator=7, building_id=3, boot=1, seq=seq, received_unix=NOW)


def _at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def test_late_status_and_temperature_rows_are_announced_with_their_hours() -> None:
    batch = Batch()
    module = 1_000_001
    batch.add(_headers(1), Upload.of([PulseRecord(module, 0, NOW, 10)]).payload)
    batch.add(
        _headers(2),
        Upload.of(
            [
                StatusRecord(module, NOW - 9 * HOUR, 3500, -80, 2, 7, False, 0),
                TemperatureRecord(module, NOW - 5 * HOUR + 60, 6000, 4000),
            ]
        ).payload,
    )
    assert batch.events() == [
        ReadingsStored(building_id=3, hour_from=_at(NOW - 9 * HOUR), hour_to=_at(NOW), rows=3)
    ]
    alone = Batch()  # a late temperature alone is announced too
    alone.add(_headers(3), Upload.of([TemperatureRecord(module, NOW - 30 * HOUR, 1, 2)]).payload)
    assert [(e.hour_from, e.hour_to) for e in alone.events()] == [(_at(NOW - 30 * HOUR),) * 2]
