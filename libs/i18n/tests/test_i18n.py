"""Catalogs, the choice of a language, formatting per locale, and the catalog check."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.pofile import read_po, write_po

from balans_i18n import catalogs, check
from balans_i18n.catalogs import Catalogs, negotiate
from balans_i18n.localizer import Localizer

COMMON = Catalogs("balans_i18n")


@pytest.mark.parametrize(
    ("cookie", "accept", "expected"),
    [
        ("ru", "en-US,en;q=0.9", "ru"),  # the switcher's cookie wins
        (None, "ru-RU,ru;q=0.9,en;q=0.8", "ru"),
        (None, "en-GB,en;q=0.9", "en"),
        (None, "ro-MD", "ro"),
        ("xx", "de-DE", "ro"),  # neither ours: Romanian
        (None, None, "ro"),
    ],
)
def test_negotiate(cookie: str | None, accept: str | None, expected: str) -> None:
    assert negotiate(cookie, accept) == expected


def test_units_and_numbers_per_locale() -> None:
    ru, ro, en = (Localizer(x, COMMON) for x in ("ru", "ro", "en"))
    assert ru.quantity(1234.56, "kWh") == "1\u00a0234,6\u00a0кВт·ч"
    assert ro.quantity(1234.56, "m3", 2) == "1.234,56\u00a0m³"
    assert en.quantity(1.5, "Gcal", 3) == "1.500\u00a0Gcal"
    assert ru.quantity(None, "kWh") == "нет данных"  # missing is "no data", never 0
    assert ro.number(Decimal("1.5"), 0, 3) == "1,5"
    assert "MDL" in ru.money(Decimal("1442.89"))
    assert ru.money(Decimal("1442.89")).startswith("1\u00a0442,89")


def _copy_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This library's catalogs and a module using one new message, in a temporary folder
    the check reads instead of the installed package."""
    root = tmp_path / "balans_i18n"
    shutil.copytree(catalogs.locale_dir("balans_i18n"), root / "locale")
    (root / "units.py").write_text(
        'from balans_i18n.localizer import N_\n\nUNITS = {"kWh": N_("kWh"), "m3": N_("m³"),'
        ' "Gcal": N_("Gcal"), "MWh": N_("MWh"), "kW": N_("kW"), "m2": N_("m²")}\n'
        'NO_DATA = N_("no data")\nNEW = N_("a new message")\n'
    )
    monkeypatch.setattr(catalogs, "locale_dir", lambda package: root / "locale")
    monkeypatch.setattr(check, "locale_dir", lambda package: root / "locale")
    monkeypatch.setattr(check, "PACKAGES", ("balans_i18n",))
    return root


def test_check_fails_on_a_missing_message_until_translated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy_package(tmp_path, monkeypatch)
    assert check.main([]) == 1
    assert "missing 'a new message'" in capsys.readouterr().out
    assert check.main(["--update"]) == 1  # added, but Romanian and Russian are empty
    assert "untranslated 'a new message'" in capsys.readouterr().out
    for locale, text in (("ro", "un mesaj nou"), ("ru", "новое сообщение")):
        path = root / "locale" / locale / "LC_MESSAGES" / "messages.po"
        with path.open("rb") as f:
            catalog = read_po(f, locale=locale)
        catalog["a new message"].string = text
        with path.open("wb") as f:
            write_po(f, catalog)
    assert check.main([]) == 0


def test_check_catches_a_changed_placeholder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy_package(tmp_path, monkeypatch)
    (root / "units.py").write_text(
        (root / "units.py").read_text().replace('"a new message"', '"{count} hours"')
    )
    check.main(["--update"])
    path = root / "locale" / "ru" / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as f:
        catalog = read_po(f, locale="ru")
    catalog["{count} hours"].string = "{n} часов"
    with path.open("wb") as f:
        write_po(f, catalog)
    capsys.readouterr()
    assert check.main([]) == 1
    assert "placeholders differ in '{count} hours'" in capsys.readouterr().out
