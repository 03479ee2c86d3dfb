"""``/users``, ``/api-keys``, ``/audit`` and new tariff versions: administration (admin
scope), every change audited. Tariffs are billing's: a new version is validated and stored
by billing, asked over NATS."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from fastapi import APIRouter, Body, Request, status
from nats.errors import MaxPayloadError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from balans_api import audit, login_backoff
from balans_api.deps import Admin, Pool
from balans_api.errors import ApiError, not_found
from balans_api.models import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    AuditEntry,
    TariffPublic,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from balans_api.paging import Cursor, Limit, Page, Where, fetch_page
from balans_api.password_policy import WeakPasswordError
from balans_api.security import new_api_key
from balans_api.users import USER_COLUMNS, create_user
from balans_db.queries import billing
from balans_protocol import subjects
from balans_protocol.messages import TariffVersionReply, TariffVersionRequest

router = APIRouter(tags=["admin"])

_KEY_COLUMNS = "id, name, prefix, scopes, created_at, last_used_at, revoked_at"


@router.get("/users", response_model=Page[UserPublic])
async def list_users(pool: Pool, _: Admin, cursor: Cursor = None, limit: Limit = 100) -> Page:
    """Users and their roles."""
    rows, nxt = await fetch_page(
        pool,
        f"select {USER_COLUMNS} from users",
        Where(),
        cursor,
        limit,
    )
    return Page(items=[UserPublic(**r) for r in rows], next_cursor=nxt)


@router.post("/users", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
async def add_user(body: UserCreate, pool: Pool, principal: Admin) -> UserPublic:
    """Create a user; a consumer needs the account whose flat they may see."""
    if (body.role == "consumer") != (body.account_id is not None):
        raise ApiError(422, "account_id is required for consumers and only for them")
    async with pool.acquire() as conn, conn.transaction():
        try:
            row = await create_user(
                conn, body.username, body.password, body.role, body.account_id, body.full_name
            )
        except WeakPasswordError as exc:
            raise ApiError(422, str(exc)) from exc
        except asyncpg.UniqueViolationError as exc:
            raise ApiError(409, "username taken") from exc
        except asyncpg.ForeignKeyViolationError as exc:
            raise ApiError(422, "no such account") from exc
        await audit.record(
            conn, principal.actor, "user.create", f"user:{body.username}", role=body.role
        )
    return UserPublic(**row)


@router.post("/users/{user_id}/deactivate", response_model=UserPublic)
async def deactivate_user(user_id: int, pool: Pool, principal: Admin) -> UserPublic:
    """Disable a user's logins (tokens already issued stop working at once).

    409 for the admin's own account and for the last active admin: someone must be left
    who can administer."""
    if user_id == principal.user_id:
        raise ApiError(409, "an admin cannot deactivate their own account")
    async with pool.acquire() as conn, conn.transaction():
        await _keep_an_admin(conn, user_id, "deactivated")
        row = await conn.fetchrow(
            f"update users set active = false where id = $1 returning {USER_COLUMNS}", user_id
        )
        if row is None:
            raise not_found("user")
        await audit.record(conn, principal.actor, "user.deactivate", f"user:{row['username']}")
    return UserPublic(**row)


async def _keep_an_admin(conn: asyncpg.Connection, user_id: int, what: str) -> None:
    """409 when ``user_id`` is the last active admin; locking the active admins serialises
    two admins demoting or deactivating each other."""
    admins = await conn.fetch(
        "select id from users where role = 'admin' and active order by id for update"
    )
    if [r["id"] for r in admins] == [user_id]:
        raise ApiError(409, f"the last active admin cannot be {what}")


@router.post("/users/{user_id}/activate", response_model=UserPublic)
async def activate_user(user_id: int, pool: Pool, principal: Admin) -> UserPublic:
    """Let a deactivated user log in again."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"update users set active = true where id = $1 returning {USER_COLUMNS}", user_id
        )
        if row is None:
            raise not_found("user")
        await audit.record(conn, principal.actor, "user.activate", f"user:{row['username']}")
    return UserPublic(**row)


