"""The JetStream consumer helper over a real NATS server: invalid messages are termed and
counted, a message that keeps failing ends in the dead-letter stream after N deliveries and
replays to its consumer alone, an outage is retried without dead-lettering, a push
consumer of the same name is taken over where it stopped, creating a consumer outlasts a
NATS server that does not answer, and an operator lists, shows and replays dead letters with
``balans deadletter``."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.js.api import StreamConfig
from nats.js.client import JetStreamContext
from prometheus_client import REGISTRY
from pydantic import BaseModel

from balans_core import deadletter
from balans_core.consumer import ConsumerSpec, JetStreamConsumer, ensure_consumer, fetch_waiting
from balans_core.nats import connect_nats
from balans_devstack.eventually import eventually
from balans_devstack.nats_server import EmbeddedNats
from balans_protocol.streams import ensure_streams

SERVICE = "consumertest"
STREAM = "T_CONSUMER"
_names = itertools.count(1)


class Reading(BaseModel):
    n: int


@pytest.fixture(scope="module")
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await connect_nats(nats_url, "test-consumer")
    js = client.jetstream()
    await ensure_streams(js)
    await js.add_stream(StreamConfig(name=STREAM, subjects=["t.consumer.>"]))
    try:
        yield client
    finally:
        await client.drain()


def spec(subject: str, durable: str) -> ConsumerSpec:
    """Fast retries: three deliveries within a second."""
    return ConsumerSpec(
        service=SERVICE,
        stream=STREAM,
        subject=subject,
        durable=durable,
        max_deliveries=3,
        nak_delay_s=0.05,
        nak_max_delay_s=0.2,
        fetch_timeout_s=0.2,
    )


def counted(durable: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        f"balans_{SERVICE}_messages_total", {"consumer": durable, "outcome": outcome}
    )
    return value or 0.0


@contextlib.asynccontextmanager
async def running(consumer: JetStreamConsumer[Reading]) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    task = asyncio.create_task(consumer.run(stopping))
    try:
        yield
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)


def fresh() -> tuple[str, str]:
    n = next(_names)
    return f"t.consumer.case{n}", f"case{n}"


async def test_invalid_message_is_termed_and_counted(nc: Client) -> None:
    """A body that is not a Reading is counted invalid, never handled, never redelivered;
    the good one next to it is handled and acked."""
    js = nc.jetstream()
    subject, durable = fresh()
    handled: list[Reading] = []

    async def handle(reading: Reading) -> None:
        handled.append(reading)

    await js.publish(subject, b'{"n": "not a number"}')
    await js.publish(subject, b'{"n": 7}')
    consumer = JetStreamConsumer.each(js, spec(subject, durable), Reading, handle)
    async with running(consumer):
        await eventually("both messages settled", lambda: counted(durable, "ok") == 1)
        await eventually("invalid counted", lambda: counted(durable, "invalid") == 1)
        info = await js.consumer_info(STREAM, durable)
        await asyncio.sleep(0.5)  # a nak'ed message would be back by now
    assert handled == [Reading(n=7)]
    assert info.num_ack_pending == 0
    assert info.num_redelivered == 0
    assert counted(durable, "failed") == 0


async def test_poison_message_is_dead_lettered_after_n_deliveries_and_replays(
    nc: Client,
) -> None:
    """A handler that always fails sees the message 3 times; then it is in DEADLETTER with
    its error, origin and headers, and not delivered again. Replay re-publishes it for this
    consumer only: another consumer of the subject acks it unseen."""
    js = nc.jetstream()
    subject, durable = fresh()
    other = f"{durable}-other"
    attempts: list[int] = []
    fixed = asyncio.Event()

    async def handle(reading: Reading) -> None:
        attempts.append(reading.n)
        if not fixed.is_set():
            raise RuntimeError(f"cannot handle reading {reading.n}")

    seen_by_other: list[Reading] = []

    async def other_handle(reading: Reading) -> None:
        seen_by_other.append(reading)

    await js.publish(subject, b'{"n": 42}', headers={"Trace-Id": "abc"})
    consumer = JetStreamConsumer.each(js, spec(subject, durable), Reading, handle)
    bystander = JetStreamConsumer.each(js, spec(subject, other), Reading, other_handle)
    async with running(consumer), running(bystander):
        await eventually("dead-lettered", lambda: counted(durable, "dead_letter") == 1)
        await asyncio.sleep(0.5)  # no further delivery
        assert attempts == [42, 42, 42]
        assert counted(durable, "failed") == 2
        letters = [dl for dl in await deadletter.list_all(js, SERVICE) if dl.consumer == durable]
        assert len(letters) == 1
        letter = letters[0]
        assert letter.subject == subject
        assert letter.stream == STREAM
        assert letter.deliveries == 3
        assert letter.error == "RuntimeError: cannot handle reading 42"
        assert letter.headers == {"Trace-Id": "abc"}
        assert letter.data == b'{"n": 42}'
        shown = await deadletter.get(js, letter.id)
        assert shown == letter

        fixed.set()
        await deadletter.replay(js, letter.id)
        await eventually("replayed message handled", lambda: counted(durable, "ok") == 1)
        await eventually("bystander skipped it", lambda: counted(other, "skipped") == 1)
        assert attempts == [42, 42, 42, 42]
        assert seen_by_other == [Reading(n=42)]  # the original, once
        with pytest.raises(LookupError):
            await deadletter.get(js, letter.id)


async def test_outage_is_retried_without_dead_lettering(nc: Client) -> None:
    """Connection errors (the database down) are redelivered past max_deliveries."""
    js = nc.jetstream()
    subject, durable = fresh()
    failures_left = [5]

    async def handle(reading: Reading) -> None:
        if failures_left[0]:
            failures_left[0] -= 1
            raise ConnectionRefusedError("database unreachable")

    await js.publish(subject, b'{"n": 1}')
    consumer = JetStreamConsumer.each(js, spec(subject, durable), Reading, handle)
    async with running(consumer):
        await eventually("handled after the outage", lambda: counted(durable, "ok") == 1)
    assert counted(durable, "failed") == 5
    assert counted(durable, "dead_letter") == 0


async def test_push_consumer_is_taken_over_where_it_stopped(nc: Client) -> None:
    """A durable push consumer (how services subscribed before) becomes a pull consumer
    that starts after what the push consumer acknowledged."""
    js: JetStreamContext = nc.jetstream()
    subject, durable = fresh()
    for n in range(3):
        await js.publish(subject, Reading(n=n).model_dump_json().encode())
    acked: list[int] = []

    async def on_push(msg: object) -> None:
        reading = Reading.model_validate_json(msg.data)  # type: ignore[attr-defined]
        if reading.n < 2:
            await msg.ack()  # type: ignore[attr-defined]
            acked.append(reading.n)

    push = await js.subscribe(subject, durable=durable, cb=on_push, manual_ack=True)
    await eventually("two acked", lambda: acked == [0, 1])
    await push.unsubscribe()
    await eventually(
        "push acks recorded",
        lambda: _ack_floor(js, durable, 2),
    )
    handled: list[int] = []

    async def handle(reading: Reading) -> None:
        handled.append(reading.n)

    consumer = JetStreamConsumer.each(js, spec(subject, durable), Reading, handle)
    async with running(consumer):
        await eventually("the third handled", lambda: handled == [2])
        await asyncio.sleep(0.3)
    assert handled == [2]
    info = await js.consumer_info(STREAM, durable)
    assert info.config.deliver_subject is None


async def _ack_floor(js: JetStreamContext, durable: str, seq: int) -> bool:
    info = await js.consumer_info(STREAM, durable)
    return info.ack_floor is not None and info.ack_floor.stream_seq >= seq


async def _balans(nats_url: str, *args: str) -> tuple[int, str]:
    """Run the ``balans`` command of this environment; exit code and stdout."""
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("balans")),
        *args,
        env={**os.environ, "BALANS_NATS_URL": nats_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_operator_lists_shows_and_replays_a_dead_letter(nc: Client, nats_url: str) -> None:
    """``balans deadletter list / show ID / replay ID`` on a real dead letter."""
    js = nc.jetstream()
    subject, durable = fresh()
    cli_service = "clitest"

    async def handle(reading: Reading) -> None:
        raise ValueError("tariff missing")

    await js.publish(subject, b'{"n": 5}')
    consumer = JetStreamConsumer.each(
        js, replace(spec(subject, durable), service=cli_service, max_deliveries=1), Reading, handle
    )
    async with running(consumer):
        await eventually(
            "dead-lettered",
            lambda: (
                REGISTRY.get_sample_value(
                    f"balans_{cli_service}_messages_total",
                    {"consumer": durable, "outcome": "dead_letter"},
                )
                == 1
            ),
        )
    code, listed = await _balans(nats_url, "deadletter", "list", "--service", cli_service)
    assert code == 0
    (line,) = [ln for ln in listed.splitlines() if f"\t{durable}\t" in ln]
    dead_letter_id = line.split("\t")[0]
    assert f"\t{subject}\t" in line
    assert "ValueError: tariff missing" in line

    code, shown = await _balans(nats_url, "deadletter", "show", dead_letter_id)
    assert code == 0
    assert f"subject:     {subject}" in shown
    assert '"n": 5' in shown

    before = (await js.stream_info(STREAM)).state.last_seq
    code, replayed = await _balans(nats_url, "deadletter", "replay", dead_letter_id)
    assert code == 0, replayed
    again = await js.get_msg(STREAM, before + 1)
    assert again.subject == subject
    assert again.data == b'{"n": 5}'
    assert (again.headers or {})[deadletter.REPLAY_FOR] == durable
    code, _ = await _balans(nats_url, "deadletter", "show", dead_letter_id)
    assert code == 1  # replayed: removed


async def test_a_fetch_takes_what_waits_behind_the_first_message(nc: Client) -> None:
    """A waiting pull request ends with the first message that arrives; the messages
    published right behind it join the same batch instead of waiting for a batch of their
    own (each batch costs a handler its fixed round trips)."""
    subject, durable = fresh()
    js = nc.jetstream()
    await js.add_consumer(STREAM, spec(subject, durable).consumer_config())
    sub = await js.pull_subscribe_bind(durable, stream=STREAM)
    fetching = asyncio.create_task(fetch_waiting(sub, 16, 5.0))
    await asyncio.sleep(0.2)  # the pull request waits on the server
    acks = [
        await js.publish_async(subject, Reading(n=n).model_dump_json().encode()) for n in range(5)
    ]
    await asyncio.gather(*acks)
    msgs = await fetching
    assert [Reading.model_validate_json(m.data).n for m in msgs] == list(range(5))
    for msg in msgs:
        await msg.ack()
    with pytest.raises(TimeoutError):  # nothing left: no empty batch is handed over
        await fetch_waiting(sub, 16, 0.1)
    await sub.unsubscribe()


async def test_consumer_creation_outlasts_a_server_that_does_not_answer(tmp_path: Path) -> None:
    """A consumer asked for while its NATS server is away (a restart, an overloaded node)
    is created once the server is back, its JetStream timeouts counted, not raised."""
    server = EmbeddedNats(tmp_path)
    server.start()
    try:
        client = await connect_nats(server.url, "test-consumer-setup")
        js = client.jetstream(timeout=0.5)
        await js.add_stream(StreamConfig(name=STREAM, subjects=["t.consumer.>"]))
        subject, durable = fresh()
        server.stop()
        created = asyncio.create_task(ensure_consumer(js, spec(subject, durable)))

        def retried() -> float:
            value = REGISTRY.get_sample_value(
                f"balans_{SERVICE}_consumer_setup_retries_total", {"consumer": durable}
            )
            return value or 0.0

        await eventually("creation asked again", lambda: retried() >= 2)
        server.start(port=server.port, monitor_port=server.monitor_port)
        await asyncio.wait_for(created, 60)
        info = await js.consumer_info(STREAM, durable)
        assert info.config.filter_subject == subject
        await client.drain()
    finally:
        server.stop()
