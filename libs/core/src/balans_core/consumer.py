"""One way to consume a JetStream subject: decode, hand over, settle, count.

Every service consumes through :class:`JetStreamConsumer` (a durable pull consumer that
several processes share). For each message it:

- decodes the body into the service's message type; a message that does not decode is
  ``term()``-ed at once (redelivering it cannot help), logged and counted ``invalid``;
- hands the decoded messages to the handler, a batch at a time;
- ``ack()``s what the handler finished; ``nak()``s what failed with a growing delay;
- sends a message to the dead-letter stream (:mod:`balans_core.deadletter`) and ``term()``s
  it once it has been delivered ``max_deliveries`` times and failed again, or at once when
  the handler raises :class:`PermanentError` (it can never succeed as it is: an operator
  fixes the cause and replays it with ``balans deadletter replay``).

A failure of the infrastructure rather than of the message (:data:`TRANSIENT_ERRORS`: the
database or NATS unreachable) is redelivered without limit and never dead-letters: an
outage must not empty the streams into the dead-letter stream. For the same reason the
consumer has no server-side ``max_deliver`` (JetStream would silently stop delivering a
message held back by a long outage); the delivery count JetStream keeps in each message's
metadata decides.

Outcomes are counted in ``balans_<service>_messages_total{consumer, outcome}``.

The shape follows FastStream's subscribers (subject, typed message, durable, batch size,
acknowledgement in the framework). FastStream itself is not used: every service already
has its own lifecycle (:mod:`balans_core.service`: readiness, health, metrics, SIGTERM)
that FastStream's application would duplicate, and what this module does beyond nats-py
(per-message outcomes of a batch, the dead-letter path, the transient/permanent split, the
metrics) would have to be written on top of FastStream just the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import asyncpg
import structlog
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, ServiceUnavailableError
from prometheus_client import Counter
from pydantic import BaseModel
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from balans_core import deadletter

M = TypeVar("M")
ModelT = TypeVar("ModelT", bound=BaseModel)

log = structlog.get_logger("consumer")

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes ConnectionError and asyncio's TimeoutError
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    NatsError,
)
"""Failures of the infrastructure, not of the message: retried, never dead-lettered."""


TOP_UP_S = 0.005
"""How long a fetch that tops up a batch waits for more (see :func:`fetch_waiting`)."""


async def fetch_waiting(
    sub: JetStreamContext.PullSubscription, batch: int, wait_s: float
) -> list[Msg]:
    """Up to ``batch`` messages: wait up to ``wait_s`` for the first, then take what else is
    waiting at once. A waiting pull request ends with the first message that arrives, and a
    fetch whose deadline passed returns only what it has read so far (after a pause of the
    process, say), so one fetch can return one message of many waiting; each one the batch
    misses would cost a batch of its own. (The count of pending messages each message
    carries does not tell: it is the count when that message was delivered, and a waiting
    request gets a message the moment it is stored, before the ones published after it.)
    Raises ``TimeoutError`` when none came."""
    msgs = await sub.fetch(batch, timeout=wait_s)
    while msgs and len(msgs) < batch:
        try:
            more = await sub.fetch(batch - len(msgs), timeout=TOP_UP_S)
        except TimeoutError:  # nothing more waiting
            break
        if not more:
            break
        msgs += more
    if not msgs:
        raise TimeoutError("nothing fetched")
    return msgs


class PermanentError(Exception):
    """Raised by a handler for a message that can never be handled as it is (a refused
    tariff, an implausible upload): the message is dead-lettered at once."""


Failures = Mapping[int, BaseException]
"""What a batch handler returns: the position of every message that failed, with why."""

BatchHandler = Callable[[Sequence[M]], Awaitable[Failures | None]]
Handler = Callable[[M], Awaitable[None]]


@dataclass(frozen=True)
class ConsumerSpec:
    """Where and how a service consumes; the names come from the service's settings."""

    service: str  # metric prefix and dead-letter subject: balans_<service>_...
    stream: str
    subject: str
    durable: str
    batch: int = 1
    max_ack_pending: int = 64
    ack_wait_s: float = 60.0
    max_deliveries: int = 5
    workers: int = 1
    fetch_timeout_s: float = 1.0
    # partitioned consumers: how long a handler waits for other partitions' batches to join
    # the first one (0: hands over what is waiting at once), and how long a silence after
    # the last one ends that wait (the partitions' fetches answer within milliseconds of
    # each other, so a longer silence means the rest have nothing)
    batch_linger_s: float = 0.0
    batch_quiet_s: float = 0.01
    nak_delay_s: float = 1.0  # after the first failure; doubles with each delivery
    nak_max_delay_s: float = 60.0
    # more subjects the same consumer takes (NATS's filter_subjects): one consumer, one
    # order across all of them (balans_core.partitions: a partition's kinds share one)
    more_subjects: tuple[str, ...] = ()

    def consumer_config(self) -> ConsumerConfig:
        several = bool(self.more_subjects)
        return ConsumerConfig(
            durable_name=self.durable,
            name=self.durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            max_ack_pending=self.max_ack_pending,
            filter_subject=None if several else self.subject,
            filter_subjects=[self.subject, *self.more_subjects] if several else None,
        )

    def nak_delay(self, deliveries: int) -> float:
        return min(self.nak_delay_s * 2 ** max(deliveries - 1, 0), self.nak_max_delay_s)


