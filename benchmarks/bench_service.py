"""Deployable reminder worker (group "service"): Slack DMs per second and lateness through the real
SlackDMSender (slack_sdk over HTTP) against the local FakeSlackServer with no rate limit.

1. sender only: `SlackDMSender.send` with 64 concurrent sends to 500 users (500 channel opens);
   baseline: bare slack_sdk `chat_postMessage` with the same pre-rendered payload to one open
   channel at the same concurrency; ceiling: plain aiohttp round trips on the same loop.
2. end to end: the whole service in-process (`ReminderWorkerService`: consumer harness + producer +
   ReminderWorker + SlackDMSender) on its own embedded broker with the catalog topics; 1,000
   reminders published ahead and falling due in the same second. Lateness = fake Slack's receive
   time - due_at (same host clock); DMs/s = 1,000 / (last post - first due). A last row counts
   the SYNs the kernel dropped from a full accept queue meanwhile (Linux): each one adds TCP's 1 s
   retransmit to a send, which is the fake's artifact, so it must stay 0.
3. the history topic's cost: the same burst with `REMINDER_HISTORY=1` (the service's default,
   the rows above) against `REMINDER_HISTORY=0`, two bursts each per round in ABBA order (BAAB
   in odd rounds), each side the mean of its two; DMs/s and lateness p99 as ratios (target: at
   most 5% worse). The rows of 2 are thus means of two bursts per round.
`BENCH_SERVICE_E2E_ONLY=1` measures only the end-to-end rows (2 and 3), e.g. with `--only service`.
The fake Slack (and the plain aiohttp ceiling server) run in a child process, so the server side
has its own interpreter and core (the machine has 2): the numbers measure the client side, not the
fake. One sender row is also measured with the fake on the client's loop, for comparison.
The process runs with the deployable's GC thresholds (`tune_gc`); `BENCH_PYTHON_GC=1` keeps
Python's.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

import aiohttp
from _common import BenchContext, BenchRow, merge_rounds
from prometheus_client import CollectorRegistry
from slack_sdk.web.async_client import AsyncWebClient

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.models import ReminderScheduled, ReminderScheduledData
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.provision import ensure_topics
from coffeebuddy.infra.kafka.reminder_worker import tune_gc
from coffeebuddy.infra.kafka.testing import EmbeddedBroker
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_TOPIC
from coffeebuddy.services.fake_slack import FakeSlackServer
from coffeebuddy.services.reminder_worker import (
    ReminderWorkerService,
    ServiceSettings,
    SlackDMSender,
    render_reminder,
)

GROUP = "service"
CONCURRENCY = 64


def _open() -> bool:
    """The worker's fence, always open: these calls measure the sender alone."""
    return True


E2E_ONLY = os.environ.get("BENCH_SERVICE_E2E_ONLY", "") not in ("", "0")
"""Only the end-to-end rows (the burst with and without the history topic)."""
E2E_CONCURRENCY = os.environ.get("BENCH_E2E_CONCURRENCY", "")
"""Send slots of the service end to end (empty: the service's default), each holding one claim ->
read-back -> post round."""

# The child process: a FakeSlackServer (or a plain aiohttp ceiling server) on its own loop; prints
# its base URL, then answers one-line commands on stdin: count, posted (JSON wall-clock receive
# times), reset, quit.
_CHILD = r"""
import asyncio, json, sys
from aiohttp import web
from coffeebuddy.services.fake_slack import FakeSlackServer

async def ceiling():
    async def handler(request):
        await request.read()
        return web.json_response({"ok": True})
    app = web.Application()
    app.router.add_post("/api/chat.postMessage", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, backlog=1024).start()
    print(f"http://127.0.0.1:{runner.addresses[0][1]}/api/", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await runner.cleanup()

async def fake():
    loop = asyncio.get_running_loop()
    async with FakeSlackServer() as slack:
        print(slack.base_url, flush=True)
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if line == "count":
                print(len(slack.calls("chat.postMessage")), flush=True)
            elif line == "posted":
                print(json.dumps([m.posted_at for m in slack.messages()]), flush=True)
            elif line == "reset":
                slack.reset()
                print("ok", flush=True)
            else:
                return

asyncio.run(ceiling() if sys.argv[1] == "ceiling" else fake())
"""


