"""The web portal: server-rendered page shells; the pages' script fetches ``/api/v1``
with the bearer token kept in the browser's session storage.

Charts use Plotly's JavaScript as shipped inside the ``plotly`` wheel (installed by the
project's own setup), served from memory: no CDN, no bundle in the repository."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from balans_api import i18n
from balans_i18n.catalogs import COOKIE, LOCALES
from balans_i18n.localizer import N_

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

# the roles that may open a page (portal.js sends any other role to its own start page with
# a message); "" lets every signed-in role in
CONSUMER = "consumer"
STAFF = "admin operator manager"
OPERATORS = "admin operator"
ADMIN = "admin"

# path: (template, title, roles); the template's name is the page's name for portal.js
PAGES = {
    "/login": ("login.html", N_("Sign in"), ""),
    "/my": ("consumer.html", N_("My flat"), CONSUMER),
    "/my/settings": ("settings.html", N_("Settings"), ""),
    "/ops": ("operator.html", N_("Sites and buildings"), STAFF),
    "/ops/alerts": ("alerts.html", N_("Alert queue"), STAFF),
    "/ops/search": ("search.html", N_("Search"), STAFF),
    "/ops/verification": ("verification.html", N_("Verification due"), STAFF),
    "/ops/provision": ("provision.html", N_("New building"), OPERATORS),
    "/admin": ("admin.html", N_("Administration"), ADMIN),
    "/admin/users": ("admin_users.html", N_("Users"), ADMIN),
    "/admin/api-keys": ("admin_keys.html", N_("API keys"), ADMIN),
    "/admin/tariffs": ("admin_tariffs.html", N_("Tariffs"), ADMIN),
    "/admin/audit": ("admin_audit.html", N_("Audit log"), ADMIN),
}


@cache
def plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def mount(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse("/login")

    @app.get("/vendor/plotly.js", include_in_schema=False)
    async def plotly() -> Response:
        return Response(
            plotly_js(),
            media_type="application/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @app.get("/i18n/{locale}.js", include_in_schema=False)
    async def catalog_script(locale: str) -> Response:
        if locale not in LOCALES:
            return Response(status_code=404)
        return Response(
            i18n.script(locale),
            media_type="application/javascript",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    def page(template: str, title: str, roles: str):
        async def render(request: Request) -> HTMLResponse:
            lang = i18n.localizer(request)
            context = {
                "_": lang.gettext,
                "locale": lang.locale,
                "languages": i18n.LANGUAGE_NAMES,
                "cookie": COOKIE,
                "title": lang.gettext(title),
                "page": template.removesuffix(".html"),
                "roles": roles,
                **request.path_params,
            }
            return templates.TemplateResponse(request, template, context)

        return render

    for path, (template, title, roles) in PAGES.items():
        app.get(path, include_in_schema=False, response_class=HTMLResponse)(
            page(template, title, roles)
        )
    app.get("/ops/buildings/{building_id}", include_in_schema=False, response_class=HTMLResponse)(
        page("building.html", N_("Building"), STAFF)
    )
    exchange = "/ops/buildings/{building_id}/exchange"
    app.get(exchange, include_in_schema=False, response_class=HTMLResponse)(
        page("exchange.html", N_("Meter exchange"), OPERATORS)
    )
    accounts = "/ops/buildings/{building_id}/accounts"
    app.get(accounts, include_in_schema=False, response_class=HTMLResponse)(
        page("accounts.html", N_("Accounts"), OPERATORS)
    )
    app.get("/ops/alerts/{alert_id}", include_in_schema=False, response_class=HTMLResponse)(
        page("alert.html", N_("Alert"), STAFF)
    )
    app.get("/ops/flats/{flat_id}", include_in_schema=False, response_class=HTMLResponse)(
        page("flat.html", N_("Flat"), STAFF)
    )
    app.get("/my/invoices/{invoice_id}", include_in_schema=False, response_class=HTMLResponse)(
        page("invoice.html", N_("Invoice"), "")
    )
