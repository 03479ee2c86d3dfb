"""``balans deadletter list / show ID / replay ID``: what consumers gave up on, and a way back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from nats.js.client import JetStreamContext

from balans_core import deadletter
from balans_core.nats import connect_nats
from balans_core.settings import CommonSettings
from balans_protocol.streams import ensure_streams

T = TypeVar("T")

deadletter_app = typer.Typer(
    help="Messages consumers gave up on (the DEADLETTER stream; uses BALANS_NATS_URL).",
    no_args_is_help=True,
)


def _with_jetstream(work: Callable[[JetStreamContext], Awaitable[T]]) -> T:
    """Run ``work`` on JetStream; a dead letter that does not exist exits 1, saying so."""

    async def run() -> T:
        nc = await connect_nats(CommonSettings().nats_url, "balans-deadletter")
        try:
            js = nc.jetstream()
            await ensure_streams(js)
            return await work(js)
        finally:
            await nc.close()

    try:
        return asyncio.run(run())
    except LookupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc


def _body(data: bytes) -> str:
    try:
        return json.dumps(json.loads(data), indent=2, ensure_ascii=False)
    except ValueError:
        return data.hex()  # binary (an UPLOAD batch): hex, as the protocol docs print it


@deadletter_app.command("list")
def list_command(
    service: str | None = typer.Option(None, help="Only this service's dead letters."),
) -> None:
    """One line per dead letter: id, service, consumer, original subject, deliveries, error."""
    letters = _with_jetstream(lambda js: deadletter.list_all(js, service))
    for dl in letters:
        stored = dl.stored_at.isoformat(timespec="seconds") if dl.stored_at else "-"
        typer.echo(
            f"{dl.id}\t{stored}\t{dl.service}\t{dl.consumer}\t{dl.subject}\t"
            f"x{dl.deliveries}\t{dl.error}"
        )
    typer.echo(f"{len(letters)} dead letter(s)", err=True)


@deadletter_app.command("show")
def show_command(dead_letter_id: int = typer.Argument(..., metavar="ID")) -> None:
    """Everything kept about one dead letter: origin, error, headers and body."""
    dl = _with_jetstream(lambda js: deadletter.get(js, dead_letter_id))
    typer.echo(f"id:          {dl.id}")
    typer.echo(f"service:     {dl.service}")
    typer.echo(f"stored at:   {dl.stored_at.isoformat() if dl.stored_at else '-'}")
    typer.echo(f"consumer:    {dl.consumer}")
    typer.echo(f"subject:     {dl.subject}")
    typer.echo(f"from:        {dl.stream} #{dl.sequence} (message id {dl.msg_id or '-'})")
    typer.echo(f"deliveries:  {dl.deliveries}")
    typer.echo(f"error:       {dl.error}")
    for name, value in sorted(dl.headers.items()):
        typer.echo(f"header:      {name}: {value}")
    typer.echo(_body(dl.data))


@deadletter_app.command("replay")
def replay_command(dead_letter_id: int = typer.Argument(..., metavar="ID")) -> None:
    """Publish a dead letter again for the consumer that gave up on it, then remove it."""
    seq = _with_jetstream(lambda js: deadletter.replay(js, dead_letter_id))
    typer.echo(f"dead letter {dead_letter_id} replayed (stream sequence {seq})")
