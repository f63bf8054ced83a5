"""Shared fakes of the worker's unit tests: an in-memory changelog, a scripted sender, a
controllable clock and a harness that drives one worker round by round (no Kafka). Test modules
reach them through the `kit` fixture (they cannot import conftest) and the `h` fixture."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.consumer import TopicPartition
from coffeebuddy.infra.kafka.metrics import ReminderMetrics
from coffeebuddy.infra.kafka.models import (
    ReminderCancelled,
    ReminderCancelledData,
    ReminderScheduled,
    ReminderScheduledData,
    ReminderStatus,
    encode_state,
)
from coffeebuddy.infra.kafka.reminder_worker import ReminderSettings, ReminderWorker, SendResult
from coffeebuddy.infra.kafka.reminder_worker._changelog import RecordSink
from coffeebuddy.infra.kafka.reminder_worker._entry import Pending
from coffeebuddy.infra.kafka.testing import wait_until
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_TOPIC

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
EVENTS = REMINDER_EVENTS_TOPIC.name
RUNS = "coffeebuddy.run.events"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class MemoryChangelog:
    """The Changelog protocol in memory: per-partition record lists, acknowledged at once."""

    def __init__(self) -> None:
        self.parts: dict[int, list[tuple[str, bytes | None]]] = defaultdict(list)
        self.sink: RecordSink | None = None
        self.owned: set[int] = set()
        self.on_read_past: Callable[[int, int], None] | None = None
        self.held: list[asyncio.Future[int]] = []
        self.hold = False
        self.error: str | None = None
        self.read_past_results: list[bool] = []  # scripted read-back answers (default True)
        self.restore_gate: asyncio.Event | None = None  # set: restores wait for it

    @property
    def unflushed(self) -> int:
        return len(self.held)

    async def start(self, sink: RecordSink, supervisor: object = None) -> None:
        self.sink = sink

    async def stop(self) -> None:
        return None

    def write(self, partition: int, key: str, value: bytes | None) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.parts[partition].append((key, value))
        offset = len(self.parts[partition]) - 1
        if self.hold:
            self.held.append(fut)
            fut.add_done_callback(lambda _f: None)
            setattr(fut, "offset", offset)  # noqa: B010
        else:
            fut.set_result(offset)
        return fut

    def release_held(self) -> None:
        for fut in self.held:
            fut.set_result(getattr(fut, "offset"))  # noqa: B009
        self.held.clear()

    async def restore(self, partitions: set[int]) -> None:
        if self.restore_gate is not None:
            await self.restore_gate.wait()
        assert self.sink is not None
        for p in partitions:
            self.owned.add(p)
            for offset, (key, value) in enumerate(list(self.parts[p])):
                self.sink(p, offset, key.encode(), value, True)

    def release(self, partitions: set[int]) -> None:
        self.owned -= partitions

    async def read_past(self, partition: int, offset: int, limit: float) -> bool:
        if self.on_read_past is not None:
            self.on_read_past(partition, offset)
        return self.read_past_results.pop(0) if self.read_past_results else True

    def inject(self, partition: int, key: str, value: bytes | None) -> None:
        """A record written by another worker, seen by the tail."""
        self.parts[partition].append((key, value))
        if partition in self.owned and self.sink is not None:
            self.sink(partition, len(self.parts[partition]) - 1, key.encode(), value, False)

    def statuses(self, key: str, partition: int = 0) -> list[str | None]:
        return [
            None if v is None else json.loads(v)["data"]["status"]
            for k, v in self.parts[partition]
            if k == key
        ]


class Completion:
    def __init__(self) -> None:
        self.state = "pending"
        self.is_stale = False

    def done(self) -> None:
        assert self.state == "pending", "completed twice"
        self.state = "done"

    def fail(self, exc: BaseException) -> None:
        assert self.state == "pending", "completed twice"
        self.state = "failed"


class Context:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.headers: list[tuple[str, bytes]] = []
        self.completion: Completion | None = None

    def defer(self) -> Completion:
        self.completion = Completion()
        return self.completion

    @property
    def state(self) -> str:
        return "completed-inline" if self.completion is None else self.completion.state

    @property
    def completed(self) -> bool:
        return self.state in ("completed-inline", "done")


class FakeSender:
    """Sends unless scripted: `script` / `found` / `auth` entries may be exceptions to raise."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sent: list[tuple[str, datetime]] = []
        self.script: dict[str, list[SendResult | Exception]] = {}
        self.found: dict[str, SendResult | Exception | None] = {}
        self.find_calls: list[str] = []
        self.auth: SendResult | Exception = SendResult.sent()
        self.auth_calls = 0
        self.before_send: Callable[[str], None] | None = None
        self.before_find: Callable[[str], None] | None = None
        self.gate: asyncio.Event | None = None  # set: send waits for it (a post in flight)
        self.entered: list[str] = []
        self.before_post: Callable[[str], None] | None = None  # slow calls before the post
        self.fenced: list[tuple[str, datetime]] = []

    async def send(
        self, reminder: ReminderScheduledData, *, claim_time: datetime, fence: Callable[[], bool]
    ) -> SendResult:
        if self.before_send is not None:
            self.before_send(reminder.reminder_id)
        self.entered.append(reminder.reminder_id)
        if self.before_post is not None:
            self.before_post(reminder.reminder_id)  # slow calls before the post (an open)
        if not fence():  # immediately before the post, as ReminderSender.send must
            self.fenced.append((reminder.reminder_id, self.clock()))
            return SendResult.fenced()
        if self.gate is not None:
            await self.gate.wait()  # the post is on the wire
        queue = self.script.get(reminder.reminder_id)
        if queue:
            result = queue.pop(0)
            if isinstance(result, Exception):
                raise result
            return result
        self.sent.append((reminder.reminder_id, self.clock()))
        return SendResult.sent("D0001", "1700000000.000100")

    async def find_sent(
        self, reminder: ReminderScheduledData, *, since: datetime
    ) -> SendResult | None:
        self.find_calls.append(reminder.reminder_id)
        if self.before_find is not None:
            self.before_find(reminder.reminder_id)
        found = self.found.get(reminder.reminder_id)
        if isinstance(found, Exception):
            raise found
        return found

    async def check_auth(self) -> SendResult:
        self.auth_calls += 1
        if isinstance(self.auth, Exception):
            raise self.auth
        return self.auth


