"""Creating users (shared by the admin endpoints, the ``balans user`` CLI and demo logins)."""

from __future__ import annotations

import asyncpg

from balans_api.password_policy import check_password
from balans_api.security import hash_password

DEMO_OPERATOR = ("operator", "operator-demo")
DEMO_CONSUMER = ("consumer", "consumer-demo")
DEMO_ADMIN = ("admin", "admin-demo")
DEMO_CONSUMER_EMAIL = "consumer@demo.balans.invalid"  # .invalid: never deliverable


# what the admin API shows of a user
USER_COLUMNS = (
    "id, username, role, account_id, full_name, active, created_at, failed_logins, "
    "login_delay_until"
)


async def create_user(
    conn: asyncpg.Pool | asyncpg.Connection,
    username: str,
    password: str,
    role: str,
    account_id: int | None = None,
    full_name: str = "",
) -> asyncpg.Record:
    """Insert a user; raises WeakPasswordError when the password breaks the policy and
    asyncpg.UniqueViolationError when the name is taken."""
    check_password(password, username)
    return await _insert_user(conn, username, password, role, account_id, full_name)


async def set_password(
    conn: asyncpg.Pool | asyncpg.Connection, user_id: int, username: str, password: str
) -> None:
    """Replace a user's password (WeakPasswordError when it breaks the policy)."""
    check_password(password, username)
    await conn.execute(
        "update users set password_hash = $2 where id = $1", user_id, hash_password(password)
    )


async def _insert_user(
    conn: asyncpg.Pool | asyncpg.Connection,
    username: str,
    password: str,
    role: str,
    account_id: int | None,
    full_name: str,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""insert into users (username, password_hash, role, account_id, full_name)
            values ($1, $2, $3, $4, $5) returning {USER_COLUMNS}""",
        username,
        hash_password(password),
        role,
        account_id,
        full_name,
    )
    assert row is not None
    return row


async def ensure_demo_users(conn: asyncpg.Pool | asyncpg.Connection) -> list[tuple[str, str]]:
    """Create the demo admin, operator and consumer if missing; the consumer gets the
    account whose flat has the most meters (so every consumer chart has something), and
    that account an e-mail address if it has none (``DEMO_CONSUMER_EMAIL``: notify writes
    its monthly e-mail to the Maildir of ``make run``).

    Returns the (username, password) pairs that exist afterwards."""
    account_id = await conn.fetchval(
        """select a.id from accounts a left join meters m on m.flat_id = a.flat_id
           group by a.id order by count(m.id) desc, a.id limit 1"""
    )
    wanted = [(DEMO_ADMIN, "admin", None), (DEMO_OPERATOR, "operator", None)]
    if account_id is not None:
        wanted.append((DEMO_CONSUMER, "consumer", account_id))
    created = []
    for (username, password), role, account in wanted:
        if not await conn.fetchval("select 1 from users where username = $1", username):
            # the demo passwords are public and short on purpose (development only), so
            # they skip the policy
            await _insert_user(conn, username, password, role, account, f"Demo {role}")
            if account is not None:  # so notify has someone to send the monthly e-mail to
                await conn.execute(
                    "update accounts set email = coalesce(email, $2) where id = $1",
                    account,
                    DEMO_CONSUMER_EMAIL,
                )
        created.append((username, password))
    return created
