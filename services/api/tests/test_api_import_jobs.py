"""Import jobs kept in PostgreSQL: a job started through one api instance is answered by
another (each has its own memory and pool, as two workers or a restarted process do), the
new concentrators' keys come once across them, a job whose worker stopped beating is
answered as failed, interrupted, and old finished jobs are deleted as new ones start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from balans_api.app import create_app
from balans_api.import_job_rows import INTERRUPTED
from balans_api.import_jobs import KEEP_FINISHED
from balans_api.settings import ApiSettings
from balans_db.provisioning.importer import WORLD_LOCK
from balans_db.secrets import KeyVault
from balans_db.topology import SiteSpec, city_document, regular_building
from balans_devstack.eventually import eventually

from .conftest import PASSWORD, World

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _document(code: str, index: int) -> dict[str, Any]:
    """A world document of one small block of its own site."""
    spec = regular_building(
        code=code,
        name="Imported by a job",
        address="str. Joburilor 1",
        site=SiteSpec("jobs-site", "Jobs", "str. Joburilor 1", 47.02, 28.84),
        layout="1a",
        floors=2,
        flats_per_floor=(2,),
        risers_per_entrance=(2,),
        index=index,
    )
    return city_document([spec])


DOCUMENT = _document("jobs-1a", 97)
SERIAL = DOCUMENT["buildings"][0]["concentrators"][0]["serial"]


@asynccontextmanager
async def _instance(world: World, name: str) -> AsyncIterator[httpx.AsyncClient]:
    """An api instance of its own (its memory, its pool), signed in as the operator."""
    # interrupted after 30 s, not the default 60 s: the stale job below is 45 s old
    settings = ApiSettings(
        database_url=world.database_url, login_rate="1000/minute", import_interrupted_after_s=30
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=f"http://{name}"
        ) as http,
    ):
        token = await http.post(
            "/api/v1/auth/token", data={"username": "operator", "password": PASSWORD}
        )
        http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield http


@pytest.fixture(scope="module")
async def workers(world: World) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two api instances on the one database."""
    async with _instance(world, "a") as a, _instance(world, "b") as b:
        yield a, b


async def _status(world: World, job_id: str) -> str | None:
    conn = await asyncpg.connect(world.database_url)
    try:
        status: str | None = await conn.fetchval(
            "select status from import_jobs where id = $1", job_id
        )
        return status
    finally:
        await conn.close()


async def test_a_job_started_on_one_worker_is_answered_by_another_keys_once(
    workers: tuple[httpx.AsyncClient, httpx.AsyncClient], world: World
) -> None:
    a, b = workers
    started = await a.post("/api/v1/imports", json=DOCUMENT)
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    seen = await b.get(f"/api/v1/imports/{job_id}")
    assert seen.status_code == 200, seen.text
    assert seen.json()["buildings"] == 1

    async def finished() -> bool:
        return await _status(world, job_id) in ("succeeded", "failed")

    await eventually("the import finished", finished, timeout_s=60)
    # both workers asked at once: one answer carries the keys, the other none
    answers: list[dict[str, Any]] = [
        r.json()
        for r in await asyncio.gather(*(w.get(f"/api/v1/imports/{job_id}") for w in (a, b)))
    ]
    assert [x["status"] for x in answers] == ["succeeded", "succeeded"], answers
    assert answers[0]["result"]["changes"]["buildings"]["create"] == 1
    assert answers[0]["result"] == answers[1]["result"]
    handed = [x["concentrator_keys"] for x in answers if x["concentrator_keys"] is not None]
    assert len(handed) == 1, answers
    assert list(handed[0]) == [str(SERIAL)]
    for w in (a, b):
        assert (await w.get(f"/api/v1/imports/{job_id}")).json()["concentrator_keys"] is None

    conn = await asyncpg.connect(world.database_url)
    try:
        stored = await conn.fetchval(
            "select key_ciphertext from concentrators where serial = $1", SERIAL
        )
        row = await conn.fetchrow(
            "select started_by, sealed_keys from import_jobs where id = $1", job_id
        )
    finally:
        await conn.close()
    serial = str(SERIAL)
    key = KeyVault.from_hex(None).open(stored, context=serial.encode()).hex()
    assert handed[0][serial] == key  # the key the concentrator authenticates with
    assert row["started_by"] == "user:operator"
    assert row["sealed_keys"] is None  # erased by the answer that handed them out


