"""``/me/preferences``: the signed-in user's language (the portal's, the API's error
messages' and the e-mails') and, for a resident, the monthly consumption e-mail (on or off).
Kept on the user row (``users.language``, ``users.monthly_email``)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from balans_api import audit
from balans_api.deps import CurrentPrincipal, Pool
from balans_api.errors import ERROR_RESPONSES, ApiError

router = APIRouter(tags=["auth"], responses=ERROR_RESPONSES)


class Preferences(BaseModel):
    language: Literal["ro", "ru", "en"] | None = Field(
        description="null: the browser's choice (Accept-Language), Romanian in e-mails."
    )
    monthly_email: bool = Field(
        description="The monthly consumption e-mail to the account's address (residents)."
    )


def _user_id(principal: CurrentPrincipal) -> int:
    if principal.user_id is None:
        raise ApiError(403, "an API key has no preferences")
    return principal.user_id


@router.get("/me/preferences", response_model=Preferences)
async def get_preferences(pool: Pool, principal: CurrentPrincipal) -> Preferences:
    row = await pool.fetchrow(
        "select language, monthly_email from users where id = $1", _user_id(principal)
    )
    return Preferences(**row)


@router.put("/me/preferences", response_model=Preferences)
async def set_preferences(
    body: Preferences, pool: Pool, principal: CurrentPrincipal
) -> Preferences:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "update users set language = $2, monthly_email = $3 where id = $1",
            _user_id(principal),
            body.language,
            body.monthly_email,
        )
        await audit.record(
            conn, principal.actor, "user.preferences", principal.actor, **body.model_dump()
        )
    return body
