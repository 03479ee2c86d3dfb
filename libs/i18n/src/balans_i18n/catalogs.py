"""gettext catalogs per package, read from the committed ``.po`` files with Babel.

Each package that shows text keeps ``locale/<lang>/LC_MESSAGES/messages.po`` beside its code;
this library's own catalog (units, the language names) is merged under it. The ``.po`` files
are compiled in memory when first used (no ``.mo`` in git, no build step), and
``python -m balans_i18n.check`` (``make lint``) keeps them complete."""

from __future__ import annotations

import io
from functools import cache
from importlib.resources import files
from pathlib import Path

from babel.core import negotiate_locale
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALES = ("ro", "ru", "en")
DEFAULT_LOCALE = "ro"
COOKIE = "balans_lang"
DOMAIN = "messages"


def locale_dir(package: str) -> Path:
    """Where a package keeps its catalogs."""
    return Path(str(files(package))) / "locale"


def po_path(package: str, locale: str) -> Path:
    return locale_dir(package) / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(path: Path, locale: str) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale=locale, domain=DOMAIN)


def _compile(catalog: Catalog) -> Translations:
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(fp=buffer, domain=DOMAIN)


class Catalogs:
    """One package's translations in every locale, merged over this library's."""

    def __init__(self, package: str) -> None:
        self.package = package

    @cache  # noqa: B019 - one Catalogs per package, kept for the process
    def translations(self, locale: str) -> Translations:
        common = _compile(read_catalog(po_path("balans_i18n", locale), locale))
        if self.package != "balans_i18n":
            common.merge(_compile(read_catalog(po_path(self.package, locale), locale)))
        return common

    @cache  # noqa: B019
    def messages(self, locale: str) -> dict[str, str]:
        """msgid -> translation, for the browser's script (the same catalogs as the pages)."""
        out: dict[str, str] = {}
        for package in dict.fromkeys(("balans_i18n", self.package)):
            catalog = read_catalog(po_path(package, locale), locale)
            for m in catalog:
                if (
                    isinstance(m.id, str)
                    and m.id
                    and isinstance(m.string, str)
                    and m.string
                    and not m.fuzzy
                ):
                    out[m.id] = m.string
        return out


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The cookie's language if it is one of ours, else the browser's best, else Romanian."""
    if cookie in LOCALES:
        return cookie
    preferred = []
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip()
        if tag:
            preferred.append(tag.replace("_", "-"))
    found = negotiate_locale(preferred, LOCALES, sep="-")
    return found if found in LOCALES else DEFAULT_LOCALE