async def test_a_job_whose_heartbeat_stopped_is_answered_as_interrupted(
    workers: tuple[httpx.AsyncClient, httpx.AsyncClient], world: World
) -> None:
    """A running job whose worker died (its heartbeat older than
    BALANS_IMPORT_INTERRUPTED_AFTER_S) is failed, on any worker; one that beats recently is
    still running."""
    a, b = workers
    conn = await asyncpg.connect(world.database_url)
    try:
        await conn.execute(
            """insert into import_jobs (id, started_by, dry_run, buildings, status, heartbeat_at)
               values ('dead', 'operator', false, 3, 'running', now() - interval '45 seconds'),
                      ('alive', 'operator', false, 3, 'running', now())"""
        )
        interrupted = REGISTRY.get_sample_value(
            "balans_api_imports_total", {"outcome": "interrupted"}
        )
        dead = (await b.get("/api/v1/imports/dead")).json()
        assert dead["status"] == "failed"
        assert dead["problems"] == [INTERRUPTED]
        assert dead["concentrator_keys"] is None
        assert (await a.get("/api/v1/imports/dead")).json() == dead
        assert await conn.fetchval("select status from import_jobs where id = 'dead'") == "failed"
        assert (
            REGISTRY.get_sample_value("balans_api_imports_total", {"outcome": "interrupted"})
            == (interrupted or 0) + 1
        )
        assert (await a.get("/api/v1/imports/alive")).json()["status"] == "running"
        assert (await a.get("/api/v1/imports/nothing-such")).status_code == 404
    finally:
        await conn.execute("delete from import_jobs where id in ('dead', 'alive')")
        await conn.close()


async def test_a_heartbeat_slower_than_the_interruption_is_refused() -> None:
    with pytest.raises(ValidationError, match="BALANS_IMPORT_INTERRUPTED_AFTER_S must exceed"):
        ApiSettings(import_heartbeat_s=5, import_interrupted_after_s=5)


async def test_old_finished_jobs_are_deleted_as_new_ones_start(
    workers: tuple[httpx.AsyncClient, httpx.AsyncClient], world: World
) -> None:
    a, _ = workers
    conn = await asyncpg.connect(world.database_url)
    try:
        await conn.execute(
            """insert into import_jobs (id, started_by, dry_run, buildings, status, created_at)
               select 'old-' || n, 'operator', true, 1, 'succeeded',
                      now() - interval '1 day' - n * interval '1 minute'
               from generate_series(1, $1) n""",
            KEEP_FINISHED + 2,
        )
        started = await a.post("/api/v1/imports?dry_run=true", json=DOCUMENT)
        assert started.status_code == 202, started.text
        finished = await conn.fetchval(
            """select count(*) from import_jobs
               where status in ('succeeded', 'failed') and id <> $1""",
            started.json()["id"],
        )
        assert finished == KEEP_FINISHED
        kept = {r["id"] for r in await conn.fetch("select id from import_jobs")}
        assert "old-1" in kept
        assert not {f"old-{KEEP_FINISHED + 1}", f"old-{KEEP_FINISHED + 2}"} & kept  # oldest

        async def dry_run_finished() -> bool:
            return await _status(world, started.json()["id"]) == "succeeded"

        await eventually("the dry run finished", dry_run_finished)
    finally:
        await conn.close()


async def test_a_job_cut_off_by_a_stopping_worker_wrote_nothing(
    workers: tuple[httpx.AsyncClient, httpx.AsyncClient], world: World
) -> None:
    """A worker stopping while its job runs rolls the import back: the job is answered as
    interrupted at once, by another worker, and the building was not written."""
    _, b = workers
    conn = await asyncpg.connect(world.database_url)
    try:
        await conn.execute("select pg_advisory_lock($1)", WORLD_LOCK)  # the import waits
        try:
            async with _instance(world, "c") as c:
                started = await c.post("/api/v1/imports", json=_document("jobs-2a", 98))
                assert started.status_code == 202, started.text
                job_id = started.json()["id"]

                async def running() -> bool:
                    return await _status(world, job_id) == "running"

                await eventually("the job runs", running)
        finally:
            await conn.execute("select pg_advisory_unlock($1)", WORLD_LOCK)
        job = (await b.get(f"/api/v1/imports/{job_id}")).json()
        assert job["status"] == "failed", job
        assert job["problems"] == [INTERRUPTED]
        assert await conn.fetchval("select count(*) from buildings where code = 'jobs-2a'") == 0
    finally:
        await conn.close()
