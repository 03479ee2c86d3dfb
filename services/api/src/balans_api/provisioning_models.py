"""Request and answer models of the provisioning routes and import jobs (the entities
themselves are the world document's parts, :mod:`balans_db.provisioning.document`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from balans_db.provisioning.document import Layout


class BuildingPatch(BaseModel):
    """The building's own fields to change (the others stay as they are)."""

    site: str | None = Field(None, examples=["chisinau-botanica"])
    name: str | None = Field(None, examples=["Reference block (100 flats)"])
    address: str | None = None
    floors: int | None = Field(None, ge=1, le=200)
    layout: Layout | None = None
    methodology: dict[str, Any] | None = Field(None, examples=[{"method": "area"}])


class Changed(BaseModel):
    """What one provisioning request changed."""

    building: str | None = Field(None, description="code of the building changed")
    changes: dict[str, dict[str, int]] = Field(
        description='entity -> {"create": n, "update": n, "delete": n}',
        examples=[{"meters": {"create": 1, "update": 0, "delete": 0}}],
    )
    concentrator_keys: dict[str, str] = Field(
        default_factory=dict,
        description="serial -> device key (64 hex characters) of each concentrator created "
        "by this request. Shown once: the server keeps it only sealed.",
    )


class KeyRotation(BaseModel):
    overlap_hours: float = Field(
        72.0,
        ge=0,
        le=24 * 90,
        description="How long the old key keeps working (the time to re-key the "
        "concentrator in the field); afterwards ingest answers it with a NACK.",
        examples=[72],
    )


class RotatedKey(BaseModel):
    serial: int
    key: str = Field(description="the new device key, 64 hex characters; shown once")
    previous_key_valid_until: datetime


class ImportProgress(BaseModel):
    done: int = Field(description="rows written so far")
    total: int = Field(description="rows to write (known once the comparison is done)")


class ImportResult(BaseModel):
    changes: dict[str, dict[str, int]]
    lines: list[str] = Field(
        description="one line per change (the first 1 000), e.g. 'create meter heat-1-0'"
    )
    buildings_changed: list[str]


class ImportJob(BaseModel):
    """An import running in the background (``POST /imports``)."""

    id: str
    status: Literal["queued", "running", "succeeded", "failed"]
    dry_run: bool
    buildings: int = Field(description="buildings in the document")
    progress: ImportProgress
    result: ImportResult | None = None
    problems: list[dict[str, str]] = Field(
        default_factory=list, description="why the import was refused (path and message)"
    )
    concentrator_keys: dict[str, str] | None = Field(
        None,
        description="device keys of the concentrators the import created: in the first "
        "answer after the job succeeded, and never again",
    )