_COUNTERS: dict[str, Counter] = {}


def messages_counter(service: str) -> Counter:
    """``balans_<service>_messages_total{consumer, outcome}``, one per process and service."""
    name = f"balans_{service}_messages_total"
    if name not in _COUNTERS:
        _COUNTERS[name] = Counter(
            name,
            "JetStream messages consumed, by consumer and outcome "
            "(ok, invalid, failed, dead_letter, skipped).",
            ["consumer", "outcome"],
        )
    return _COUNTERS[name]


def model_decoder(model: type[ModelT]) -> Callable[[Msg], ModelT]:
    """Decode a JSON body into ``model`` (``pydantic.ValidationError`` when it does not fit)."""

    def decode(msg: Msg) -> ModelT:
        return model.model_validate_json(msg.data)

    return decode


def one_by_one(handler: Handler[M]) -> BatchHandler[M]:
    """A batch handler that handles each message alone; one failure fails only that one."""

    async def handle(items: Sequence[M]) -> Failures:
        failures: dict[int, BaseException] = {}
        for i, item in enumerate(items):
            try:
                await handler(item)
            except Exception as exc:
                failures[i] = exc
        return failures

    return handle


NATS_BUSY: tuple[type[BaseException], ...] = (
    NatsTimeoutError,
    NoRespondersError,
    ServiceUnavailableError,
)
"""What a JetStream API request meets while the cluster is loaded, electing a leader or
restarting: worth asking again rather than giving up the process."""

SETUP_RETRY_S = 120.0
"""How long :func:`ensure_consumer` keeps asking before the error reaches the service."""


def setup_retries_counter(service: str) -> Counter:
    """``balans_<service>_consumer_setup_retries_total{consumer}``."""
    name = f"balans_{service}_consumer_setup_retries_total"
    if name not in _COUNTERS:
        _COUNTERS[name] = Counter(
            name,
            "JetStream consumer creations asked again after NATS timed out or was unavailable.",
            ["consumer"],
        )
    return _COUNTERS[name]


async def ensure_consumer(js: JetStreamContext, spec: ConsumerSpec) -> None:
    """Create the durable pull consumer of ``spec``, or bring an existing one to it.

    A push consumer of the same name (how balans subscribed before) is replaced by a pull
    consumer that starts after its acknowledged floor, so nothing is skipped or replayed
    from the start. Where an existing consumer cannot take a field (its start position),
    it keeps its own.

    A request that times out or finds JetStream unavailable (:data:`NATS_BUSY`) is asked
    again with a growing pause for up to :data:`SETUP_RETRY_S`: under load, or while the
    cluster elects a leader, a partitioned service creates dozens of consumers at its
    start, and one slow answer must not end the process.
    """
    retries = setup_retries_counter(spec.service).labels(spec.durable)

    def note_retry(state: RetryCallState) -> None:
        retries.inc()
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "consumer creation asked again",
            consumer=spec.durable,
            attempt=state.attempt_number,
            error=repr(error),
        )

    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(NATS_BUSY),
        wait=wait_exponential(multiplier=0.5, max=10),
        stop=stop_after_delay(SETUP_RETRY_S),
        before_sleep=note_retry,
        reraise=True,
    ):
        with attempt:
            await _create_or_update(js, spec.stream, spec.consumer_config())


async def _create_or_update(js: JetStreamContext, stream: str, config: ConsumerConfig) -> None:
    try:
        await js.add_consumer(stream, config)
        return
    except ServiceUnavailableError:
        raise
    except APIError:  # exists with a field that cannot change (push/pull, start position)
        existing = await js.consumer_info(stream, config.durable_name or "")
    if existing.config.deliver_subject:
        assert existing.ack_floor is not None
        await js.delete_consumer(stream, config.durable_name or "")
        config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = existing.ack_floor.stream_seq + 1
        log.info("push consumer replaced by a pull consumer", consumer=config.durable_name)
    else:
        config.deliver_policy = existing.config.deliver_policy
        config.opt_start_seq = existing.config.opt_start_seq
        config.opt_start_time = existing.config.opt_start_time
    await js.add_consumer(stream, config)


