"""The three-node NATS cluster of ``balans run --cluster``: streams get three replicas, and
a node killed in the middle of a stream of publishes loses and doubles nothing (publishes
are retried with their message id, as ingest's concentrators resend); the node comes back
on its own store and catches up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from nats.errors import Error as NatsError

from balans_core.nats import connect_nats
from balans_devstack.eventually import eventually
from balans_devstack.nats_server import NatsCluster
from balans_protocol import subjects
from balans_protocol.streams import ensure_streams

MESSAGES = 200

T = TypeVar("T")


async def retried(call: Callable[[], Awaitable[T]], attempts: int = 10) -> T:
    """What every balans service's loops do with a NATS request that got no answer."""
    for _ in range(attempts - 1):
        try:
            return await call()
        except (NatsError, TimeoutError):
            continue
    return await call()


async def test_cluster_survives_a_node(server_tmp_path: Path) -> None:
    cluster = NatsCluster(server_tmp_path, durable=False)
    cluster.start()
    try:
        assert len(cluster.url.split(",")) == 3
        nc = await connect_nats(cluster.url, "test-cluster")
        js = nc.jetstream(timeout=3)
        await ensure_streams(js, replicas=3)
        info = await js.stream_info(subjects.UPLOADS_STREAM)
        assert info.config.num_replicas == 3
        assert info.cluster is not None
        assert len(info.cluster.replicas or []) == 2

        for n in range(MESSAGES):
            if n == MESSAGES // 3:
                cluster.kill(0)  # the node the client is most likely connected to
            while True:  # what a concentrator does: resend until ACKed, same message id
                try:
                    await js.publish(
                        subjects.upload(n % 7),
                        str(n).encode(),
                        timeout=2,
                        headers={"Nats-Msg-Id": f"m{n}"},
                    )
                    break
                except (NatsError, TimeoutError):
                    continue

        async def stored() -> bool:
            return (
                await retried(lambda: js.stream_info(subjects.UPLOADS_STREAM))
            ).state.messages == MESSAGES

        await eventually("every message stored once", stored, timeout_s=30)
        # a request lost with the node (or to a leader being re-elected) is asked again
        sub = await retried(lambda: js.pull_subscribe(subjects.UPLOADS_ALL, "cluster-test"))
        seen: list[int] = []
        while len(seen) < MESSAGES:
            for msg in await sub.fetch(MESSAGES - len(seen), timeout=5):
                seen.append(int(msg.data))
                await msg.ack()
        assert sorted(seen) == list(range(MESSAGES))

        cluster.revive(0)

        async def caught_up() -> bool:
            info = await retried(lambda: js.stream_info(subjects.UPLOADS_STREAM))
            return (
                info.cluster is not None
                and all(peer.current and not peer.offline for peer in info.cluster.replicas or [])
                and len(info.cluster.replicas or []) == 2
            )

        await eventually("the revived node is a current replica again", caught_up, timeout_s=30)
        await nc.close()
    finally:
        cluster.stop()