@router.patch("/users/{user_id}", response_model=UserPublic)
async def update_user(user_id: int, body: UserUpdate, pool: Pool, principal: Admin) -> UserPublic:
    """Change a user's role or name. A consumer needs the account whose flat they may see
    (and only a consumer has one); an admin cannot change their own role, and the last
    active admin stays an admin (409)."""
    async with pool.acquire() as conn, conn.transaction():
        current = await conn.fetchrow(
            "select username, role, account_id from users where id = $1 for update", user_id
        )
        if current is None:
            raise not_found("user")
        role = body.role or current["role"]
        account_id = body.account_id if body.role or body.account_id else current["account_id"]
        if (role == "consumer") != (account_id is not None):
            raise ApiError(422, "account_id is required for consumers and only for them")
        if role != current["role"]:
            if user_id == principal.user_id:
                raise ApiError(409, "an admin cannot change their own role")
            if current["role"] == "admin":
                await _keep_an_admin(conn, user_id, "given another role")
        try:
            row = await conn.fetchrow(
                f"""update users set role = $2, account_id = $3,
                           full_name = coalesce($4, full_name)
                    where id = $1 returning {USER_COLUMNS}""",
                user_id,
                role,
                account_id,
                body.full_name,
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise ApiError(422, "no such account") from exc
        await audit.record(
            conn,
            principal.actor,
            "user.update",
            f"user:{current['username']}",
            **body.model_dump(exclude_none=True),
        )
    return UserPublic(**row)


@router.post("/users/{user_id}/unlock", response_model=UserPublic)
async def unlock_user(user_id: int, pool: Pool, principal: Admin) -> UserPublic:
    """Clear a user's login backoff (failed logins and the delay they set)."""
    async with pool.acquire() as conn, conn.transaction():
        cleared = await login_backoff.clear(conn, user_id)
        row = await conn.fetchrow(f"select {USER_COLUMNS} from users where id = $1", user_id)
        if row is None:
            raise not_found("user")
        await audit.record(
            conn, principal.actor, "user.unlock", f"user:{row['username']}", cleared=cleared
        )
    return UserPublic(**row)


@router.get("/api-keys", response_model=Page[ApiKeyPublic])
async def list_keys(pool: Pool, _: Admin, cursor: Cursor = None, limit: Limit = 100) -> Page:
    """Integrator API keys (never the secrets)."""
    rows, nxt = await fetch_page(
        pool, f"select {_KEY_COLUMNS} from api_keys", Where(), cursor, limit
    )
    return Page(items=[ApiKeyPublic(**r) for r in rows], next_cursor=nxt)


@router.post("/api-keys", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
async def add_key(body: ApiKeyCreate, pool: Pool, principal: Admin) -> ApiKeyCreated:
    """Issue a key with scopes; send it as ``Authorization: Bearer <token>``."""
    key = new_api_key()
    scopes = sorted(set(body.scopes))
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"""insert into api_keys (name, prefix, secret_sha256, scopes, created_by)
                values ($1, $2, $3, $4, $5) returning {_KEY_COLUMNS}""",
            body.name,
            key.prefix,
            key.secret_sha256,
            scopes,
            principal.user_id,
        )
        await audit.record(
            conn, principal.actor, "api_key.create", f"key:{key.prefix}", scopes=scopes
        )
    return ApiKeyCreated(**row, token=key.token)


@router.post("/api-keys/{key_id}/revoke", response_model=ApiKeyPublic)
async def revoke_key(key_id: int, pool: Pool, principal: Admin) -> ApiKeyPublic:
    """Revoke a key; it stops working at once."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"""update api_keys set revoked_at = coalesce(revoked_at, now()) where id = $1
                returning {_KEY_COLUMNS}""",
            key_id,
        )
        if row is None:
            raise not_found("api key")
        await audit.record(conn, principal.actor, "api_key.revoke", f"key:{row['prefix']}")
    return ApiKeyPublic(**row)


@router.get("/audit", response_model=Page[AuditEntry])
async def audit_entries(
    pool: Pool,
    _: Admin,
    action: str | None = None,
    actor: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page:
    """The audit log of commands and admin changes, oldest first; each filter narrows it
    (``since`` inclusive, ``until`` exclusive)."""
    where = (
        Where()
        .add("action = {}", action)
        .add("actor = {}", actor)
        .add("target = {}", target)
        .add("at >= {}", since)
        .add("at < {}", until)
    )
    rows, nxt = await fetch_page(
        pool, "select id, at, actor, action, target, detail from audit_log", where, cursor, limit
    )
    items = [AuditEntry(**r) for r in rows]
    return Page(items=items, next_cursor=nxt)


BILLING_TIMEOUT_S = 10.0

TARIFF_EXAMPLE = {
    "utility": "heat",
    "supplier": "default",
    "unit": "Gcal",
    "effective_from": "2027-01-01",
    "fixed_per_month": "0",
    "blocks": [{"from_qty": "0", "to_qty": None, "price": "1180.00"}],
    "operations_per_point_month": "0",
    "taxes": [],
}


@router.post(
    "/tariffs",
    response_model=TariffPublic,
    status_code=status.HTTP_201_CREATED,
    tags=["billing"],
)
async def add_tariff_version(
    request: Request,
    pool: Pool,
    principal: Admin,
    spec: dict[str, Any] = Body(
        description="A tariff document (docs/billing.md, Tariffs): validated by billing.",
        examples=[TARIFF_EXAMPLE],
    ),
) -> TariffPublic:
    """A new version of a utility's tariff, in force from its ``effective_from``: the
    version open on that day ends there. 422 names each problem of the document with its
    path; 409 when the dates overlap a stored version that does not end open before them."""
    nats = request.app.state.nats
    if nats is None or not nats.is_connected:
        raise ApiError(503, "billing cannot be reached (no NATS connection)")
    ask = TariffVersionRequest(spec=spec, actor=principal.actor)
    try:
        msg = await nats.request(
            subjects.BILLING_TARIFF, ask.model_dump_json().encode(), timeout=BILLING_TIMEOUT_S
        )
    except MaxPayloadError as exc:
        raise ApiError(422, "the tariff document is too large") from exc
    except (NatsTimeoutError, NoRespondersError) as exc:
        raise ApiError(503, "billing did not answer; try again", retry_after=5) from exc
    reply = TariffVersionReply.model_validate_json(msg.data)
    if reply.status == "invalid":
        raise ApiError(
            422, f"refused: {len(reply.problems)} problem(s) in the tariff", details=reply.problems
        )
    if reply.status == "conflict":
        raise ApiError(409, reply.detail)
    if reply.status != "done":
        raise ApiError(502, f"billing could not store the tariff: {reply.detail}")
    row = await pool.fetchrow(f"{billing.TARIFFS} where id = $1", reply.tariff_id)
    await audit.record(
        pool,
        principal.actor,
        "tariff.create",
        f"tariff:{row['utility']}/{row['supplier']}/{row['version']}",
        effective_from=row["effective_from"].isoformat(),
    )
    return TariffPublic(**row)
