"""The API's documentation pages, ``/api/v1/docs`` (Swagger UI) and ``/api/v1/redoc``,
served without any CDN.

The Swagger UI and ReDoc bundles come from the ``fastapi-offline`` wheel's static folder
(installed with the api); the pages are our own templates with no inline script, so the
same Content-Security-Policy as the portal applies to them."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from balans_api.portal import templates

ASSETS = "/vendor/api-docs"


def mount(app: FastAPI, docs_url: str, redoc_url: str) -> None:
    """Serve both pages; ``app.openapi_url`` is the schema they render."""
    app.mount(ASSETS, StaticFiles(packages=[("fastapi_offline", "static")]), name="api-docs")

    def page(template: str, title: str):
        async def render(request: Request) -> HTMLResponse:
            context = {"title": title, "openapi_url": app.openapi_url, "assets": ASSETS}
            return templates.TemplateResponse(request, template, context)

        return render

    app.get(docs_url, include_in_schema=False, response_class=HTMLResponse)(
        page("api_swagger.html", f"{app.title}: Swagger UI")
    )
    app.get(redoc_url, include_in_schema=False, response_class=HTMLResponse)(
        page("api_redoc.html", f"{app.title}: ReDoc")
    )
