"""``balans config``: every ``BALANS_`` setting of every installed service, with defaults.

Settings classes are found by importing each service's entry module (entry-point group
``balans.services``) and collecting the :class:`CommonSettings` subclasses that exist then.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

import typer
from pydantic_settings import BaseSettings

from balans_core.settings import CommonSettings


def _subclasses(cls: type[BaseSettings]) -> list[type[BaseSettings]]:
    found: list[type[BaseSettings]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def settings_classes() -> list[type[BaseSettings]]:
    """CommonSettings and every subclass the installed services define."""
    for ep in entry_points(group="balans.services"):
        importlib.import_module(ep.module)
    unique = {f"{c.__module__}.{c.__qualname__}": c for c in _subclasses(CommonSettings)}
    return [CommonSettings, *(unique[k] for k in sorted(unique))]


def rows(cls: type[BaseSettings], own_only: bool) -> list[tuple[str, str, str]]:
    """(variable, default, description) of a settings class; ``own_only`` drops the fields
    it inherits from other settings classes (they are listed under those)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    inherited: set[str] = set()
    if own_only:
        for base in cls.__mro__[1:]:
            if isinstance(base, type) and issubclass(base, BaseSettings):
                inherited |= set(base.model_fields)
    out = []
    for name, field in cls.model_fields.items():
        if name in inherited:
            continue
        default = "(required)" if field.is_required() else repr(field.default)
        out.append((f"{prefix}{name}".upper(), default, field.description or ""))
    return out


def config_command(
    markdown: bool = typer.Option(False, help="Print Markdown tables (as in the README)."),
) -> None:
    """List every BALANS_ setting of every installed service, with its default."""
    for cls in settings_classes():
        own = cls is not CommonSettings
        table = rows(cls, own_only=own)
        if not table:
            continue
        title = "Every service" if not own else f"{cls.__module__.split('.')[0]} ({cls.__name__})"
        if markdown:
            typer.echo(f"\n**{title}**\n\n| variable | default | meaning |\n|---|---|---|")
            for var, default, text in table:
                typer.echo(f"| `{var}` | `{default}` | {text} |")
        else:
            typer.echo(f"\n{title}")
            for var, default, text in table:
                typer.echo(f"  {var:<40} {default:<28} {text}")
