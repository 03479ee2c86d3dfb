"""Every NATS subject and JetStream stream balans uses, in one place.

Subjects are partitioned by building (or concentrator) so consumers can scale out as
queue groups. Helper functions build concrete subjects; ``*_ALL`` are wildcards.
"""

from __future__ import annotations

# --- JetStream stream of raw uploads from concentrators (ingest -> persister) ---
UPLOADS_STREAM = "UPLOADS"
UPLOADS_ALL = "balans.upload.>"


def upload(concentrator_serial: int) -> str:
    """Where ingest publishes one verified UPLOAD batch of a concentrator."""
    return f"balans.upload.{concentrator_serial}"


# --- JetStream stream of pipeline events (stored readings, allocations, alerts...) ---
EVENTS_STREAM = "EVENTS"
EVENTS_ALL = "balans.events.>"
READINGS_STORED_ALL = "balans.events.readings.>"
ALLOCATION_ALL = "balans.events.allocation.>"
PERIOD_CLOSED_ALL = "balans.events.period.>"
TOPOLOGY_CHANGED_ALL = "balans.events.topology.>"
COMMAND_FINISHED_ALL = "balans.events.command.>"

# The EVENTS stream stores ``balans.events.<kind>.<id>`` as ``balans.events.<kind>.<P>.<id>``,
# P = the server's ``partition(EVENT_PARTITIONS, id)`` (a NATS subject transform; see
# streams.py): a stage's processes split the partitions between them (balans_core.partitions).
# Changing the count moves buildings between partitions: drain the stages first.
EVENT_PARTITIONS = 16
EVENTS_PARTITIONED_SOURCE = "balans.events.*.*"
EVENTS_PARTITIONED_DEST = (
    f"balans.events.{{{{wildcard(1)}}}}.{{{{partition({EVENT_PARTITIONS},2)}}}}.{{{{wildcard(2)}}}}"
)


def partition_of(building_id: int, partitions: int = EVENT_PARTITIONS) -> int:
    """The partition the server's subject transform gives an id: FNV-1a (32 bit) of its
    decimal token, modulo the partition count (what ``{{partition(n,k)}}`` computes)."""
    h = 0x811C9DC5
    for byte in str(building_id).encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h % partitions


def in_partition(all_subject: str, partition: int) -> str:
    """The stored subjects of one partition of an ``*_ALL`` events wildcard:
    ``balans.events.readings.>`` -> ``balans.events.readings.3.*``."""
    if not all_subject.startswith("balans.events.") or not all_subject.endswith(".>"):
        raise ValueError(f"{all_subject!r} is not a partitioned events wildcard")
    return f"{all_subject[:-1]}{partition}.*"


def readings_stored(building_id: int) -> str:
    """The persister announces the hours it stored for a building."""
    return f"balans.events.readings.{building_id}"


def allocation_computed(building_id: int) -> str:
    """allocation announces computed (or recomputed) building-hours."""
    return f"balans.events.allocation.{building_id}"


def topology_changed(building_id: int) -> str:
    """The api's provisioning changed a building's topology (flats, meters, channels...)."""
    return f"balans.events.topology.{building_id}"


def period_closed(building_id: int) -> str:
    """A billing period closed for a building (billing computes invoices)."""
    return f"balans.events.period.{building_id}"


def command_finished(meter_id: int) -> str:
    """The api announces how a command to a meter's module (a valve, a relay) ended."""
    return f"balans.events.command.{meter_id}"


# --- alerts and invoices (also JetStream-captured) ---
ALERTS_STREAM = "ALERTS"
ALERTS_ALL = "balans.alerts.>"


def alert(kind: str) -> str:
    """Where balance publishes an alert of one kind (leak, stuck_meter, magnet...)."""
    return f"balans.alerts.{kind}"


INVOICES_STREAM = "INVOICES"
INVOICES_ALL = "balans.billing.invoice.>"


def invoice(account_id: int) -> str:
    return f"balans.billing.invoice.{account_id}"


# --- dead letters: messages a consumer gave up on (any stream, any service) ---
DEADLETTER_STREAM = "DEADLETTER"
DEADLETTER_ALL = "balans.deadletter.>"


def deadletter(service: str) -> str:
    """Where a service's consumers put a message that failed too often or can never succeed."""
    return f"balans.deadletter.{service}"


# --- request/reply (core NATS) ---
def command(concentrator_serial: int) -> str:
    """Downlink: a request here reaches the concentrator's live connection."""
    return f"balans.cmd.{concentrator_serial}"


BALANCE_GROUPS_API = "balans.balance.groups"  # request/reply service API for group editing
# request/reply: an operator acknowledges or resolves an alert (balance alone writes alerts)
BALANCE_ALERTS_API = "balans.balance.alerts"
BILLING_API = "balans.billing.api"  # request/reply: compute invoices on demand
# request/reply: an invoice document (HTML or PDF) in a language, rendered by billing
BILLING_DOCUMENT = "balans.billing.document"
# request/reply: an admin's new tariff version, validated and stored by billing
BILLING_TARIFF = "balans.billing.tariff"
