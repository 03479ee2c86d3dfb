"""The portal's language: chosen by the ``balans_lang`` cookie (the switcher in the page
header sets it), else the browser's Accept-Language, else Romanian."""

from __future__ import annotations

import json
from functools import cache
from typing import Annotated

from fastapi import Depends, Request

from balans_i18n.catalogs import COOKIE, LOCALES, Catalogs, negotiate
from balans_i18n.localizer import Localizer

CATALOGS = Catalogs("balans_api")
LANGUAGE_NAMES = {"ro": "Română", "ru": "Русский", "en": "English"}


def localizer(request: Request) -> Localizer:
    locale = negotiate(request.cookies.get(COOKIE), request.headers.get("accept-language"))
    return Localizer(locale, CATALOGS)


Lang = Annotated[Localizer, Depends(localizer)]


@cache
def script(locale: str) -> str:
    """The catalog as a script for portal.js: the same messages as the pages, and the units."""
    assert locale in LOCALES
    lang = Localizer(locale, CATALOGS)
    data = {
        "locale": locale,
        "messages": CATALOGS.messages(locale),
        "units": {unit: lang.unit(unit) for unit in ("kWh", "Gcal", "m3", "MWh", "kW", "m2")},
    }
    return f"window.BALANS_I18N = {json.dumps(data, ensure_ascii=False, sort_keys=True)};\n"