class PreparingSender(FakeSender):
    """A FakeSender that is also a `PreparingSender`: records (reminder id, clock time) of each
    `prepare`; `prepare_error` is raised by every prepare when set."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.prepared: list[tuple[str, datetime]] = []
        self.prepare_error: Exception | None = None

    async def prepare(self, reminder: ReminderScheduledData) -> None:
        self.prepared.append((reminder.reminder_id, self.clock()))
        if self.prepare_error is not None:
            raise self.prepare_error


class FakeProducer:
    """Records dead letters and history records; the first `failures` sends raise."""

    def __init__(self) -> None:
        self.dead_letters: list[tuple[str, dict[str, bytes]]] = []
        self.values: list[bytes | None] = []
        self.history: list[tuple[bytes | None, bytes | None]] = []
        self.failures = 0

    async def send_raw(
        self, topic: Any, value: bytes | None, *, key: bytes | None, **kw: Any
    ) -> Any:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker unreachable")
        self.dead_letters.append((topic.name, dict(kw.get("headers") or [])))
        self.values.append(value)
        return _Meta(topic.name, 0, len(self.values) - 1)

    async def send_raw_many(self, topic: Any, records: list[Any], **kw: Any) -> list[Any]:
        self.history.extend((k, v) for k, v, _ in records)
        return [_Meta(topic.name, 0, i) for i in range(len(records))]


class _Meta:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset


_SETTINGS = {
    "late_grace": "late_grace_s",
    "state_margin": "state_margin_s",
    "run_memory": "run_memory_s",
    "clock_skew": "clock_skew_s",
    "prepare_ahead": "prepare_ahead_s",
    "claim_ahead": "claim_ahead_s",
    "retry_initial": "retry_initial_s",
    "retry_max": "retry_max_s",
    "auth_probe_initial": "auth_probe_initial_s",
    "auth_probe_max": "auth_probe_max_s",
    "send_timeout": "send_timeout_s",
    "claim_start_window": "claim_start_window_s",
}


def settings(**kwargs: Any) -> ReminderSettings:
    """ReminderSettings from the worker's former keyword names (timedelta or seconds)."""
    values = {}
    for name, value in kwargs.items():
        if isinstance(value, timedelta):
            value = value.total_seconds()
        values[_SETTINGS.get(name, name)] = value
    return ReminderSettings(**values)


