"""FastAPI dependencies: the database pool, the settings and the authenticated principal."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from balans_api.errors import ApiError
from balans_api.principal import ROLE_SCOPES, FlatContext, Principal
from balans_api.principal_cache import PrincipalCache
from balans_api.security import VerifiedTokens, digests_match, split_api_key
from balans_api.settings import ApiSettings

oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/api/v1/auth/token",
    auto_error=False,
    scopes={
        "read": "read everything",
        "operate": "commands, alert handling",
        "admin": "users and keys",
    },
)


# async, though they wait for nothing: FastAPI runs a plain function dependency in a
# worker thread, and the hop cost more than a profile's SQL did
async def get_pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool


async def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings


Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
Settings = Annotated[ApiSettings, Depends(get_settings)]

_USER_SQL = """
select u.id, u.username, u.role, u.account_id, a.flat_id, f.building_id, a.opened_on,
       a.closed_on, f.number, f.rooms, f.area_m2::float8 as area_m2, s.timezone
from users u
left join accounts a on a.id = u.account_id
left join flats f on f.id = a.flat_id
left join buildings b on b.id = f.building_id
left join sites s on s.id = b.site_id
where u.id = $1 and u.active
"""

_KEY_SQL = """
update api_keys set last_used_at = now()
where prefix = $1 and revoked_at is null
returning secret_sha256, scopes
"""


async def user_principal(pool: asyncpg.Pool, user_id: int) -> Principal | None:
    row = await pool.fetchrow(_USER_SQL, user_id)
    if row is None:
        return None
    role = row["role"]
    return Principal(
        actor=f"user:{row['username']}",
        role=role,
        scopes=ROLE_SCOPES[role],
        user_id=row["id"],
        account_id=row["account_id"],
        flat_ids=(row["flat_id"],) if row["flat_id"] is not None else (),
        building_ids=(row["building_id"],) if row["building_id"] is not None else (),
        held_from=row["opened_on"],
        held_until=row["closed_on"],
        own_flat=FlatContext(
            flat_id=row["flat_id"],
            building_id=row["building_id"],
            number=row["number"],
            rooms=row["rooms"],
            area_m2=row["area_m2"],
            timezone=row["timezone"],
        )
        if row["flat_id"] is not None
        else None,
    )


async def key_principal(pool: asyncpg.Pool, token: str) -> Principal | None:
    parts = split_api_key(token)
    if parts is None:
        return None
    prefix, digest = parts
    row = await pool.fetchrow(_KEY_SQL, prefix)
    if row is None or not digests_match(bytes(row["secret_sha256"]), digest):
        return None
    return Principal(actor=f"key:{prefix}", role="integrator", scopes=frozenset(row["scopes"]))


async def _kept_user(state: Any, pool: asyncpg.Pool, user_id: int) -> Principal | None:
    kept: PrincipalCache = state.principals
    principal = kept.get(user_id)
    if principal is None:
        principal = await user_principal(pool, user_id)
        if principal is not None:
            kept.put(user_id, principal)
    return principal


async def principal_of(state: Any, pool: asyncpg.Pool, token: str) -> Principal | None:
    """The principal of a bearer token (the app's ``state``: its kept tokens and
    principals): a JWT from ``/auth/token`` or an integrator API key; None if invalid."""
    if token.startswith("bk_"):
        return await key_principal(pool, token)
    tokens: VerifiedTokens = state.tokens
    user_id = tokens.user_id(token)
    return None if user_id is None else await _kept_user(state, pool, user_id)


async def current_principal(
    request: Request, pool: Pool, token: str | None = Depends(oauth2_scheme)
) -> Principal:
    """A bearer token is either a JWT from ``/auth/token`` or an integrator API key."""
    if not token:
        raise ApiError(401, "authentication required")
    principal = await principal_of(request.app.state, pool, token)
    if principal is None:
        raise ApiError(401, "invalid or expired credentials")
    request.state.actor = principal.actor
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def allowed(principal: Principal, scope: str, consumers: bool) -> bool:
    """Whether the principal has ``scope`` (or, with ``consumers``, is a consumer)."""
    return scope in principal.scopes or (consumers and principal.is_consumer)


def _requiring(
    scope: str, consumers: bool
) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    async def dependency(principal: CurrentPrincipal) -> Principal:
        if allowed(principal, scope, consumers):
            return principal
        raise ApiError(403, f"this needs the '{scope}' scope")

    return dependency


# read access, consumers included (their queries are filtered to their own flat)
Reader = Annotated[Principal, Depends(_requiring("read", consumers=True))]
# read access for staff and integrators only (network, balance internals, audit)
Staff = Annotated[Principal, Depends(_requiring("read", consumers=False))]
Operator = Annotated[Principal, Depends(_requiring("operate", consumers=False))]
Admin = Annotated[Principal, Depends(_requiring("admin", consumers=False))]
