"""The three-node NATS cluster of ``balans run --cluster``: streams and partition lease
buckets get three replicas (a bucket made with one is raised), and a node killed in the
middle of a stream of publishes loses and doubles nothing (publishes are retried with their
message id, as ingest's concentrators resend) nor stalls a lease; the node comes back on
its own store and catches up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from nats.errors import Error as NatsError
from nats.js.api import KeyValueConfig
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

from balans_core.nats import connect_nats
from balans_core.partitions import bucket_name, lease_bucket
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


async def replicated(js: JetStreamContext, stream: str) -> bool:
    """``stream`` has a leader and two current replicas."""
    info = await retried(lambda: js.stream_info(stream))
    return (
        info.cluster is not None
        and all(peer.current and not peer.offline for peer in info.cluster.replicas or [])
        and len(info.cluster.replicas or []) == 2
    )


async def written(kv: KeyValue) -> bool:
    try:
        await kv.put("lease.0", b"survivor")
    except (NatsError, TimeoutError):
        return False
    return True


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
        # a lease bucket made before the cluster grew: unset replicas keep it, 3 raise it
        bucket = bucket_name("cluster-test")
        await js.create_key_value(KeyValueConfig(bucket=bucket, ttl=60, replicas=1))
        await lease_bucket(js, "cluster-test", "test", 60, None)
        assert (await js.stream_info(f"KV_{bucket}")).config.num_replicas == 1
        kv = await lease_bucket(js, "cluster-test", "test", 60, 3)
        assert (await js.stream_info(f"KV_{bucket}")).config.num_replicas == 3
        await eventually("the lease bucket on three nodes", lambda: replicated(js, f"KV_{bucket}"))

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
        # a lease is still written and read with one node down (once a leader is elected)
        await eventually("a lease written with a node down", lambda: written(kv), timeout_s=30)
        assert (await retried(lambda: kv.get("lease.0"))).value == b"survivor"

        cluster.revive(0)

        await eventually(
            "the revived node is a current replica again",
            lambda: replicated(js, subjects.UPLOADS_STREAM),
            timeout_s=30,
        )
        await nc.close()
    finally:
        cluster.stop()
