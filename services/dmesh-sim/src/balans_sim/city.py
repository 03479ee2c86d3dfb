"""A seeded, reproducible city of apartment blocks, described with ``balans_db.topology``.

The same config (seed included) always gives the same buildings. Buildings are validated
against the hardware limits when generated, so an impossible city is rejected before
anything is written.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from balans_db.tables import LAYOUTS
from balans_db.topology import (
    BuildingSpec,
    SiteSpec,
    demo_city,
    plan_equipment,
    reference_building,
    regular_building,
)

PRESETS = ("generated", "reference", "demo")


class CityConfig(BaseModel):
    """What city to build. ``preset='reference'`` is docs/domain.md's 100-flat block (one per
    layout in ``layout_mix``); ``'demo'`` is the demo seed's city."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 1
    preset: str = "generated"
    buildings: int = Field(default=5, ge=1, le=10_000)
    layout_mix: dict[str, float] = Field(
        default_factory=lambda: {"1a": 1.0, "1b": 1.0, "1c": 1.0, "2a": 1.0, "2b": 1.0}
    )
    floors: tuple[int, int] = (5, 10)
    entrances: tuple[int, int] = (1, 4)
    flats_per_floor: tuple[int, int] = (3, 4)
    multi_utility_every: int = Field(default=4, ge=1)
    first_index: int = Field(default=100, ge=1, description="Building index of the first building.")

    @field_validator("layout_mix")
    @classmethod
    def _known_layouts(cls, mix: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(mix) - set(LAYOUTS))
        if unknown or not mix or sum(mix.values()) <= 0 or min(mix.values()) < 0:
            raise ValueError(f"layout_mix needs non-negative weights for layouts {LAYOUTS}")
        return mix

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, preset: str) -> str:
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}")
        return preset


def _site(rng: np.random.Generator, n: int) -> SiteSpec:
    lat, lon = 47.0 + rng.uniform(-0.05, 0.05), 28.85 + rng.uniform(-0.07, 0.07)
    return SiteSpec(
        code=f"sim-site-{n}",
        name=f"Simulated district {n}",
        address=f"Simulated district {n}, Chișinău",
        latitude=round(float(lat), 5),
        longitude=round(float(lon), 5),
    )


def _generated(config: CityConfig) -> list[BuildingSpec]:
    rng = np.random.default_rng([config.seed, 1])
    layouts = sorted(config.layout_mix)
    weights = np.array([config.layout_mix[k] for k in layouts], dtype=float)
    sites = [_site(rng, n) for n in range(1 + config.buildings // 20)]
    city = []
    for n in range(config.buildings):
        layout = layouts[int(rng.choice(len(layouts), p=weights / weights.sum()))]
        entrances = int(rng.integers(config.entrances[0], config.entrances[1] + 1))
        per_floor = tuple(
            int(rng.integers(config.flats_per_floor[0], config.flats_per_floor[1] + 1))
            for _ in range(entrances)
        )
        index = config.first_index + n
        city.append(
            regular_building(
                code=f"sim-{config.seed}-{index}",
                name=f"Simulated block {index} (layout {layout})",
                address=f"str. Simulării {index}, Chișinău",
                site=sites[n // 20],
                layout=layout,
                floors=int(rng.integers(config.floors[0], config.floors[1] + 1)),
                flats_per_floor=per_floor,
                risers_per_entrance=tuple(p + int(rng.integers(0, p + 1)) for p in per_floor),
                index=index,
                multi_utility_every=config.multi_utility_every,
            )
        )
    return city


def generate_city(config: CityConfig) -> list[BuildingSpec]:
    """The city's buildings; raises ``HardwareLimitError`` naming the limit a building breaks."""
    if config.preset == "demo":
        city = demo_city()
    elif config.preset == "reference":
        city = [
            reference_building(layout, index=config.first_index + i)
            for i, layout in enumerate(sorted(config.layout_mix))
        ]
    else:
        city = _generated(config)
    for spec in city:
        plan_equipment(spec)
    return city
