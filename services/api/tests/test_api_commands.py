"""Commands travel over real NATS: the api requests on ``balans.cmd.<concentrator>`` and
records the reply (here a stand-in for ingest answers)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import nats
import pytest
from nats.aio.client import Client

from balans_api.app import create_app
from balans_api.settings import ApiSettings
from balans_devstack.eventually import eventually
from balans_protocol import subjects
from balans_protocol.messages import CommandFinished, CommandReply, CommandRequest

from .conftest import PASSWORD, World, auth

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
async def nats_client(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.drain()


async def _status(http: httpx.AsyncClient, h: dict[str, str], command_id: str) -> dict:
    body: dict = {}

    async def settled() -> bool:
        body.update((await http.get(f"/api/v1/commands/{command_id}", headers=h)).json())
        return body["status"] != "pending"

    await eventually(f"command {command_id} no longer pending", settled)
    return body


async def _command(
    world: World,
    nats_client: Client,
    action: str,
    then: Callable[[dict], Awaitable[None]] | None = None,
) -> dict:
    """An operator sends ``action`` to the valve meter through the app (with its NATS
    connection); the command as it ends (``then`` awaited with it while the app runs)."""
    app = create_app(ApiSettings(database_url=world.database_url), nats=nats_client)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            token = await http.post(
                "/api/v1/auth/token", data={"username": "operator", "password": PASSWORD}
            )
            h = {"Authorization": f"Bearer {token.json()['access_token']}"}
            sent = await http.post(
                f"/api/v1/meters/{world.valve_meter_id}/commands",
                json={"action": action},
                headers=h,
            )
            final = await _status(http, h, sent.json()["id"])
            if then is not None:
                await then(final)
            return final


async def test_valve_command_round_trip(world: World, nats_client: Client) -> None:
    """A responder on the concentrator's subject sees the module and action, and its
    'done' reply becomes the command's status."""
    seen: list[CommandRequest] = []

    async def ingest(msg: nats.aio.msg.Msg) -> None:
        request = CommandRequest.model_validate_json(msg.data)
        seen.append(request)
        reply = CommandReply(command_id=request.command_id, status="done", detail="valve closed")
        await msg.respond(reply.model_dump_json().encode())

    announced: list[CommandFinished] = []

    async def finished(msg: nats.aio.msg.Msg) -> None:
        announced.append(CommandFinished.model_validate_json(msg.data))

    # every concentrator of the test city; the outcome's announcement (api's outbox)
    sub = await nats_client.subscribe("balans.cmd.*", cb=ingest)
    events = await nats_client.subscribe(subjects.COMMAND_FINISHED_ALL, cb=finished)
    try:

        async def announced_too(command: dict) -> None:
            await eventually(
                "CommandFinished announced",
                lambda: any(a.command_id == command["id"] for a in announced),
            )

        final = await _command(world, nats_client, "valve_close", announced_too)
    finally:
        await sub.unsubscribe()
        await events.unsubscribe()
    [outcome] = [a for a in announced if a.command_id == final["id"]]
    assert (outcome.meter_id, outcome.action, outcome.status) == (
        world.valve_meter_id,
        "valve_close",
        "done",
    )
    assert final["status"] == "done"
    assert final["detail"] == "valve closed"
    assert seen[0].module_serial == final["module_serial"]
    assert seen[0].action == "valve_close"


async def test_command_without_ingest_is_offline(world: World, nats_client: Client) -> None:
    """With nobody listening on the subject, the command ends 'offline' at once, in the
    protocol's words (the api sends through ``balans_protocol.commands.request_command``)."""
    final = await _command(world, nats_client, "valve_open")
    assert final["status"] == "offline"
    assert final["detail"] == f"concentrator {final['concentrator_serial']} is not connected"


async def test_malformed_reply_fails_the_command(world: World, nats_client: Client) -> None:
    """A reply that is not a CommandReply ends the command as failed, not pending forever."""

    async def broken_ingest(msg: nats.aio.msg.Msg) -> None:
        await msg.respond(b"not a reply")

    sub = await nats_client.subscribe("balans.cmd.*", cb=broken_ingest)
    try:
        final = await _command(world, nats_client, "ping")
    finally:
        await sub.unsubscribe()
    assert final["status"] == "failed"
    assert final["detail"] == "malformed reply"


async def test_valve_command_on_meter_without_valve(
    client: httpx.AsyncClient, world: World
) -> None:
    """Closing a valve a meter does not have is a 409 and sends nothing."""
    response = await client.post(
        f"/api/v1/meters/{world.meter_id}/commands",
        json={"action": "relay_off"},
        headers=auth(world, "operator"),
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
