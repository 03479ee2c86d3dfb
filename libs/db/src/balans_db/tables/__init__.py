"""Every table of the database, declared once, with the service that owns it.

One module per owner (``world`` is the api's provisioning part, the building topology);
all share :data:`metadata`. The migrations build the database; ``libs/db/tests/
test_declarations.py`` checks these declarations against them. An owner alone writes its
tables; other services read them through the owner's module in :mod:`balans_db.queries`
(``libs/db/tests/test_ownership.py`` checks the services' SQL). See docs/database.md.
"""

from __future__ import annotations

from types import ModuleType

import sqlalchemy as sa

from balans_db.tables import allocation, api, balance, billing, ingest, mbus, notify, world
from balans_db.tables.allocation import (
    allocation_building_hours,
    allocation_outbox,
    allocation_sensor_estimates,
    allocation_watermarks,
    heat_allocation,
    meter_consumption,
)
from balans_db.tables.api import ROLES, api_keys, audit_log, commands, users, webhook_subscriptions
from balans_db.tables.balance import (
    alerts,
    balance_group_members,
    balance_groups,
    balance_outbox,
    forecasts,
    imbalance_series,
    outdoor_temperatures,
)
from balans_db.tables.base import UTILITIES, metadata
from balans_db.tables.billing import (
    billing_outbox,
    billing_period_closures,
    billing_suppliers,
    connected_loads,
    invoice_lines,
    invoices,
    tariffs,
)
from balans_db.tables.ingest import (
    module_events,
    module_status,
    pulse_readings,
    temperature_readings,
)
from balans_db.tables.mbus import mbus_formats, mbus_meters, mbus_temperature_samples
from balans_db.tables.notify import notify_emails, webhook_deliveries
from balans_db.tables.world import (
    LAYOUTS,
    accounts,
    buildings,
    channels,
    concentrators,
    entrances,
    flats,
    meters,
    radiators,
    radio_modules,
    risers,
    sensor_pairs,
    sites,
)

OWNER_MODULES: tuple[ModuleType, ...] = (
    world,
    ingest,
    allocation,
    balance,
    billing,
    api,
    mbus,
    notify,
)


def _owners() -> dict[str, str]:
    owners = {}
    for module in OWNER_MODULES:
        for value in vars(module).values():
            if isinstance(value, sa.Table):
                owners[value.name] = module.OWNER
    return owners


OWNERS: dict[str, str] = _owners()
"""table name -> the service that owns (alone writes) it."""

__all__ = [
    "LAYOUTS",
    "OWNERS",
    "OWNER_MODULES",
    "ROLES",
    "UTILITIES",
    "accounts",
    "alerts",
    "allocation_building_hours",
    "allocation_outbox",
    "allocation_sensor_estimates",
    "allocation_watermarks",
    "api_keys",
    "audit_log",
    "balance_group_members",
    "balance_groups",
    "balance_outbox",
    "billing_outbox",
    "billing_period_closures",
    "billing_suppliers",
    "buildings",
    "channels",
    "commands",
    "concentrators",
    "connected_loads",
    "entrances",
    "flats",
    "forecasts",
    "heat_allocation",
    "imbalance_series",
    "invoice_lines",
    "invoices",
    "mbus_formats",
    "mbus_meters",
    "mbus_temperature_samples",
    "metadata",
    "meter_consumption",
    "meters",
    "module_events",
    "module_status",
    "notify_emails",
    "outdoor_temperatures",
    "pulse_readings",
    "radiators",
    "radio_modules",
    "risers",
    "sensor_pairs",
    "sites",
    "tariffs",
    "temperature_readings",
    "users",
    "webhook_deliveries",
    "webhook_subscriptions",
]  # fmt: skip