class Harness:
    """Drives one worker deterministically: no scheduler task, explicit rounds."""

    def __init__(
        self,
        changelog: MemoryChangelog | None = None,
        *,
        sender: type[FakeSender] = FakeSender,
        metrics: Any = "default",
        kafka_metrics: Any = None,
        tracer_provider: Any = None,
        **kwargs: Any,
    ) -> None:
        self.clock = Clock()
        self.sender = sender(self.clock)
        self.registry = CollectorRegistry()
        self.metrics = ReminderMetrics(self.registry)
        self.changelog = changelog or MemoryChangelog()
        self.producer = FakeProducer()
        kwargs.setdefault("retry_initial", 1.0)
        kwargs.setdefault("retry_max", 8.0)
        # rounds fire what is due now; claiming ahead has its own tests (test_..._claim_ahead)
        kwargs.setdefault("claim_ahead", timedelta(0))
        kwargs.setdefault("auth_probe_initial", 0.01)
        kwargs.setdefault("auth_probe_max", 0.02)
        kwargs.setdefault("history", False)
        self.worker = ReminderWorker(
            self.sender,
            self.producer,  # type: ignore[arg-type]
            settings(**kwargs),
            changelog=self.changelog,
            metrics=self.metrics if metrics == "default" else metrics,
            kafka_metrics=kafka_metrics,
            clock=self.clock,
            tracer_provider=tracer_provider,
        )
        self.offsets: dict[int, int] = defaultdict(int)

    async def start(self, *partitions: int) -> Harness:
        await self.changelog.start(self.worker._on_record, self.worker.supervisor)
        self.worker._started = True
        await self.worker.on_assign([TopicPartition(EVENTS, p) for p in partitions or (0,)])
        return self

    async def feed(
        self,
        event: Any,
        topic: str = EVENTS,
        partition: int = 0,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Context:
        ctx = Context(topic, partition, self.offsets[partition])
        ctx.headers = headers or []
        self.offsets[partition] += 1
        await self.worker.process_event(event, ctx)  # type: ignore[arg-type]
        await asyncio.sleep(0)
        return ctx

    @property
    def scheduler(self) -> Any:
        return self.worker.scheduler

    async def run(self) -> None:
        """Fire everything due now and wait for the attempts to settle."""
        for _ in range(20):
            delay = await self.scheduler.run_once()
            while self.scheduler.in_flight:
                await asyncio.gather(*list(self.scheduler.in_flight))
            await asyncio.sleep(0)
            if delay != 0.0:
                return

    async def fire(self) -> None:
        """One scheduler round: due attempts start (a gated send stays in flight)."""
        await self.scheduler.run_once()
        await wait_until(
            lambda: not self.scheduler.in_flight or bool(self.sender.entered),
            timeout=5,
            message="the attempt reached the sender",
        )

    async def settle(self) -> None:
        """Wait for the attempts (and preparations) in flight to end and be forgotten."""
        while self.scheduler.in_flight or self.scheduler.preparing:
            await asyncio.gather(*list(self.scheduler.in_flight), *list(self.scheduler.preparing))
            # on 3.12 gather of finished tasks returns without yielding, before their
            # done callbacks (which forget them) ran
            await asyncio.sleep(0)

    def entry(self, rid: str, partition: int = 0) -> Pending:
        state = self.worker.state.get(partition)
        assert state is not None
        return state.pending[rid]

    def sample(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


def scheduled(
    rid: str = "rem-1",
    *,
    run_id: str = "run-1",
    kind: str = "runner",
    due_in: float = 60.0,
    expires_in: float | None = None,
    now: datetime = T0,
    user: str = "U100",
    time: datetime | None = None,
    event_id: str | None = None,
) -> ReminderScheduled:
    due = now + timedelta(seconds=due_in)
    return ReminderScheduled.create(
        data=ReminderScheduledData(
            run_id=run_id,
            reminder_id=rid,
            kind=kind,  # type: ignore[arg-type]
            team_id="T1",
            channel_id="C1",
            recipient_user_id=user,
            due_at=due,
            expires_at=None if expires_in is None else now + timedelta(seconds=expires_in),
            place="Cafe",
        ),
        id=event_id,
        time=time or now,
    )


def cancelled(rid: str = "rem-1", run_id: str = "run-1") -> ReminderCancelled:
    return ReminderCancelled.create(data=ReminderCancelledData(run_id=run_id, reminder_id=rid))


def claim_record(owner: str, epoch: int, claimed_at: float, rid: str = "rem-1") -> bytes:
    data = scheduled(rid, due_in=0).data
    return encode_state(
        state_key=rid,
        status=ReminderStatus.CLAIMED,
        run_id=data.run_id,
        keep_until=claimed_at + 7200,
        now=claimed_at,
        source="/test",
        writer=owner,
        reminder_id=rid,
        reminder=data.model_dump_json().encode(),
        event_id="ev-1",
        event_time=claimed_at,
        owner=owner,
        epoch=epoch,
        claimed_at=claimed_at,
        deadline=claimed_at + 15,
    )


class Kit:
    """The fakes above, as a fixture."""

    T0 = T0
    EVENTS = EVENTS
    RUNS = RUNS
    Clock = Clock
    MemoryChangelog = MemoryChangelog
    Context = Context
    FakeSender = FakeSender
    PreparingSender = PreparingSender
    FakeProducer = FakeProducer
    Harness = Harness
    TopicPartition = TopicPartition
    scheduled = staticmethod(scheduled)
    cancelled = staticmethod(cancelled)
    claim_record = staticmethod(claim_record)
    settings = staticmethod(settings)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit


@pytest.fixture
async def h() -> Harness:
    return await Harness().start()
