"""``balans heat ...``: commands for heat engineers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from enum import StrEnum

import asyncpg
import typer

from balans_allocation.explain import Explanation, explain
from balans_allocation.settings import AllocationSettings
from balans_physics.water import DEFAULT_PRESSURE_BAR, KJ_PER_KWH, KJ_PER_MJ, k_factor_kwh_m3k

heat_app = typer.Typer(help="Heat physics (EN 1434, IAPWS-IF97).")


class MeterPipe(StrEnum):
    flow = "flow"
    return_ = "return"


class EnergyUnit(StrEnum):
    kwh = "kWh"
    mj = "MJ"


@heat_app.command("k-factor")
def k_factor_command(
    t_flow: float = typer.Option(..., "--t-flow", help="Flow temperature, °C."),
    t_return: float = typer.Option(..., "--t-return", help="Return temperature, °C."),
    meter: MeterPipe = typer.Option(..., "--meter", help="Pipe the volume meter sits in."),
    pressure_bar: float = typer.Option(
        DEFAULT_PRESSURE_BAR, "--pressure-bar", help="Absolute pressure, bar (PN16 default)."
    ),
    unit: EnergyUnit = typer.Option(
        EnergyUnit.kwh, "--unit", case_sensitive=False, help="kWh or MJ per m3·K."
    ),
) -> None:
    """Print the EN 1434 heat coefficient k; the last line is the bare number."""
    for theta in (t_flow, t_return):
        if not 0.0 < theta <= 200.0:
            raise typer.BadParameter(f"{theta} °C is outside 0-200 °C (liquid water, region 1)")
    k = k_factor_kwh_m3k(t_flow, t_return, meter is MeterPipe.flow, pressure_bar / 10.0)
    if unit is EnergyUnit.mj:
        k = k * KJ_PER_KWH / KJ_PER_MJ
    typer.echo(
        f"k({t_flow} °C, {t_return} °C), meter in the {meter.value} pipe, "
        f"{pressure_bar} bar, in {unit.value}/(m3·K):"
    )
    typer.echo(f"{k:.6f}")


async def _explain(flat_id: int, start: datetime, end: datetime) -> Explanation | None:
    conn = await asyncpg.connect(AllocationSettings().database_url)
    try:
        return await explain(conn, flat_id, start, end)
    finally:
        await conn.close()


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@heat_app.command("explain")
def explain_command(
    flat: int = typer.Option(..., "--flat", help="Flat id."),
    start: datetime = typer.Option(..., "--from", help="Period start (UTC unless zoned)."),
    end: datetime = typer.Option(..., "--to", help="Period end, exclusive."),
) -> None:
    """Print the explanation trail of a flat's heat over a period as JSON (BALANS_DATABASE_URL)."""
    trail = asyncio.run(_explain(flat, _utc(start), _utc(end)))
    if trail is None:
        raise typer.BadParameter(f"no flat {flat}", param_hint="--flat")
    typer.echo(trail.model_dump_json(indent=2))


def register(app: typer.Typer) -> None:
    """Entry point of the ``balans.cli`` group."""
    app.add_typer(heat_app, name="heat")
