"""The catalog check of ``make lint``: every message the code, templates and scripts use is in
every locale's catalog, translated, not fuzzy, with the same ``{placeholders}``, and no
catalog keeps a message nobody uses.

Messages are extracted with Babel: ``_()``, ``N_()``... in Python and Jinja templates,
``t()`` in the portal's JavaScript. ``--update`` adds the new messages (empty, English
filled with the msgid) and drops the unused ones, so a translator only fills the blanks."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import write_po

from balans_i18n.catalogs import LOCALES, locale_dir, po_path, read_catalog

# packages that show text to people; each keeps locale/<lang>/LC_MESSAGES/messages.po
PACKAGES = ("balans_i18n", "balans_api", "balans_billing", "balans_notify")
JINJA = "jinja2.ext:babel_extract"
PYTHON_AND_TEMPLATES = [
    ("**/locale/**", "ignore"),
    ("**.py", "python"),
    ("**/templates/**.html", JINJA),
    ("**/templates/**.j2", JINJA),
]
SCRIPTS = [("**/static/**.js", "javascript")]
# t() calls inside ${...} of template literals too
SCRIPT_OPTIONS = {"**/static/**.js": {"parse_template_string": "true"}}
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _ids(found: Iterable[tuple[str, int, object, list[str], str | None]]) -> set[str]:
    ids = set()
    for _file, _line, message, _comments, _context in found:
        text = message[0] if isinstance(message, tuple) else message
        if isinstance(text, str) and text:
            ids.add(text)
    return ids


def extract(package: str) -> set[str]:
    """Every msgid the package's code, templates and scripts use."""
    root = str(locale_dir(package).parent)
    options = {JINJA: {"extensions": "jinja2.ext.i18n"}}
    used = _ids(extract_from_dir(root, PYTHON_AND_TEMPLATES, options, DEFAULT_KEYWORDS))
    return used | _ids(extract_from_dir(root, SCRIPTS, SCRIPT_OPTIONS, {"t": None}))


def problems(package: str, locale: str, used: set[str]) -> list[str]:
    path = po_path(package, locale)
    if not path.exists():
        return [f"{path}: missing catalog"]
    catalog = read_catalog(path, locale)
    have = {m.id: m for m in catalog if m.id}
    out = [f"{path}: missing {msgid!r}" for msgid in sorted(used - have.keys())]
    out += [f"{path}: unused {msgid!r}" for msgid in sorted(have.keys() - used)]
    for msgid, message in sorted(have.items()):
        if msgid not in used:
            continue
        if not message.string or message.fuzzy:
            out.append(f"{path}: untranslated {msgid!r}")
        elif set(PLACEHOLDER.findall(msgid)) != set(PLACEHOLDER.findall(str(message.string))):
            out.append(f"{path}: placeholders differ in {msgid!r}")
    return out


def update(package: str, locale: str, used: set[str]) -> None:
    path = po_path(package, locale)
    old = read_catalog(path, locale) if path.exists() else Catalog(locale=locale)
    new = Catalog(
        locale=locale,
        project="balans",
        domain="messages",
        fuzzy=False,
        creation_date=old.creation_date,
        header_comment=f"# balans: {package} in {locale}",
    )
    for msgid in sorted(used):
        kept = old.get(msgid)
        string = kept.string if kept is not None else (msgid if locale == "en" else "")
        new.add(msgid, string)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, new, width=100, omit_header=False, no_location=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="add new messages, drop unused")
    args = parser.parse_args(argv)
    found: list[str] = []
    common = extract(PACKAGES[0])
    for package in PACKAGES:
        # the common catalog (units, "no data") is merged under every package's own
        used = extract(package) if package == PACKAGES[0] else extract(package) - common
        for locale in LOCALES:
            if args.update:
                update(package, locale, used)
            found += problems(package, locale, used)
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} catalog problem(s); fill them in, or run with --update first")
        return 1
    print(f"catalogs complete: {', '.join(PACKAGES)} x {', '.join(LOCALES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
