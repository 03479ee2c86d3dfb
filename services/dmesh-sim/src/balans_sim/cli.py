"""``balans sim ...``: generate a city and replay weeks of it (fast) or run it in real time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.progress import Progress

from balans_db.secrets import KeyVault
from balans_db.settings import DatabaseSettings
from balans_db.topology import HardwareLimitError, plan_equipment
from balans_protocol.boot import next_boot
from balans_sim.api import prepare
from balans_sim.city import CityConfig, generate_city
from balans_sim.climate import hour_start
from balans_sim.engine import Chunk
from balans_sim.faults import write_ground_truth
from balans_sim.lifecycle import record_due, write_lifecycle_truth
from balans_sim.pgwriter import write_chunks
from balans_sim.runner import connected_concentrators, flush_all, run_concentrators
from balans_sim.world import concentrator_keys, write_city

sim_app = typer.Typer(help="The simulated city (dmesh-sim).", no_args_is_help=True)


def _parse_mix(text: str) -> dict[str, float]:
    try:
        return {k.strip(): float(v) for k, v in (p.split("=") for p in text.split(","))}
    except ValueError as exc:
        raise typer.BadParameter("layout mix looks like 1a=1,2a=2") from exc


def _config(
    seed: int, preset: str, buildings: int, layout_mix: str, floors: str, first_index: int = 100
) -> CityConfig:
    lo, _, hi = floors.partition("-")
    try:
        config = CityConfig(
            seed=seed,
            preset=preset,
            buildings=buildings,
            layout_mix=_parse_mix(layout_mix),
            floors=(int(lo), int(hi or lo)),
            first_index=first_index,
        )
        generate_city(config)
    except (ValidationError, HardwareLimitError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    return config


@sim_app.command("city")
def city_command(
    seed: int = typer.Option(1),
    preset: str = typer.Option("generated", help="generated | reference | demo"),
    buildings: int = typer.Option(5),
    layout_mix: str = typer.Option("1a=1,1b=1,1c=1,2a=1,2b=1"),
    floors: str = typer.Option("5-10", help="Floor range, e.g. 5-10."),
) -> None:
    """Print the city a configuration gives (nothing is written)."""
    for spec in generate_city(_config(seed, preset, buildings, layout_mix, floors)):
        plan = plan_equipment(spec)
        typer.echo(
            f"{spec.code:<14} layout {spec.layout} flats {len(spec.flats):>4} "
            f"modules {len(plan.modules):>4} meters {len(plan.meters):>4} "
            f"subnets {1 + max(m.subnet for m in plan.modules)}"
        )


@sim_app.command("run")
def run_command(
    seed: int = typer.Option(1, help="Seed of the city, physics and faults."),
    preset: str = typer.Option("generated", help="generated | reference | demo"),
    buildings: int = typer.Option(5, help="Buildings of a generated city."),
    layout_mix: str = typer.Option("1a=1,1b=1,1c=1,2a=1,2b=1", help="Relative weights."),
    floors: str = typer.Option("5-10", help="Floor range, e.g. 5-10."),
    start: datetime | None = typer.Option(
        None,
        help="First simulated hour (UTC); default: so that the last simulated hour is the "
        "last complete one (ingest refuses readings from the future and beyond its horizon).",
    ),
    weeks: float = typer.Option(1.0, min=0.01, help="How long to simulate."),
    fault_rate: float = typer.Option(0.5, min=0.0, help="Faults per building per week."),
    exchange_rate: float = typer.Option(
        0.0, min=0.0, help="Meter exchanges per building per year (--via db)."
    ),
    tenant_rate: float = typer.Option(
        0.0, min=0.0, help="Tenant changes per building per year (--via db)."
    ),
    outage_rate: float = typer.Option(
        0.0, min=0.0, help="Uplink (GPRS) outages per concentrator per week (--via ingest)."
    ),
    outage_hours: float = typer.Option(3.0, min=0.0, help="Mean length of an outage, hours."),
    speed: str = typer.Option(
        "fast", help="'fast' (as fast as possible), 'realtime', or simulated hours per second."
    ),
    via: str = typer.Option("db", help="'db' (straight into PostgreSQL) or 'ingest' (TCP)."),
    ground_truth: Path = typer.Option(Path("ground_truth.jsonl"), help="JSON lines of faults."),
    ingest_host: str = typer.Option("127.0.0.1"),
    ingest_port: int = typer.Option(4100),
    boot_file: Path = typer.Option(
        Path(".balans/sim-boot-counter"),
        help="The concentrators' boot counter (--via ingest), new at every run.",
    ),
    first_index: int = typer.Option(
        100, help="Index of the first building: serials derive from it, keep cities apart."
    ),
) -> None:
    """Simulate a city for WEEKS from START, with faults, into the database."""
    config = _config(seed, preset, buildings, layout_mix, floors, first_index)
    if via not in ("db", "ingest"):
        raise typer.BadParameter("--via is 'db' or 'ingest'")
    if speed not in ("fast", "realtime"):
        try:
            float(speed)
        except ValueError as exc:
            raise typer.BadParameter("--speed is fast, realtime or a number") from exc
    if via == "db" and speed != "fast":
        raise typer.BadParameter("--via db only replays fast; use --via ingest for real time")
    if via == "db" and outage_rate > 0:
        raise typer.BadParameter("uplink outages need the concentrators: use --via ingest")
    if via == "ingest" and (exchange_rate > 0 or tenant_rate > 0):
        raise typer.BadParameter("exchanges and tenant changes are recorded with --via db")
    hours = round(weeks * 168)
    if start is None:
        begin = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(
            hours=hours
        )
    else:
        begin = start.replace(tzinfo=UTC) if start.tzinfo is None else start
    sim, truth = prepare(config, begin, hours, fault_rate)
    truth += sim.schedule_outages(hours, outage_rate, outage_hours)
    sim.schedule_exchanges(hours, exchange_rate)
    tenants = sim.schedule_tenant_changes(hours, tenant_rate)
    ground_truth.unlink(missing_ok=True)
    write_ground_truth(ground_truth, truth)
    settings = DatabaseSettings()
    vault = KeyVault.from_hex(settings.master_key)
    per_second = {"fast": None, "realtime": 1 / 3600}.get(speed)
    if speed not in ("fast", "realtime"):
        per_second = float(speed)

    async def go() -> int:
        import asyncpg

        conn = await asyncpg.connect(settings.database_url)
        rows = 0
        try:
            specs = [b.spec for b in sim.buildings]
            await write_city(conn, specs, vault, config.seed)
            keys = await concentrator_keys(conn, specs, vault)
            with Progress() as progress:
                task = progress.add_task("simulating", total=hours)

                def advance(chunks: list[Chunk]) -> None:
                    progress.advance(task, len(chunks[0].hours))

                if via == "db":
                    while sim.next_hour < sim.start_hour + hours:
                        step = min(168, sim.start_hour + hours - sim.next_hour)
                        chunks = sim.advance(step)
                        await record_due(conn, sim.exchanged(), tenants, hour_start(sim.next_hour))
                        rows += await write_chunks(conn, chunks)
                        advance(chunks)
                    return rows
                boot = next_boot(boot_file)
                async with connected_concentrators(
                    sim, keys, ingest_host, ingest_port, boot
                ) as concentrators:
                    await run_concentrators(
                        sim,
                        concentrators,
                        hours,
                        hours_per_second=per_second,
                        stop=asyncio.Event(),
                        on_chunk=advance,
                    )
                    await flush_all(concentrators, timeout_s=600)
        finally:
            await conn.close()
        return rows

    rows = asyncio.run(go())
    write_lifecycle_truth(ground_truth, sim.exchanged())
    write_lifecycle_truth(ground_truth, tenants)
    typer.echo(
        f"{len(sim.buildings)} buildings, {hours} hours, {len(truth)} faults -> {ground_truth}"
        + (f", {rows} rows written" if via == "db" else ", delivered through ingest")
    )


def register(app: typer.Typer) -> None:
    """Entry point of the ``balans.cli`` group."""
    app.add_typer(sim_app, name="sim")
