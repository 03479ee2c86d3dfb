"""``/auth``: the OAuth2 password flow and who-am-I."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from balans_api.deps import CurrentPrincipal, Pool, Settings
from balans_api.errors import ApiError
from balans_api.metrics import LOGINS
from balans_api.models import Me, Token
from balans_api.security import issue_token, verify_password

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/token", response_model=Token)
async def login(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    pool: Pool,
    settings: Settings,
) -> Token:
    """Exchange username and password for a short-lived bearer token (OAuth2 password flow).

    Attempts are rate-limited per client address and per username (429 when exceeded)."""
    client = request.client.host if request.client else "unknown"
    if not request.app.state.login_limiter.allow(client, form.username):
        LOGINS.labels(outcome="limited").inc()
        raise ApiError(429, "too many login attempts; wait a minute")
    row = await pool.fetchrow(
        "select id, role, password_hash from users where username = $1 and active",
        form.username,
    )
    if row is None or not verify_password(row["password_hash"], form.password):
        LOGINS.labels(outcome="rejected").inc()
        raise ApiError(401, "wrong username or password")
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
