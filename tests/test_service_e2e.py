"""Process-level end-to-end tests of the deployable reminder worker.

Each test gets its own broker (Apache Kafka where Java is here, else embedded) with the real
catalog topic names, provisioned through `coffeebuddy.infra.kafka.provision.ensure_topics`, a
fake Slack on its own thread, and runs the
worker as separate processes (`python -m coffeebuddy.services.reminder_worker`) configured by
environment variables, exactly as deployed. Waiting is always on a condition with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.models import ReminderScheduled, ReminderScheduledData
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.provision import ensure_topics
from coffeebuddy.infra.kafka.testing import (
    BrokerHandle,
    free_port,
    local_broker_kind,
    start_broker,
    wait_until,
)
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_DLQ_TOPIC, REMINDER_EVENTS_TOPIC
from coffeebuddy.services.fake_slack import FakeSlackServer

READY_TIMEOUT = 45.0


@dataclass
class Worker:
    """One worker process and its HTTP port."""

    name: str
    env: dict[str, str]
    log_path: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "coffeebuddy.services.reminder_worker"],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    async def get(self, path: str) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
            session.get(self.url + path) as response,
        ):
            return response.status, await response.text()

    async def readyz(self) -> tuple[int, dict[str, object]]:
        status, body = await self.get("/readyz")
        return status, json.loads(body)

    async def wait_ready(self, deadline_s: float = READY_TIMEOUT) -> None:
        last: object = ""

        async def ready() -> bool:
            nonlocal last
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            status, last = await self.get("/readyz")
            return status == 200

        try:
            await wait_until(
                ready, timeout=deadline_s, message=f"{self.name} ready", ignore=(OSError,)
            )
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\nlast /readyz: {last}\n{self.log_tail()}") from None

    async def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """Sum of the samples of `name` matching `labels` on /metrics (0 when absent)."""
        _, text = await self.get("/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            series, _, value = line.rpartition(" ")
            base = series.split("{", 1)[0]
            if base != name:
                continue
            if labels and not all(f'{k}="{v}"' in series for k, v in labels.items()):
                continue
            total += float(value)
        return total

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


@dataclass
class Stack:
    """A fresh broker + fake Slack + provisioned catalog topics for one test."""

    broker: BrokerHandle
    slack: FakeSlackServer
    settings: KafkaSettings
    tmp_path: Path
    workers: list[Worker] = field(default_factory=list)

    def worker(self, name: str = "worker", **env: str) -> Worker:
        base = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLACK_"))},
            **{k: v for k, v in self.broker.env.items() if k.startswith("KAFKA_")},
            "KAFKA_CLIENT_ID": f"reminder-worker-{name}",
            "KAFKA_SESSION_TIMEOUT_MS": "6000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "SLACK_BOT_TOKEN": self.slack.token,
            "SLACK_API_BASE_URL": self.slack.base_url,
            "SLACK_TIMEOUT_S": "2",
            "REMINDER_AUTH_PROBE_MAX_S": "1",
            "REMINDER_CLOCK_SKEW_S": "1",
            "WORKER_HTTP_HOST": "127.0.0.1",
            "WORKER_HTTP_PORT": str(free_port()),
            "WORKER_DRAIN_TIMEOUT_S": "10",
            "LOG_LEVEL": "INFO",
        }
        base.update(env)
        w = Worker(name, base, self.tmp_path / f"{name}.log", int(base["WORKER_HTTP_PORT"]))
        self.workers.append(w)
        return w


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    broker = start_broker(kind=local_broker_kind())  # its own: the catalog's fixed names
    slack = FakeSlackServer().start_in_thread()
    settings = broker.settings()
    s = Stack(broker, slack, settings, tmp_path)
    try:
        report = await ensure_topics(settings, "dev")
        assert report.ok, report
        yield s
    finally:
        for w in s.workers:
            if w.process is not None and w.process.poll() is None:
                w.process.kill()
                w.process.wait(10)
        slack.stop_thread()
        broker.close()


def scheduled(
    rid: str, user: str, due_at: datetime, *, run_id: str | None = None, kind: str = "runner"
) -> ReminderScheduled:
    data = ReminderScheduledData(
        reminder_id=rid,
        kind=kind,  # type: ignore[arg-type]
        run_id=run_id or f"run-{rid}",
        team_id="T0COFFEE",
        channel_id="C0COFFEE",
        recipient_user_id=user,
        due_at=due_at,
        expires_at=due_at + timedelta(minutes=10),
        place="Corner Cafe",
        closes_at=due_at + timedelta(minutes=5),
        order_count=1,
    )
    return ReminderScheduled.create(data=data)


async def publish(settings: KafkaSettings, events: list[ReminderScheduled]) -> None:
    async with KafkaEventProducer(settings) as producer:
        await producer.publish_many(REMINDER_EVENTS_TOPIC, events)


def delivered(slack: FakeSlackServer) -> Counter[str]:
    return slack.block_id_counts()


async def wait_delivered(slack: FakeSlackServer, ids: set[str], deadline_s: float) -> None:
    await wait_until(
        lambda: ids <= set(delivered(slack)),
        timeout=deadline_s,
        message=f"all {len(ids)} reminders delivered (have {len(set(delivered(slack)) & ids)})",
    )


# ---------------------------------------------------------------------------------------------


async def test_service_delivers_on_time_and_drains_on_sigterm(stack: Stack) -> None:
    worker = stack.worker().start()
    await worker.wait_ready()
    due = datetime.now(UTC) + timedelta(seconds=2.5)
    ids = {f"ontime-{i}" for i in range(6)}
    await publish(stack.settings, [scheduled(rid, f"U0USER{rid[-1]}", due) for rid in ids])
    await wait_delivered(stack.slack, ids, 20)
    lateness = [m.posted_at - due.timestamp() for m in stack.slack.messages()]
    assert min(lateness) >= 0, f"a reminder was sent before due_at: {lateness}"
    assert max(lateness) < 2.0, f"reminders were late: {lateness}"  # loose: CI load; see bench
    assert delivered(stack.slack) == Counter(ids)

    async def all_counted() -> bool:
        return await worker.metric("coffeebuddy_reminders_sent_total") == 6

    await wait_until(all_counted, timeout=10, message="six sends counted")
    assert await worker.metric("coffeebuddy_reminder_worker_ready") == 1
    status, _ = await worker.get("/healthz")
    assert status == 200
    started = time.monotonic()
    assert worker.terminate() == 0, worker.log_tail()
    assert time.monotonic() - started < 10
    lines = worker.logs().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r.get("reminder_id") in ids and r.get("run_id") for r in records)
    assert stack.slack.token not in worker.logs()


async def test_service_kill9_mid_stream_then_restart_delivers_each_once(stack: Stack) -> None:
    first = stack.worker("first").start()
    await first.wait_ready()
    now = datetime.now(UTC)
    events = [
        scheduled(f"k9-{i}", f"U0K{i % 9}", now + timedelta(seconds=1.5 + (i % 20) * 0.15))
        for i in range(40)
    ]
    ids = {e.data.reminder_id for e in events}
    await publish(stack.settings, events)
    await wait_until(
        lambda: len(stack.slack.messages()) >= 10, timeout=20, message="some delivered"
    )
    first.kill9()
    second = stack.worker("second").start()
    await second.wait_ready()
    await wait_delivered(stack.slack, ids, 40)

    async def settled() -> bool:
        return await second.metric("coffeebuddy_reminders_pending") == 0

    await wait_until(settled, timeout=20, message="nothing pending on the second worker")
    counts = delivered(stack.slack)
    assert counts == Counter(ids), {k: v for k, v in counts.items() if v != 1}


async def test_service_two_workers_one_killed_survivor_delivers(stack: Stack) -> None:
    a = stack.worker("a").start()
    b = stack.worker("b").start()
    await a.wait_ready()
    await b.wait_ready()

    async def both_assigned() -> bool:
        sa, _ = await a.readyz()
        sb, _ = await b.readyz()
        return sa == 200 and sb == 200

    await wait_until(both_assigned, timeout=READY_TIMEOUT, message="both workers assigned")
    due = datetime.now(UTC) + timedelta(seconds=4)
    events = [scheduled(f"pair-{i}", f"U0P{i % 5}", due) for i in range(30)]
    ids = {e.data.reminder_id for e in events}
    await publish(stack.settings, events)

    async def both_hold_some() -> bool:
        pa = await a.metric("coffeebuddy_reminders_pending")
        pb = await b.metric("coffeebuddy_reminders_pending")
        return pa > 0 and pb > 0 and pa + pb == 30

    await wait_until(both_hold_some, timeout=15, message="both workers hold pending reminders")
    a.kill9()
    assert stack.slack.messages() == []  # nothing was due yet
    await wait_delivered(stack.slack, ids, 40)
    assert delivered(stack.slack) == Counter(ids)

    async def all_counted() -> bool:
        return await b.metric("coffeebuddy_reminders_sent_total") == 30

    await wait_until(all_counted, timeout=10, message="the survivor counted 30 sends")


async def test_service_429_storm_and_5xx_everything_delivered_retry_after_respected(
    stack: Stack,
) -> None:
    worker = stack.worker().start()
    await worker.wait_ready()
    stack.slack.rate_limit(6, retry_after=1)
    stack.slack.http_error(503, 3)
    due = datetime.now(UTC) + timedelta(seconds=0.5)
    events = [scheduled(f"storm-{i}", f"U0S{i}", due) for i in range(8)]
    ids = {e.data.reminder_id for e in events}
    await publish(stack.settings, events)
    await wait_delivered(stack.slack, ids, 40)
    assert delivered(stack.slack) == Counter(ids)

    posts = stack.slack.calls("chat.postMessage")
    limited = [c for c in posts if c.status == 429]
    assert len(limited) == 6
    assert len([c for c in posts if c.status == 503]) == 3
    for call in limited:
        bid = call.params["blocks"][0]["block_id"]
        later = [c for c in posts if c.monotonic > call.monotonic]
        retry = next(c for c in later if c.params["blocks"][0]["block_id"] == bid)
        assert retry.monotonic - call.monotonic >= 1.0, (bid, retry.monotonic - call.monotonic)
    assert await worker.metric("coffeebuddy_reminders_dropped_total") == 0


async def test_service_ambiguous_posts_are_checked_not_repeated(stack: Stack) -> None:
    worker = stack.worker().start()
    await worker.wait_ready()
    # Posted, then an error or no answer at all: a blind retry would post twice.
    stack.slack.fail("fatal_error", 2, post_first=True)
    stack.slack.post_then_timeout(1, delay=30)  # SLACK_TIMEOUT_S=2 in these tests
    stack.slack.http_error(500, 1)  # nothing posted: the check finds nothing, the worker re-sends
    due = datetime.now(UTC) + timedelta(seconds=0.5)
    events = [scheduled(f"amb-{i}", f"U0M{i}", due) for i in range(6)]
    ids = {e.data.reminder_id for e in events}
    await publish(stack.settings, events)
    await wait_delivered(stack.slack, ids, 40)

    async def settled() -> bool:
        return await worker.metric("coffeebuddy_reminders_pending") == 0

    await wait_until(settled, timeout=30, message="every ambiguous reminder settled")
    assert delivered(stack.slack) == Counter(ids)
    assert len(stack.slack.calls("conversations.history")) >= 4


async def test_service_invalid_token_not_ready_nothing_lost_resumes_when_fixed(
    stack: Stack,
) -> None:
    worker = stack.worker(SLACK_BOT_TOKEN="xoxb-not-the-right-one").start()

    async def assigned_but_slack_broken() -> bool:
        status, body = await worker.readyz()
        checks = body["checks"]
        assert isinstance(checks, dict)
        return status == 503 and checks["consumer_assigned"] and not checks["slack_auth"]

    await wait_until(
        assigned_but_slack_broken,
        timeout=READY_TIMEOUT,
        message="not ready because of Slack",
        ignore=(OSError,),
    )
    due = datetime.now(UTC)
    events = [scheduled(f"auth-{i}", f"U0A{i}", due) for i in range(3)]
    ids = {e.data.reminder_id for e in events}
    await publish(stack.settings, events)

    async def held() -> bool:
        return await worker.metric("coffeebuddy_reminders_pending") == 3

    await wait_until(held, timeout=15, message="three reminders held pending")
    status, _ = await worker.readyz()
    assert status == 503
    assert await worker.metric("coffeebuddy_slack_auth_ok") == 0
    assert await worker.metric("coffeebuddy_reminder_worker_ready") == 0
    assert stack.slack.messages() == []
    stack.slack.set_valid_tokens("xoxb-not-the-right-one")  # the operator fixed the token
    await wait_delivered(stack.slack, ids, 30)
    await worker.wait_ready(15)
    assert delivered(stack.slack) == Counter(ids)
    assert await worker.metric("coffeebuddy_slack_auth_ok") == 1
    assert await worker.metric("coffeebuddy_reminders_dropped_total") == 0
    assert "xoxb-not-the-right-one" not in worker.logs()


async def test_service_hostile_events_dead_lettered_worker_keeps_delivering(stack: Stack) -> None:
    worker = stack.worker().start()
    await worker.wait_ready()
    good = scheduled("after-the-storm", "U0GOOD", datetime.now(UTC)).model_dump(mode="json")
    wrong_types = json.loads(json.dumps(good))
    wrong_types["id"] = str(uuid.uuid4())
    wrong_types["data"]["due_at"] = 12345
    wrong_types["data"]["order_count"] = "many"
    naive = json.loads(json.dumps(good))
    naive["id"] = str(uuid.uuid4())
    naive["data"]["due_at"] = "2026-11-27T09:00:00"
    huge = json.loads(json.dumps(good))
    huge["data"]["place"] = "x" * 400_000
    unknown = json.loads(json.dumps(good))
    unknown["type"] = "coffeebuddy.reminder.teleported.v1"
    hostile = [
        b"{not json at all",
        b"\xff\xfe\x00binary",
        json.dumps(wrong_types).encode(),
        json.dumps(naive).encode(),
        json.dumps(huge).encode(),
        json.dumps(unknown).encode(),
        b"[]",
    ]
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.broker.bootstrap_servers, max_request_size=2_000_000
    )
    await producer.start()
    origins: set[tuple[int, int]] = set()
    try:
        for i, value in enumerate(hostile):
            meta = await producer.send_and_wait(
                REMINDER_EVENTS_TOPIC.name, value, key=f"hostile-{i}".encode()
            )
            origins.add((meta.partition, meta.offset))
    finally:
        await producer.stop()
    await publish(stack.settings, [scheduled("after-the-storm", "U0GOOD", datetime.now(UTC))])
    await wait_delivered(stack.slack, {"after-the-storm"}, 20)

    consumer = AIOKafkaConsumer(
        REMINDER_EVENTS_DLQ_TOPIC.name,
        bootstrap_servers=stack.broker.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4_000_000,
        fetch_max_bytes=8_000_000,
    )
    await consumer.start()
    dead: list[dict[str, bytes]] = []
    try:

        async def all_dead_lettered() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                dead.extend(dict(r.headers) for r in records)
            return len(dead) >= len(hostile)

        await wait_until(all_dead_lettered, timeout=20, message="hostile records dead-lettered")
    finally:
        await consumer.stop()
    assert len(dead) == len(hostile)
    assert {h["coffeebuddy.dlq.origin.topic"] for h in dead} == {
        REMINDER_EVENTS_TOPIC.name.encode()
    }
    got = {
        (int(h["coffeebuddy.dlq.origin.partition"]), int(h["coffeebuddy.dlq.origin.offset"]))
        for h in dead
    }
    assert got == origins
    assert all(h.get("coffeebuddy.dlq.error.type") for h in dead)
    status, _ = await worker.get("/healthz")
    assert status == 200
    assert worker.process is not None
    assert worker.process.poll() is None
    assert delivered(stack.slack) == Counter({"after-the-storm": 1})


async def test_service_missing_topics_exit_with_provisioning_hint(tmp_path: Path) -> None:
    broker = start_broker(kind=local_broker_kind())  # nothing provisioned on it
    try:
        with FakeSlackServer() as slack:
            s = Stack(broker, slack, broker.settings(), tmp_path)
            worker = s.worker().start()
            assert worker.process is not None
            code = worker.process.wait(60)
    finally:
        broker.close()
    assert code == 4, worker.log_tail()
    logs = worker.logs()
    assert REMINDER_EVENTS_TOPIC.name in logs
    assert "coffeebuddy-kafka apply" in logs


async def test_service_token_without_im_history_is_not_ready_naming_the_scope(
    stack: Stack,
) -> None:
    """auth.test succeeds, but without im:history every ambiguous post would fail its history
    check: the worker must say so instead of reporting ready."""
    stack.slack.set_scopes(["chat:write", "im:write", "users:read"])
    worker = stack.worker().start()

    async def not_ready_naming_it() -> bool:
        status, body = await worker.readyz()
        return status == 503 and "missing_scope: im:history" in str(body["detail"])

    await wait_until(
        not_ready_naming_it,
        timeout=READY_TIMEOUT,
        message="not ready, naming im:history",
        ignore=(OSError,),
    )
    assert "missing_scope: im:history" in worker.logs()
    stack.slack.set_scopes(["chat:write", "im:write", "im:history"])  # the app is re-installed
    await worker.wait_ready(30)
