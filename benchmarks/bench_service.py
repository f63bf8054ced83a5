"""Deployable reminder worker (group "service"): Slack DMs per second and lateness through the real
SlackDMSender (slack_sdk over HTTP) against the local FakeSlackServer with no rate limit.

1. sender only: `SlackDMSender.send` with 64 concurrent sends to 500 users (500 channel opens);
   baseline: bare slack_sdk `chat_postMessage` with the same pre-rendered payload to one open
   channel at the same concurrency; ceiling: plain aiohttp round trips on the same loop.
2. end to end: the whole service in-process (`ReminderWorkerService`: consumer harness + producer +
   ReminderWorker + SlackDMSender) on its own embedded broker with the catalog topics; 1,000
   reminders published ahead and falling due in the same second. Lateness = fake Slack's receive
   time - due_at (same host clock); DMs/s = 1,000 / (last post - first due).
The fake server runs on the same event loop as the client (a second thread would only add GIL
hand-offs), so one core serves both sides: the numbers are a floor for the client side.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta

import aiohttp
from _common import BenchContext, BenchRow
from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from slack_sdk.web.async_client import AsyncWebClient

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.models import ReminderScheduled, ReminderScheduledData
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.provision import ensure_topics
from coffeebuddy.infra.kafka.testing import EmbeddedBroker, FakeSlackServer
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_TOPIC
from coffeebuddy.services.reminder_worker import (
    ReminderWorkerService,
    ServiceSettings,
    SlackDMSender,
    render_reminder,
)

GROUP = "service"
CONCURRENCY = 64


def _reminder(i: int, due: datetime) -> ReminderScheduledData:
    return ReminderScheduledData(
        reminder_id=f"bench-{i}",
        kind="runner" if i % 2 else "last_call",
        run_id=f"run-{i % 97}",
        team_id="T0COFFEE",
        channel_id="C0COFFEE",
        recipient_user_id=f"U0B{i % 500}",
        due_at=due,
        expires_at=due + timedelta(minutes=10),
        place="Corner Cafe",
        closes_at=due + timedelta(minutes=5),
        order_count=3,
    )


async def _bounded(n: int, op: object) -> float:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with sem:
            await op(i)  # type: ignore[operator]

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - started)


async def _loopback_ceiling(n: int) -> float:
    """Plain aiohttp client to a plain aiohttp handler on one loop: the HTTP ceiling here."""

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/api/chat.postMessage", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/api/chat.postMessage"
    async with aiohttp.ClientSession() as session:

        async def post(i: int) -> None:
            async with session.post(url, json={"text": f"hello {i}"}) as response:
                await response.json()

        rate = await _bounded(n, post)
    await runner.cleanup()
    return rate


async def _sender_rate(n: int) -> tuple[float, float]:
    now = datetime.now(UTC)
    async with FakeSlackServer() as slack:
        session = aiohttp.ClientSession()
        raw = AsyncWebClient(
            token=slack.token, base_url=slack.base_url, retry_handlers=[], session=session
        )
        channel = slack.channel_for("U0RAW")
        await raw.conversations_open(users="U0RAW")
        # Same payload as the sender posts (rendered up front), one pre-opened channel.
        text, blocks = render_reminder(
            reminder_id="bench-raw", kind="runner", run_id="run", due_at=now, order_count=3
        )

        async def bare(i: int) -> None:
            await raw.chat_postMessage(channel=channel, text=text, blocks=blocks)

        baseline = await _bounded(n, bare)
        await session.close()
        slack.reset()
        sender = SlackDMSender.create(slack.token, base_url=slack.base_url)
        reminders = [_reminder(i, now) for i in range(n)]

        async def send(i: int) -> None:
            result = await sender.send(reminders[i], claim_time=now)
            assert result.ok, result

        rate = await _bounded(n, send)
        await sender.close()
        assert len(slack.messages()) == n
    return rate, baseline


async def _end_to_end(n: int) -> tuple[float, float, float, float]:
    async with EmbeddedBroker() as broker, FakeSlackServer() as slack:
        kafka = KafkaSettings.from_env(
            {
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "KAFKA_ENABLE_IDEMPOTENCE": "false",
                "KAFKA_SESSION_TIMEOUT_MS": "6000",
                "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            }
        )
        assert (await ensure_topics(kafka, "dev")).ok
        settings = ServiceSettings(
            slack_bot_token=SecretStr(slack.token),
            slack_api_base_url=slack.base_url,
            http_host="127.0.0.1",
            http_port=0,
            max_concurrent_sends=CONCURRENCY,
        )
        service = ReminderWorkerService(settings, kafka, registry=CollectorRegistry())
        task = asyncio.create_task(service.run())
        deadline = time.monotonic() + 60
        while not service.ready().ok:
            if task.done() or time.monotonic() > deadline:
                raise RuntimeError(f"service not ready: {service.ready().detail}")
            await asyncio.sleep(0.05)
        due = datetime.now(UTC) + timedelta(seconds=5)
        events = [ReminderScheduled.create(data=_reminder(i, due)) for i in range(n)]
        async with KafkaEventProducer(kafka) as producer:
            await producer.publish_many(REMINDER_EVENTS_TOPIC, events)
        await slack.wait_for_messages(n, timeout=60)
        service.request_stop()
        assert await task == 0
        posted = sorted(m.posted_at - due.timestamp() for m in slack.messages())
    p50 = statistics.median(posted)
    p99 = posted[min(len(posted) - 1, int(len(posted) * 0.99))]
    rate = n / max(posted[-1], 1e-6)
    return p50, p99, posted[0], rate


async def run(ctx: BenchContext) -> list[BenchRow]:
    n = 1000 if ctx.quick else 5000
    ceiling = await _loopback_ceiling(n)
    rate, baseline = await _sender_rate(n)
    p50, p99, earliest, e2e_rate = await _end_to_end(1000)
    return [
        BenchRow(
            GROUP,
            f"bare slack_sdk chat_postMessage, reminder payload ({CONCURRENCY} concurrent, {n})",
            baseline,
            "msg/s",
            baseline="plain aiohttp loopback round trips (machine ceiling)",
            baseline_value=ceiling,
        ),
        BenchRow(
            GROUP,
            f"SlackDMSender DMs/s to fake Slack ({CONCURRENCY} concurrent, {n})",
            rate,
            "msg/s",
            baseline="bare slack_sdk chat_postMessage, same payload",
            baseline_value=baseline,
            target=">= 2000",
            met=rate >= 2000,
        ),
        BenchRow(
            GROUP,
            "end to end DMs/s, 1,000 due in the same second (broker+harness+worker+sender)",
            e2e_rate,
            "msg/s",
            target=">= 2000",
            met=e2e_rate >= 2000,
        ),
        BenchRow(GROUP, "lateness p50, 1,000 due at once (end to end)", p50 * 1000, "ms"),
        BenchRow(
            GROUP,
            "lateness p99, 1,000 due at once (end to end)",
            p99 * 1000,
            "ms",
            target="<= 500",
            met=p99 <= 0.5,
        ),
        BenchRow(
            GROUP,
            "earliest send relative to due_at (must be >= 0)",
            earliest * 1000,
            "ms",
            target=">= 0",
            met=earliest >= 0,
        ),
    ]
