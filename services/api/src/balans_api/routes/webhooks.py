"""``/webhooks``: integrators' endpoints for events (admin scope), and the delivery log.

The api keeps the subscriptions (``webhook_subscriptions``); notify delivers the events,
signed with the subscription's secret, retried with backoff, and logs every delivery
(``webhook_deliveries``, read here through ``balans_db.queries.notify``). A delivery that
failed every attempt is ``dead``: ``GET /webhook-deliveries?state=dead`` is the dead-letter
list. Signature and retries: docs/api.md, "Webhooks"."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Literal, get_args

from fastapi import APIRouter, status
from pydantic import AnyHttpUrl, BaseModel, Field

from balans_api import audit
from balans_api.deps import Admin, Pool, Settings
from balans_api.errors import ERROR_RESPONSES, ApiError, not_found
from balans_api.paging import Cursor, Limit, Page, Where, fetch_page
from balans_db.queries import notify
from balans_db.tables.api import WEBHOOK_EVENTS

router = APIRouter(tags=["webhooks"], responses=ERROR_RESPONSES)

Event = Literal["invoice.issued", "alert.opened", "alert.resolved", "readings.stored"]
assert set(get_args(Event)) == set(WEBHOOK_EVENTS)  # one list, declared with the table

_COLUMNS = "id, url, events, description, active, created_by, created_at"


class WebhookCreate(BaseModel):
    url: AnyHttpUrl = Field(description="Where the events are POSTed (https outside development).")
    events: list[Event] = Field(min_length=1)
    description: str = Field("", max_length=200)


class WebhookUpdate(BaseModel):
    url: AnyHttpUrl | None = None
    events: list[Event] | None = Field(None, min_length=1)
    description: str | None = Field(None, max_length=200)
    active: bool | None = None


class WebhookPublic(BaseModel):
    id: int
    url: str
    events: list[str]
    description: str
    active: bool
    created_by: str
    created_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(
        description="Signs every delivery (Balans-Signature); shown this once, keep it."
    )


class WebhookDetail(WebhookPublic):
    deliveries: dict[str, int] = Field(description="Deliveries by state: pending, delivered, dead.")


class DeliveryPublic(BaseModel):
    id: int
    subscription_id: int
    event_id: str
    event: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None


def _checked_url(url: AnyHttpUrl, settings: Settings) -> str:
    if url.scheme != "https" and settings.environment != "development":
        raise ApiError(422, "a webhook URL must use https outside development")
    return str(url)


@router.post("/webhooks", response_model=WebhookCreated, status_code=status.HTTP_201_CREATED)
async def create_webhook(
    body: WebhookCreate, pool: Pool, who: Admin, settings: Settings
) -> WebhookCreated:
    """Subscribe an endpoint to events; the answer carries the signing secret, once."""
    secret = "whsec_" + secrets.token_urlsafe(32)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"""insert into webhook_subscriptions (url, events, secret, description, created_by)
                values ($1, $2, $3, $4, $5) returning {_COLUMNS}""",
            _checked_url(body.url, settings),
            sorted(set(body.events)),
            secret,
            body.description,
            who.actor,
        )
        await audit.record(conn, who.actor, "webhook.create", f"webhook:{row['id']}")
    return WebhookCreated(**row, secret=secret)


@router.get("/webhooks", response_model=Page[WebhookPublic])
async def list_webhooks(pool: Pool, _: Admin, cursor: Cursor = None, limit: Limit = 100) -> Page:
    rows, nxt = await fetch_page(
        pool, f"select {_COLUMNS} from webhook_subscriptions", Where(), cursor, limit
    )
    return Page(items=[WebhookPublic(**r) for r in rows], next_cursor=nxt)


@router.get("/webhooks/{webhook_id}", response_model=WebhookDetail)
async def get_webhook(webhook_id: int, pool: Pool, _: Admin) -> WebhookDetail:
    row = await pool.fetchrow(
        f"select {_COLUMNS} from webhook_subscriptions where id = $1", webhook_id
    )
    if row is None:
        raise not_found("webhook")
    return WebhookDetail(**row, deliveries=await notify.delivery_counts(pool, webhook_id))


@router.patch("/webhooks/{webhook_id}", response_model=WebhookPublic)
async def update_webhook(
    webhook_id: int, body: WebhookUpdate, pool: Pool, who: Admin, settings: Settings
) -> WebhookPublic:
    """Change the URL, the events or the description, or pause (``active: false``)."""
    url = _checked_url(body.url, settings) if body.url is not None else None
    events = sorted(set(body.events)) if body.events is not None else None
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"""update webhook_subscriptions set url = coalesce($2, url),
                  events = coalesce($3, events), description = coalesce($4, description),
                  active = coalesce($5, active)
                where id = $1 returning {_COLUMNS}""",
            webhook_id,
            url,
            events,
            body.description,
            body.active,
        )
        if row is None:
            raise not_found("webhook")
        await audit.record(
            conn,
            who.actor,
            "webhook.update",
            f"webhook:{webhook_id}",
            **body.model_dump(mode="json", exclude_none=True),
        )
    return WebhookPublic(**row)


@router.delete("/webhooks/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(webhook_id: int, pool: Pool, who: Admin) -> None:
    """Unsubscribe; its delivery log goes with it."""
    async with pool.acquire() as conn, conn.transaction():
        deleted = await conn.fetchval(
            "delete from webhook_subscriptions where id = $1 returning id", webhook_id
        )
        if deleted is None:
            raise not_found("webhook")
        await audit.record(conn, who.actor, "webhook.delete", f"webhook:{webhook_id}")


@router.get("/webhook-deliveries", response_model=Page[DeliveryPublic])
async def list_deliveries(
    pool: Pool,
    _: Admin,
    subscription_id: int | None = None,
    state: Literal["pending", "delivered", "dead"] | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page:
    """The delivery log; ``state=dead`` is the dead-letter list (every attempt failed)."""
    where = Where().add("subscription_id = {}", subscription_id).add("state = {}", state)
    rows, nxt = await fetch_page(pool, notify.DELIVERIES, where, cursor, limit)
    return Page(items=[DeliveryPublic(**r) for r in rows], next_cursor=nxt)