class JetStreamConsumer(Generic[M]):
    """A durable pull consumer running ``spec.workers`` fetch-handle-settle loops."""

    def __init__(
        self,
        js: JetStreamContext,
        spec: ConsumerSpec,
        decode: Callable[[Msg], M],
        handler: BatchHandler[M],
    ) -> None:
        self.js = js
        self.spec = spec
        self.decode = decode
        self.handler = handler
        self.messages = messages_counter(spec.service)

    @classmethod
    def each(
        cls,
        js: JetStreamContext,
        spec: ConsumerSpec,
        model: type[ModelT],
        handler: Handler[ModelT],
    ) -> JetStreamConsumer[ModelT]:
        """Consume JSON messages of ``model`` one at a time."""
        return JetStreamConsumer(js, spec, model_decoder(model), one_by_one(handler))

    async def run(self, stopping: asyncio.Event) -> None:
        """Consume until ``stopping`` is set; every batch in hand is settled first."""
        await ensure_consumer(self.js, self.spec)
        await asyncio.gather(*(self._worker(stopping) for _ in range(self.spec.workers)))

    async def _worker(self, stopping: asyncio.Event) -> None:
        sub = await self.js.pull_subscribe_bind(self.spec.durable, stream=self.spec.stream)
        try:
            while not stopping.is_set():
                try:
                    msgs = await fetch_waiting(sub, self.spec.batch, self.spec.fetch_timeout_s)
                except TimeoutError:  # nothing waiting (nats-py raises a TimeoutError subclass)
                    continue
                except NatsError as exc:
                    log.warning("fetch failed", consumer=self.spec.durable, error=repr(exc))
                    await asyncio.sleep(self.spec.fetch_timeout_s)
                    continue
                await self.handle(msgs)
        finally:
            await sub.unsubscribe()

    async def handle(self, msgs: Sequence[Msg]) -> None:
        """Decode, hand over and settle one fetched batch; never raises for one message."""
        accepted: list[Msg] = []
        decoded: list[M] = []
        for msg in msgs:
            if deadletter.replayed_for_other(msg, self.spec.durable):
                await self._settle(msg, "skipped", msg.ack())
                continue
            try:
                decoded.append(self.decode(msg))
            except ValueError as exc:  # pydantic.ValidationError is a ValueError
                log.warning(
                    "invalid message",
                    consumer=self.spec.durable,
                    subject=msg.subject,
                    error=str(exc),
                )
                await self._settle(msg, "invalid", msg.term())
                continue
            except Exception as exc:  # a decoder bug: redelivered, dead-lettered in the end
                log.exception("message not decoded", consumer=self.spec.durable)
                await self._failed(msg, exc)
                continue
            accepted.append(msg)
        if not accepted:
            return
        failures: Failures
        try:
            failures = await self.handler(decoded) or {}
        except Exception as exc:
            log.exception("handler failed", consumer=self.spec.durable, messages=len(accepted))
            failures = dict.fromkeys(range(len(accepted)), exc)
        for i, msg in enumerate(accepted):
            error = failures.get(i)
            if error is None:
                await self._settle(msg, "ok", msg.ack())
            else:
                await self._failed(msg, error)

    async def _failed(self, msg: Msg, error: BaseException) -> None:
        deliveries = msg.metadata.num_delivered
        transient = isinstance(error, TRANSIENT_ERRORS)
        if isinstance(error, PermanentError) or (
            deliveries >= self.spec.max_deliveries and not transient
        ):
            try:
                await deadletter.send(self.js, self.spec.service, self.spec.durable, msg, error)
            except Exception as exc:  # redelivered later and dead-lettered then
                log.exception(
                    "dead letter not written", consumer=self.spec.durable, error=repr(exc)
                )
                await self._settle(msg, "failed", msg.nak(delay=self.spec.nak_max_delay_s))
                return
            log.error(
                "message dead-lettered",
                consumer=self.spec.durable,
                subject=msg.subject,
                deliveries=deliveries,
                error=str(error),
            )
            await self._settle(msg, "dead_letter", msg.term())
            return
        log.warning(
            "message failed, redelivered later",
            consumer=self.spec.durable,
            subject=msg.subject,
            deliveries=deliveries,
            transient=transient,
            error=repr(error),
        )
        await self._settle(msg, "failed", msg.nak(delay=self.spec.nak_delay(deliveries)))

    async def _settle(self, msg: Msg, outcome: str, settling: Awaitable[None]) -> None:
        """Count the outcome and send the ack/nak/term; a lost one means a redelivery."""
        self.messages.labels(self.spec.durable, outcome).inc()
        try:
            await settling
        except NatsError as exc:
            log.warning(
                "acknowledgement not sent; the message will be redelivered",
                consumer=self.spec.durable,
                outcome=outcome,
                error=repr(exc),
            )