class _ChildSlack:
    """A fake Slack (or the ceiling server) in a child process, driven over its stdin/stdout."""

    def __init__(self, mode: str = "fake") -> None:
        self._mode = mode
        self._proc: asyncio.subprocess.Process | None = None
        self.base_url = ""
        self.token = FakeSlackServer().token

    async def __aenter__(self) -> _ChildSlack:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CHILD,
            self._mode,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self.base_url = await self._readline()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._proc is not None
        assert self._proc.stdin is not None
        self._proc.stdin.write(b"quit\n")
        await self._proc.stdin.drain()
        await asyncio.wait_for(self._proc.wait(), 10)

    async def _readline(self) -> str:
        assert self._proc is not None
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), 30)
        if not line:
            raise RuntimeError(f"fake Slack child ({self._mode}) exited")
        return line.decode().strip()

    async def ask(self, command: str) -> str:
        assert self._proc is not None
        assert self._proc.stdin is not None
        self._proc.stdin.write(command.encode() + b"\n")
        await self._proc.stdin.drain()
        return await self._readline()

    async def count(self) -> int:
        return int(await self.ask("count"))

    async def posted(self) -> list[float]:
        return [float(t) for t in json.loads(await self.ask("posted"))]

    async def wait_for_messages(self, n: int, timeout: float) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while (got := await self.count()) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fake Slack child has {got} of {n} messages")
            await asyncio.sleep(0.02)


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
    """Plain aiohttp client to a plain aiohttp handler in the child process: the HTTP ceiling."""
    async with _ChildSlack("ceiling") as server:
        url = server.base_url + "chat.postMessage"
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def post(i: int) -> None:
                async with session.post(url, json={"text": f"hello {i}"}) as response:
                    await response.json()

            return await _bounded(n, post)


async def _bare_rate(n: int, base_url: str, token: str) -> float:
    """Bare slack_sdk chat_postMessage, payload rendered up front, one pre-opened channel."""
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY))
    # A logger at INFO: slack_sdk formats a debug line per request and response whenever its
    # logger's own level is NOTSET (the default), which the baseline should not pay.
    quiet = logging.getLogger("bench.slack_sdk")
    quiet.setLevel(logging.INFO)
    raw = AsyncWebClient(
        token=token, base_url=base_url, retry_handlers=[], session=session, logger=quiet
    )
    channel = str((await raw.conversations_open(users="U0RAW"))["channel"]["id"])
    text, blocks = render_reminder(
        reminder_id="bench-raw",
        kind="runner",
        run_id="run",
        due_at=datetime.now(UTC),
        order_count=3,
    )

    async def bare(i: int) -> None:
        await raw.chat_postMessage(channel=channel, text=text, blocks=blocks)

    rate = await _bounded(n, bare)
    await session.close()
    return rate


async def _dm_rate(n: int, base_url: str, token: str) -> float:
    now = datetime.now(UTC)
    sender = SlackDMSender.create(token, base_url=base_url, max_connections=CONCURRENCY)
    reminders = [_reminder(i, now) for i in range(n)]

    async def send(i: int) -> None:
        result = await sender.send(reminders[i], claim_time=now, fence=_open)
        assert result.ok, result

    rate = await _bounded(n, send)
    await sender.close()
    return rate


async def _sender_rate(n: int) -> tuple[float, float, float]:
    """(sender, bare slack_sdk) with the fake in the child; sender with the fake on this loop."""
    async with _ChildSlack() as slack:
        baseline = await _bare_rate(n, slack.base_url, slack.token)
        await slack.ask("reset")
        rate = await _dm_rate(n, slack.base_url, slack.token)
        assert await slack.count() == n
    async with FakeSlackServer() as local:
        same_loop = await _dm_rate(n, local.base_url, local.token)
        assert len(local.messages()) == n
    return rate, baseline, same_loop


def _listen_overflows() -> int | None:
    """Connections this host's kernel refused from a full accept queue so far (Linux; else None).

    A refused SYN waits out TCP's 1 s retransmit, which the burst would measure as Slack's.
    """
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:") and "ListenOverflows" in names.split():
            return int(values.split()[names.split().index("ListenOverflows")])
    return None


