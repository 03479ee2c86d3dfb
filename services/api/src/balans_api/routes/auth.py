"""``/auth``: the OAuth2 password flow and who-am-I."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from balans_api import audit, login_backoff
from balans_api.deps import CurrentPrincipal, Pool, Settings
from balans_api.errors import ApiError
from balans_api.metrics import LOGINS
from balans_api.models import Me, PasswordChange, Token
from balans_api.password_policy import WeakPasswordError
from balans_api.security import issue_token, spend_a_verification, verify_password
from balans_api.users import set_password

router = APIRouter(prefix="/auth", tags=["auth"])


_LOGIN_SQL = """
select id, role, password_hash,
       greatest(0, extract(epoch from login_delay_until - now()))::float8 as wait_s
from users where username = $1 and active
"""


@router.post("/token", response_model=Token)
async def login(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    pool: Pool,
    settings: Settings,
) -> Token:
    """Exchange username and password for a short-lived bearer token (OAuth2 password flow).

    429 with ``Retry-After`` when the client address has tried too often
    (``BALANS_LOGIN_RATE``) or when the user is in a backoff delay after repeated failed
    logins (doubling from ``BALANS_LOGIN_DELAY_S`` up to ``BALANS_LOGIN_MAX_DELAY_S``; an
    admin can clear it)."""
    client = request.client.host if request.client else "unknown"
    if not await request.app.state.login_limiter.allow(pool, client):
        LOGINS.labels(outcome="limited").inc()
        raise ApiError(
            429, "too many login attempts from this address; wait a minute", retry_after=60
        )
    row = await pool.fetchrow(_LOGIN_SQL, form.username)
    if row is not None and row["wait_s"] > 0:
        LOGINS.labels(outcome="delayed").inc()
        wait = math.ceil(row["wait_s"])
        raise ApiError(
            429, f"too many failed logins for this user; try again in {wait} s", retry_after=wait
        )
    if row is None:
        spend_a_verification(form.password)
    if row is None or not verify_password(row["password_hash"], form.password):
        if row is not None:
            await login_backoff.record_failure(pool, row["id"], settings)
        LOGINS.labels(outcome="rejected").inc()
        raise ApiError(401, "wrong username or password")
    await login_backoff.clear(pool, row["id"])
    LOGINS.labels(outcome="accepted").inc()
    token = issue_token(settings.jwt_secret, row["id"], row["role"], settings.jwt_ttl_s)
    return Token(access_token=token, expires_in=settings.jwt_ttl_s)


@router.get("/me", response_model=Me)
async def me(principal: CurrentPrincipal) -> Me:
    """The authenticated user or key: role, scopes and (for consumers) the visible flats."""
    return Me(
        actor=principal.actor,
        role=principal.role,
        scopes=sorted(principal.scopes),
        account_id=principal.account_id,
        flat_ids=list(principal.flat_ids),
        building_ids=list(principal.building_ids),
    )


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(body: PasswordChange, pool: Pool, principal: CurrentPrincipal) -> None:
    """Change the signed-in user's password (422 naming the rule a weak one breaks)."""
    if principal.user_id is None:
        raise ApiError(403, "an API key has no password")
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "select username, password_hash from users where id = $1 for update",
            principal.user_id,
        )
        if row is None or not verify_password(row["password_hash"], body.current_password):
            raise ApiError(403, "the current password is wrong")
        try:
            await set_password(conn, principal.user_id, row["username"], body.new_password)
        except WeakPasswordError as exc:
            raise ApiError(422, str(exc)) from exc
        await audit.record(conn, principal.actor, "user.password", f"user:{row['username']}")
