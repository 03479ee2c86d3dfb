"""The world: sites, buildings and their equipment (migrations ``0001_core``,
``api_0003_provisioning``).

Owned by the api's provisioning part. Rows are written only through
:mod:`balans_db.topology` (used by the demo seed, the simulator's city generator and
M-Bus meter registration); every service reads them through :mod:`balans_db.queries.world`.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from balans_db.tables.base import UTILITIES, metadata, one_of

OWNER = "api"

LAYOUTS = ("1a", "1b", "1c", "2a", "2b")
METER_KINDS = ("heat_meter", "water_meter", "flow_meter", "gas_meter", "electricity_meter")
METER_ROLES = ("flat", "riser", "building", "common", "branch")

sites = sa.Table(
    "sites",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("code", sa.Text, nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("address", sa.Text, nullable=False),
    sa.Column("latitude", sa.Float, nullable=False),
    sa.Column("longitude", sa.Float, nullable=False),
    sa.Column("timezone", sa.Text, nullable=False, server_default="Europe/Chisinau"),
    sa.Column("retired_on", sa.Date),  # api_0003_provisioning
)

buildings = sa.Table(
    "buildings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("site_id", sa.ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
    sa.Column("code", sa.Text, nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("address", sa.Text, nullable=False),
    sa.Column("floors", sa.SmallInteger, nullable=False),
    sa.Column("layout", sa.Text, nullable=False),
    sa.Column("methodology", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("retired_on", sa.Date),  # api_0003_provisioning
    sa.CheckConstraint(one_of("layout", LAYOUTS), name="layout"),
)

entrances = sa.Table(
    "entrances",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("building_id", sa.ForeignKey("buildings.id", ondelete="CASCADE"), nullable=False),
    sa.Column("number", sa.SmallInteger, nullable=False),
    sa.UniqueConstraint("building_id", "number", name="uq_entrances_building_number"),
)

risers = sa.Table(
    "risers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("building_id", sa.ForeignKey("buildings.id", ondelete="CASCADE"), nullable=False),
    sa.Column("entrance_id", sa.ForeignKey("entrances.id", ondelete="CASCADE"), nullable=False),
    sa.Column("number", sa.SmallInteger, nullable=False),
    sa.UniqueConstraint("building_id", "number", name="uq_risers_building_number"),
)

flats = sa.Table(
    "flats",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("building_id", sa.ForeignKey("buildings.id", ondelete="CASCADE"), nullable=False),
    sa.Column("entrance_id", sa.ForeignKey("entrances.id", ondelete="CASCADE"), nullable=False),
    sa.Column("number", sa.Text, nullable=False),
    sa.Column("floor", sa.SmallInteger, nullable=False),
    sa.Column("rooms", sa.SmallInteger, nullable=False),
    sa.Column("area_m2", sa.Numeric(8, 2), nullable=False),
    sa.UniqueConstraint("building_id", "number", name="uq_flats_building_number"),
    sa.CheckConstraint("area_m2 > 0", name="area_positive"),
)

radiators = sa.Table(
    "radiators",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("flat_id", sa.ForeignKey("flats.id", ondelete="CASCADE"), nullable=False),
    sa.Column("riser_id", sa.ForeignKey("risers.id", ondelete="CASCADE")),
    sa.Column("sections", sa.SmallInteger, nullable=False, server_default="8"),
    sa.UniqueConstraint("flat_id", "riser_id", name="uq_radiators_flat_riser"),
)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("number", sa.Text, nullable=False, unique=True),
    sa.Column("holder_name", sa.Text, nullable=False),
    # null for the building's owner account (building_id set instead): api_0007
    sa.Column("flat_id", sa.ForeignKey("flats.id", ondelete="CASCADE")),
    sa.Column("residents", sa.SmallInteger, nullable=False, server_default="1"),
    sa.Column("email", sa.Text),
    # [opened_on, closed_on) in local days; null opened_on = since metering began (api_0007)
    sa.Column("opened_on", sa.Date),
    sa.Column("closed_on", sa.Date),
    sa.Column("building_id", sa.ForeignKey("buildings.id", ondelete="CASCADE")),
    sa.CheckConstraint("(flat_id is null) <> (building_id is null)", name="flat_or_owner"),
    sa.CheckConstraint(
        "closed_on is null or opened_on is null or closed_on > opened_on", name="period"
    ),
    sa.Index(
        "uq_accounts_owner_building",
        "building_id",
        unique=True,
        postgresql_where=sa.text("building_id is not null"),
    ),
)

concentrators = sa.Table(
    "concentrators",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("serial", sa.BigInteger, nullable=False, unique=True),
    sa.Column("building_id", sa.ForeignKey("buildings.id", ondelete="CASCADE"), nullable=False),
    sa.Column("model", sa.Text, nullable=False, server_default="J100G"),
    # AES-GCM(nonce || ciphertext) of the device key under the master key: see secrets.py
    sa.Column("key_ciphertext", sa.LargeBinary, nullable=False),
    # after a rotation the old key stays valid until previous_key_until (api_0003_provisioning)
    sa.Column("previous_key_ciphertext", sa.LargeBinary),
    sa.Column("previous_key_until", sa.DateTime(timezone=True)),
    sa.Column("installed_on", sa.Date, nullable=False, server_default=sa.func.current_date()),
)

radio_modules = sa.Table(
    "radio_modules",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("serial", sa.BigInteger, nullable=False, unique=True),
    sa.Column(
        "concentrator_id", sa.ForeignKey("concentrators.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("subnet", sa.SmallInteger, nullable=False),
    sa.Column("model", sa.Text, nullable=False, server_default="D100FC"),
    sa.Column("building_id", sa.ForeignKey("buildings.id", ondelete="CASCADE"), nullable=False),
    sa.Column("flat_id", sa.ForeignKey("flats.id", ondelete="SET NULL")),
    sa.Column("riser_id", sa.ForeignKey("risers.id", ondelete="SET NULL")),
    sa.Column("floor", sa.SmallInteger, nullable=False),
    sa.Column("installed_on", sa.Date, nullable=False, server_default=sa.func.current_date()),
    sa.CheckConstraint("subnet between 0 and 7", name="subnet_range"),
    # api_0012_radio_module_lookup: a building's modules (the overview's counts)
    sa.Index("ix_radio_modules_building_id", "building_id"),
)

meters = sa.Table(
    "meters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("serial", sa.Text, nullable=False, unique=True),
    sa.Column("utility", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("building_id", sa.ForeignKey("buildings.id", ondelete="CASCADE"), nullable=False),
    sa.Column("flat_id", sa.ForeignKey("flats.id", ondelete="CASCADE")),
    sa.Column("riser_id", sa.ForeignKey("risers.id", ondelete="CASCADE")),
    sa.Column("pulse_weight", sa.Numeric(12, 6), nullable=False),
    sa.Column("unit", sa.Text, nullable=False),
    sa.Column("pipe", sa.Text),
    sa.Column("accuracy_class", sa.Text, nullable=False, server_default="2"),
    sa.Column("has_valve", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("installed_on", sa.Date, nullable=False, server_default=sa.func.current_date()),
    sa.Column("verified_on", sa.Date),
    # null = the utility's default (BALANS_VERIFICATION_INTERVAL_YEARS): api_0007
    sa.Column("verification_interval_years", sa.SmallInteger),
    sa.CheckConstraint(one_of("utility", UTILITIES), name="utility"),
    sa.CheckConstraint(one_of("kind", METER_KINDS), name="kind"),
    sa.CheckConstraint(one_of("role", METER_ROLES), name="role"),
    sa.CheckConstraint("unit in ('kWh', 'm3')", name="unit"),
    sa.CheckConstraint("pipe is null or pipe in ('flow', 'return')", name="pipe"),
    sa.CheckConstraint("pulse_weight > 0", name="pulse_weight_positive"),
    sa.CheckConstraint(
        "verification_interval_years is null or verification_interval_years between 1 and 50",
        name="verification_interval",
    ),
    # api_0011_meter_lookups: a flat's meters (profile, card) and a building's
    sa.Index("ix_meters_flat_id", "flat_id"),
    sa.Index("ix_meters_building_id", "building_id"),
)

channels = sa.Table(
    "channels",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("meter_id", sa.ForeignKey("meters.id", ondelete="CASCADE"), nullable=False),
    sa.Column(
        "module_serial",
        sa.ForeignKey("radio_modules.serial", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("input", sa.SmallInteger, nullable=False),
    # api_0006_channel_periods: the meter is on this input for [valid_from, valid_to)
    # (NULL: since always / still); its register is register_offset + count * pulse_weight;
    # count_at_start / count_at_end: the module's count at the ends, from an exchange record
    sa.Column("valid_from", sa.DateTime(timezone=True)),
    sa.Column("valid_to", sa.DateTime(timezone=True)),
    sa.Column("count_at_start", sa.BigInteger),
    sa.Column("count_at_end", sa.BigInteger),
    sa.Column("register_offset", sa.Numeric(18, 6), nullable=False, server_default="0"),
    sa.UniqueConstraint("meter_id", name="uq_channels_meter"),
    sa.Index(
        "uq_channels_module_input_open",
        "module_serial",
        "input",
        unique=True,
        postgresql_where=sa.text("valid_to is null"),
    ),
    sa.Index("ix_channels_module_input", "module_serial", "input"),
    sa.CheckConstraint("input between 0 and 5", name="input_range"),
    sa.CheckConstraint(
        "valid_from is null or valid_to is null or valid_from < valid_to", name="period_order"
    ),
)

sensor_pairs = sa.Table(
    "sensor_pairs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "module_serial",
        sa.ForeignKey("radio_modules.serial", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    sa.Column("position", sa.Text, nullable=False),
    sa.Column("building_id", sa.ForeignKey("buildings.id", ondelete="CASCADE"), nullable=False),
    sa.Column("flat_id", sa.ForeignKey("flats.id", ondelete="CASCADE")),
    sa.Column("riser_id", sa.ForeignKey("risers.id", ondelete="CASCADE")),
    sa.Column("radiator_id", sa.ForeignKey("radiators.id", ondelete="CASCADE")),
    sa.CheckConstraint("position in ('flat', 'riser', 'building')", name="position"),
)