async def _end_to_end(
    n: int, *, history: bool = True
) -> tuple[float, float, float, float, int | None]:
    async with EmbeddedBroker() as broker, _ChildSlack() as slack:
        kafka = KafkaSettings.from_env(
            {
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "KAFKA_ENABLE_IDEMPOTENCE": "false",
                "KAFKA_SESSION_TIMEOUT_MS": "6000",
                "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            }
        )
        assert (await ensure_topics(kafka, "dev")).ok
        settings = ServiceSettings.from_env(
            {
                "SLACK_BOT_TOKEN": slack.token,
                "SLACK_API_BASE_URL": slack.base_url,
                "WORKER_HTTP_HOST": "127.0.0.1",
                "WORKER_HTTP_PORT": "0",
                "REMINDER_HISTORY": "1" if history else "0",
                **({"REMINDER_MAX_CONCURRENT_SENDS": E2E_CONCURRENCY} if E2E_CONCURRENCY else {}),
            }
        )
        service = ReminderWorkerService(settings, kafka, registry=CollectorRegistry())
        task = asyncio.create_task(service.run())
        deadline = time.monotonic() + 60
        while not service.ready().ok:
            if task.done() or time.monotonic() > deadline:
                raise RuntimeError(f"service not ready: {service.ready().detail}")
            await asyncio.sleep(0.05)
        due = datetime.now(UTC) + timedelta(seconds=5)
        overflows_before = _listen_overflows()
        events = [ReminderScheduled.create(data=_reminder(i, due)) for i in range(n)]
        async with KafkaEventProducer(kafka) as producer:
            await producer.publish_many(REMINDER_EVENTS_TOPIC, events)
        await slack.wait_for_messages(n, timeout=60)
        overflows_after = _listen_overflows()
        service.request_stop()
        assert await task == 0
        posted = sorted(t - due.timestamp() for t in await slack.posted())
    p50 = statistics.median(posted)
    p99 = posted[min(len(posted) - 1, int(len(posted) * 0.99))]
    rate = n / max(posted[-1], 1e-6)
    overflows = (
        None
        if overflows_before is None or overflows_after is None
        else overflows_after - overflows_before
    )
    return p50, p99, posted[0], rate, overflows


async def run(ctx: BenchContext) -> list[BenchRow]:
    # the deployable's GC setting (its main calls the same), restored after
    old = tune_gc(None) if os.environ.get("BENCH_PYTHON_GC") else tune_gc()
    try:
        return merge_rounds([await _round(ctx, i) for i in range(ctx.rounds)])
    finally:
        gc.set_threshold(*old)


async def _round(ctx: BenchContext, index: int = 0) -> list[BenchRow]:
    if E2E_ONLY:
        return await _history_pair(index)
    n = 1000 if ctx.quick else 5000
    ceiling = await _loopback_ceiling(n)
    rate, baseline, same_loop = await _sender_rate(n)
    return [
        BenchRow(
            GROUP,
            f"bare slack_sdk chat_postMessage, reminder payload ({CONCURRENCY} concurrent, {n})",
            baseline,
            "msg/s",
            baseline="plain aiohttp loopback round trips, server in a child process (ceiling)",
            baseline_value=ceiling,
        ),
        BenchRow(
            GROUP,
            f"SlackDMSender DMs/s to fake Slack in a child process ({CONCURRENCY} concurrent, {n})",
            rate,
            "msg/s",
            baseline="bare slack_sdk chat_postMessage, same payload",
            baseline_value=baseline,
            target=">= 2000",
            met=rate >= 2000,
        ),
        BenchRow(
            GROUP,
            f"SlackDMSender DMs/s, fake Slack on the sender's own loop ({CONCURRENCY} concurrent)",
            same_loop,
            "msg/s",
            baseline="same, fake Slack in a child process",
            baseline_value=rate,
        ),
        *await _history_pair(index),
    ]


async def _history_pair(index: int) -> list[BenchRow]:
    """The burst twice with and twice without the history topic, ABBA (BAAB in odd rounds) so
    that a drift of the machine's load during the round weighs on both sides alike; each side's
    numbers are the mean of its two bursts."""
    order = (True, False, False, True) if index % 2 == 0 else (False, True, True, False)
    runs: dict[bool, list[tuple[float, float, float, float, int | None]]] = {True: [], False: []}
    for history in order:
        runs[history].append(await _end_to_end(1000, history=history))

    def mean(history: bool, field: int) -> float:
        return statistics.fmean(float(r[field] or 0) for r in runs[history])

    p50, p99, e2e_rate = mean(True, 0), mean(True, 1), mean(True, 3)
    earliest = min(r[2] for r in runs[True])
    p99_off, rate_off = mean(False, 1), mean(False, 3)
    earliest_off = min(r[2] for r in runs[False])
    counted = [r[4] for side in runs.values() for r in side if r[4] is not None]
    rows = [
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
    rows += [
        BenchRow(
            GROUP,
            "history topic's cost: end to end DMs/s, REMINDER_HISTORY=1 (the rows above)",
            e2e_rate,
            "msg/s",
            baseline="same burst, same round, REMINDER_HISTORY=0",
            baseline_value=rate_off,
            target=">= 0.95x",
            met=e2e_rate >= 0.95 * rate_off,
        ),
        BenchRow(
            GROUP,
            "history topic's cost: lateness p99, REMINDER_HISTORY=1 (the rows above)",
            p99 * 1000,
            "ms",
            baseline="same burst, same round, REMINDER_HISTORY=0",
            baseline_value=p99_off * 1000,
            target="<= 1.05x",
            met=p99 <= 1.05 * p99_off,
        ),
        BenchRow(
            GROUP,
            "earliest send relative to due_at, REMINDER_HISTORY=0 (must be >= 0)",
            earliest_off * 1000,
            "ms",
            target=">= 0",
            met=earliest_off >= 0,
        ),
    ]
    if counted:
        rows.append(
            BenchRow(
                GROUP,
                "connections dropped by a full accept queue during the bursts (host-wide)",
                sum(counted),
                "SYNs",
                target="0",
                met=sum(counted) == 0,
            )
        )
    return rows
