"""Balance groups follow provisioning: a flat (with its meters) added to a building and
announced as TopologyChanged on the EVENTS stream joins the building's and its entrance's
groups, through the same consumer the service runs; operator groups stay as they are."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from balans_balance.__main__ import topology_spec
from balans_balance.groups import generate_building_groups
from balans_balance.service import follow_topology_event
from balans_balance.settings import BalanceSettings
from balans_balance.windows import BuildingStates
from balans_core.consumer import JetStreamConsumer
from balans_core.nats import connect_nats
from balans_db.provisioning.export import export_document
from balans_db.provisioning.importer import import_document
from balans_db.provisioning.validation import parse_document
from balans_db.secrets import KeyVault
from balans_db.topology import SiteSpec, regular_building, write_building
from balans_protocol import subjects
from balans_protocol.messages import TopologyChanged
from balans_protocol.streams import ensure_streams

pytestmark = pytest.mark.asyncio(loop_scope="session")

SPEC = regular_building(
    code="follow-1c",
    name="Follow block",
    address="str. Grup 1",
    site=SiteSpec("follow-site", "Follow", "str. Grup 1", 47.0, 28.8),
    layout="1c",
    floors=2,
    flats_per_floor=(2, 2),
    risers_per_entrance=(2, 2),
    index=66,
)
SQL_GROUPS_OF = """select g.kind, g.name from balance_group_members m
                   join balance_groups g on g.id = m.group_id
                   join meters t on t.id = m.meter_id where t.serial = $1 order by g.kind"""


async def test_a_new_flat_meter_joins_its_groups(database_url: str, nats_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        building_id = await write_building(conn, SPEC, KeyVault())
        assert building_id is not None
        await generate_building_groups(conn, building_id)
        groups_before = await conn.fetchval("select count(*) from balance_groups")
        doc = json.loads((await export_document(conn, [SPEC.code])).model_dump_json())
        b = doc["buildings"][0]
        b["flats"].append({"number": "9", "entrance": 2, "floor": 2, "rooms": 1, "area_m2": "30"})
        b["modules"].append(
            {"serial": 6_699_999, "concentrator": SPEC.concentrator_serial, "floor": 2}
        )
        b["meters"].append(
            {
                "serial": "flow-9",
                "utility": "heat",
                "kind": "flow_meter",
                "role": "flat",
                "flat": "9",
                "pulse_weight": "0.001",
                "unit": "m3",
                "pipe": "return",
                "channel": {"module": 6_699_999, "input": 0},
            }
        )
        report = await import_document(conn, parse_document(doc), KeyVault())
        assert report.changes.counts()["meters"]["create"] == 1
        assert await conn.fetch(SQL_GROUPS_OF, "flow-9") == []

        settings = BalanceSettings(balance_topology_consumer="balance-topology-test")
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        nc = await connect_nats(nats_url, "balance-test")
        js = nc.jetstream()
        await ensure_streams(js)
        event = TopologyChanged(
            building_id=building_id, building_code=SPEC.code, changes=report.changes.counts()
        )
        await js.publish(subjects.topology_changed(building_id), event.model_dump_json().encode())

        async def on_topology(e: TopologyChanged) -> None:
            await follow_topology_event(e, pool, BuildingStates(10))

        stopping = asyncio.Event()
        consumer = JetStreamConsumer.each(js, topology_spec(settings), TopologyChanged, on_topology)
        task = asyncio.create_task(consumer.run(stopping))
        try:
            async with asyncio.timeout(20):
                while not (rows := await conn.fetch(SQL_GROUPS_OF, "flow-9")):  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
        finally:
            stopping.set()
            await task
            await nc.close()
            await pool.close()
        assert [(r["kind"], r["name"]) for r in rows] == [
            ("building", "follow-1c heat"),
            ("entrance", "follow-1c heat entrance 2"),
        ]
        assert await conn.fetchval("select count(*) from balance_groups") == groups_before
    finally:
        await conn.close()
