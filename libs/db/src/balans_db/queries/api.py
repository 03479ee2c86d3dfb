"""What the api publishes: the residents' choices on their user rows and the integrators'
webhook subscriptions (tables in :mod:`balans_db.tables.api` and ``world``), read by notify."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from balans_db.queries import Db


async def monthly_recipient(db: Db, account_id: int) -> Any:
    """Who gets the account's monthly e-mail and how: the account's ``number``,
    ``holder_name`` and ``email``, its ``flat_id``, ``flat_number``, ``building_id``,
    ``rooms``, the building's ``address``, the site's ``timezone``, and from the account's
    consumer login (the first, if there are several) its ``language`` (null: none chosen)
    and ``monthly_email`` (false: opted out; true without a login); None if there is no such
    account."""
    return await db.fetchrow(
        """select a.number, a.holder_name, a.email, a.flat_id, f.number as flat_number,
                  f.building_id, f.rooms, b.address, s.timezone, u.language,
                  coalesce(u.monthly_email, true) as monthly_email
           from accounts a join flats f on f.id = a.flat_id
           join buildings b on b.id = f.building_id join sites s on s.id = b.site_id
           left join lateral (
             select language, monthly_email from users
             where account_id = a.id and active order by id limit 1) u on true
           where a.id = $1""",
        account_id,
    )


async def webhook_subscriptions_for(db: Db, event: str) -> list[Any]:
    """The active subscriptions (id, url, secret) that asked for ``event``."""
    return await db.fetch(
        """select id, url, secret from webhook_subscriptions
           where active and $1 = any(events) order by id""",
        event,
    )


async def webhook_subscription(db: Db, subscription_id: int) -> Any:
    """One subscription (id, url, secret, active); None if there is no such one."""
    return await db.fetchrow(
        "select id, url, secret, active from webhook_subscriptions where id = $1",
        subscription_id,
    )


async def meter_holder(db: Db, meter_id: int, at: datetime) -> Any:
    """The flat meter's ``serial`` and ``utility`` with the ``account_id`` holding its flat
    on the local day (the building's site) of ``at`` (``opened_on`` inclusive, null: since
    metering began; ``closed_on`` exclusive; docs/provisioning.md, "Account holders over
    time"); ``account_id`` is null when no account held the flat that day (vacant). None
    for a meter of no flat."""
    return await db.fetchrow(
        """select m.serial, m.utility, a.id as account_id
           from meters m join flats f on f.id = m.flat_id
           join buildings b on b.id = f.building_id join sites s on s.id = b.site_id
           left join lateral (
             select id from accounts
             where flat_id = f.id
               and (opened_on is null or opened_on <= ($2 at time zone s.timezone)::date)
               and (closed_on is null or closed_on > ($2 at time zone s.timezone)::date)
             order by opened_on desc nulls last, id desc limit 1) a on true
           where m.id = $1""",
        meter_id,
        at,
    )
