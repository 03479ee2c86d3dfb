"""Who is asking, and what they may see: the rule every query applies.

Staff (admin, operator, manager) and integrator keys with the ``read`` scope see
everything. A consumer sees only the flat of their own account, its meters and the
building it is in (as aggregates); :meth:`Principal.flat_filter` is what queries use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pydantic import BaseModel

SCOPES = ("read", "operate", "admin")
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "admin": frozenset(SCOPES),
    "operator": frozenset({"read", "operate"}),
    "manager": frozenset({"read"}),
    "consumer": frozenset(),
}


class FlatContext(BaseModel, frozen=True):
    """A flat's building, number, rooms, area and time zone: what its views need of it
    besides its data. A consumer's own flat is read with the user's row and kept with the
    principal, so a month profile needs no query for it."""

    flat_id: int
    building_id: int
    number: str
    rooms: int
    area_m2: float
    timezone: str


@dataclass(frozen=True)
class Principal:
    actor: str  # "user:<username>" or "key:<prefix>", as the audit log names it
    role: str  # a user role, or "integrator" for an API key
    scopes: frozenset[str]
    user_id: int | None = None
    account_id: int | None = None
    flat_ids: tuple[int, ...] = ()
    building_ids: tuple[int, ...] = ()
    # a consumer's account holds its flat [held_from, held_until) (local days; None = open)
    held_from: date | None = None
    held_until: date | None = None
    own_flat: FlatContext | None = None

    @property
    def is_consumer(self) -> bool:
        return self.role == "consumer"

    def flat_filter(self) -> list[int] | None:
        """Flats this principal may see (None = all)."""
        return list(self.flat_ids) if self.is_consumer else None

    def building_filter(self) -> list[int] | None:
        """Buildings this principal may see (None = all)."""
        return list(self.building_ids) if self.is_consumer else None
