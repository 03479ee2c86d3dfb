"""Portal users, integrator API keys, the audit log, login attempts, downlink commands and
integrators' webhook subscriptions, import jobs (migrations ``api_0001``, ``api_0002``,
``api_0004``, ``api_0008``, ``api_0010``).

Owned by the api. A consumer user is bound to one account; ``api_keys`` store a SHA-256
of the random secret; ``commands`` track a valve or relay command from the request to
the concentrator's reply.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from balans_db.tables.base import created_now, metadata, one_of, outbox_table

OWNER = "api"

ROLES = ("admin", "operator", "manager", "consumer")
LANGUAGES = ("ro", "ru", "en")  # balans_i18n.catalogs.LOCALES
WEBHOOK_EVENTS = ("invoice.issued", "alert.opened", "alert.resolved", "readings.stored")
COMMAND_STATUSES = ("pending", "done", "failed", "offline", "timeout")
IMPORT_STATUSES = ("queued", "running", "succeeded", "failed")

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.Text, nullable=False, unique=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("account_id", sa.ForeignKey("accounts.id", ondelete="CASCADE")),
    sa.Column("full_name", sa.Text, nullable=False, server_default=""),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    created_now("created_at"),
    # login backoff (api_0002): failures since the last good login, and until when the
    # next attempt is refused
    sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
    sa.Column("login_delay_until", sa.DateTime(timezone=True)),
    # api_0008: the language of the portal and of the e-mails to the user's account (null:
    # the browser's choice, Romanian in e-mails), and the resident's opt-out of the monthly
    # consumption e-mail
    sa.Column("language", sa.Text),
    sa.Column("monthly_email", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.CheckConstraint(one_of("role", ROLES), name="role"),
    sa.CheckConstraint(f"language is null or {one_of('language', LANGUAGES)}", name="language"),
    sa.CheckConstraint("(role = 'consumer') = (account_id is not null)", name="consumer_account"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("prefix", sa.Text, nullable=False, unique=True),
    sa.Column("secret_sha256", sa.LargeBinary, nullable=False),
    sa.Column("scopes", ARRAY(sa.Text), nullable=False),
    sa.Column("created_by", sa.ForeignKey("users.id", ondelete="SET NULL")),
    created_now("created_at"),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    created_now("at"),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("detail", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Index("ix_audit_log_at", "at"),
)

# login attempts per client address in the moving window of BALANS_LOGIN_RATE (api_0004):
# shared by every api worker; rows older than the window are deleted as logins come
login_attempts = sa.Table(
    "login_attempts",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("client", sa.Text, nullable=False),
    created_now("at"),
    sa.Index("ix_login_attempts_client_at", "client", "at"),
    sa.Index("ix_login_attempts_at", "at"),
)

commands = sa.Table(
    "commands",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("meter_id", sa.ForeignKey("meters.id", ondelete="CASCADE"), nullable=False),
    sa.Column("module_serial", sa.BigInteger, nullable=False),
    sa.Column("concentrator_serial", sa.BigInteger, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Column("requested_by", sa.Text, nullable=False),
    created_now("created_at"),
    created_now("updated_at"),
    sa.CheckConstraint(one_of("status", COMMAND_STATUSES), name="status"),
    sa.Index("ix_commands_meter_created", "meter_id", "created_at"),
)

# integrators' webhook endpoints (api_0008): notify delivers the events named in ``events``
# to ``url``, signed with ``secret`` (HMAC-SHA256; kept as is because signing needs it)
webhook_subscriptions = sa.Table(
    "webhook_subscriptions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("events", ARRAY(sa.Text), nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_by", sa.Text, nullable=False),
    created_now("created_at"),
    sa.CheckConstraint(
        "events <@ array[" + ", ".join(repr(e) for e in WEBHOOK_EVENTS) + "]::text[]"
        " and cardinality(events) > 0",
        name="events",
    ),
)

# import jobs (api_0010, balans_api.import_jobs): any api worker answers any job; the
# worker running one renews heartbeat_at, a job whose heartbeat stopped is answered as
# failed; sealed_keys (serial -> KeyVault-sealed device key, hex) are erased by the
# statement that hands them out
import_jobs = sa.Table(
    "import_jobs",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("started_by", sa.Text, nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("buildings", sa.Integer, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="queued"),
    sa.Column("done", sa.Integer, nullable=False, server_default="0"),
    sa.Column("total", sa.Integer, nullable=False, server_default="0"),
    sa.Column("result", JSONB),
    sa.Column("problems", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("sealed_keys", JSONB),
    created_now("created_at"),
    created_now("updated_at"),
    created_now("heartbeat_at"),
    sa.CheckConstraint(one_of("status", IMPORT_STATUSES), name="status"),
    sa.Index("ix_import_jobs_created_at", "created_at"),
)

# TopologyChanged announcements of provisioning (api_0005_outbox, balans_core.outbox)
api_outbox = outbox_table("api_outbox")

# kept answers of closed months (api_0013, balans_api.kept_profiles): a flat's month profile
# as the api answers it, built for every flat once the month has closed, deleted when late
# data changes one of its inputs (and built again); the generation of a building's month
# counts those invalidations, so a build that read the old inputs never stores its answers
kept_profile_months = sa.Table(
    "kept_profile_months",
    metadata,
    sa.Column("building_id", sa.ForeignKey("buildings.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("month", sa.Date, primary_key=True),
    sa.Column("generation", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("built_at", sa.DateTime(timezone=True)),
)

kept_profiles = sa.Table(
    "kept_profiles",
    metadata,
    sa.Column("flat_id", sa.ForeignKey("flats.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("month", sa.Date, primary_key=True),
    sa.Column("resolution", sa.Text, primary_key=True),
    sa.Column("building_id", sa.Integer, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.CheckConstraint("resolution in ('hour', 'day')", name="resolution"),
    sa.Index("ix_kept_profiles_building_month", "building_id", "month"),
)
