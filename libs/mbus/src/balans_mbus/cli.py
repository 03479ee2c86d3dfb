"""``balans mbus ...``: decode M-Bus / wireless M-Bus telegrams from the command line."""

from __future__ import annotations

from pathlib import Path

import typer

from balans_mbus.compact import FormatCache
from balans_mbus.conformance import ConformanceInputError, read_folder, run
from balans_mbus.decoder import decode_telegram

mbus_app = typer.Typer(help="EN 13757 (M-Bus, wireless M-Bus, OMS) telegrams.")


def _hex(value: str, what: str) -> bytes:
    try:
        return bytes.fromhex(value.replace(" ", "").replace("_", ""))
    except ValueError as exc:
        raise typer.BadParameter(f"{what} is not hexadecimal: {exc}") from exc


@mbus_app.command("decode")
def decode_command(
    telegrams: list[str] = typer.Argument(
        ..., metavar="HEX...", help="Telegram(s) in hex; later ones may be compact frames."
    ),
    key: str | None = typer.Option(None, "--key", "-k", help="The meter's AES-128 key (hex)."),
    compact_format: list[str] = typer.Option(
        [], "--format", help="A compact-frame DIF/VIF header sequence (hex), repeatable."
    ),
) -> None:
    """Print the decoded records of each telegram as JSON (one object per line).

    Exits with status 1 when the last telegram could not be decoded; the JSON says why.
    """
    formats = FormatCache(_hex(item, "--format") for item in compact_format)
    key_bytes = _hex(key, "--key") if key else None
    ok = False
    for telegram in telegrams:
        decoded = decode_telegram(_hex(telegram, "telegram"), key_bytes, formats)
        typer.echo(decoded.model_dump_json(exclude_none=True))
        ok = decoded.ok
    raise typer.Exit(0 if ok else 1)


@mbus_app.command("conformance")
def conformance_command(
    folder: Path = typer.Argument(
        ..., metavar="DIR", help="A folder of *.jsonl case files (telegrams, expected values)."
    ),
) -> None:
    """Decode every case of DIR and print, per medium, how many were decoded, correct,
    wrong and refused (each refused or wrong case with its reason); the last line sums up.

    Exits with status 1 when a value is wrong or a case flagged standard is not correct,
    2 when a case file cannot be read.
    """
    try:
        cases = read_folder(folder)
    except (ConformanceInputError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    report = run(cases)
    for line in report.lines():
        typer.echo(line)
    raise typer.Exit(0 if report.passed else 1)


def register(app: typer.Typer) -> None:
    """Entry point of the ``balans.cli`` group."""
    app.add_typer(mbus_app, name="mbus")
