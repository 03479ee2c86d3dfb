"""``/users``, ``/api-keys``, ``/audit``: administration (admin scope), every change audited."""

from __future__ import annotations

import asyncpg
from fastapi import APIRouter, status

from balans_api import audit, login_backoff
from balans_api.deps import Admin, Pool
from balans_api.errors import ApiError, not_found
from balans_api.models import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    AuditEntry,
    UserCreate,
    UserPublic,
)
from balans_api.paging import Cursor, Limit, Page, Where, fetch_page
from balans_api.password_policy import WeakPasswordError
from balans_api.security import new_api_key
from balans_api.users import USER_COLUMNS, create_user

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
        # locking the active admins serialises two admins deactivating each other
        admins = await conn.fetch(
            "select id from users where role = 'admin' and active order by id for update"
        )
        if [r["id"] for r in admins] == [user_id]:
            raise ApiError(409, "the last active admin cannot be deactivated")
        row = await conn.fetchrow(
            f"update users set active = false where id = $1 returning {USER_COLUMNS}", user_id
        )
        if row is None:
            raise not_found("user")
        await audit.record(conn, principal.actor, "user.deactivate", f"user:{row['username']}")
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
    pool: Pool, _: Admin, action: str | None = None, cursor: Cursor = None, limit: Limit = 100
) -> Page:
    """The audit log of commands and admin changes, oldest first."""
    rows, nxt = await fetch_page(
        pool,
        "select id, at, actor, action, target, detail from audit_log",
        Where().add("action = {}", action),
        cursor,
        limit,
    )
    items = [AuditEntry(**r) for r in rows]
    return Page(items=items, next_cursor=nxt)
