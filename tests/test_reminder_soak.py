"""Soak: worker processes under random SIGKILL / SIGTERM / scale-out and a misbehaving Slack
(random latency, 429s, 5xx, posts whose answer never comes) deliver every reminder exactly
once, never early, none lost. About three minutes on 2 cores."""

from __future__ import annotations

import asyncio
import importlib.util
import random
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.testing import wait_until
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_TOPIC

_spec = importlib.util.spec_from_file_location(
    "service_e2e_helpers", Path(__file__).with_name("test_service_e2e.py")
)
assert _spec is not None
assert _spec.loader is not None
_e = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("service_e2e_helpers", _e)
_spec.loader.exec_module(_e)

stack = _e.stack  # the fixture: fresh broker, fake Slack, provisioned catalog topics
scheduled = _e.scheduled

TOTAL = 5000
WINDOW_S = 120.0
BATCHES = 24
BASELINE = 3
MAX_WORKERS = 5


async def test_soak_every_reminder_exactly_once_none_early_none_lost(stack: Any) -> None:
    rng = random.Random(10)
    slack = stack.slack
    names = iter(f"w{i}" for i in range(1000))
    live: list[Any] = []

    def spawn() -> Any:
        w = stack.worker(next(names)).start()
        live.append(w)
        return w

    for _ in range(BASELINE):
        spawn()
    for w in live:
        await w.wait_ready()

    due_of: dict[str, float] = {}
    started = time.monotonic()
    stop_chaos = asyncio.Event()
    actions: Counter[str] = Counter()

    async def publisher() -> None:
        async with KafkaEventProducer(stack.settings) as producer:
            per_batch = TOTAL // BATCHES
            for b in range(BATCHES):
                now = datetime.now(UTC)
                events = []
                for i in range(per_batch if b < BATCHES - 1 else TOTAL - per_batch * b):
                    rid = f"soak-{b}-{i}"
                    due = now + timedelta(seconds=rng.uniform(0.5, 15.0))
                    events.append(scheduled(rid, f"U0S{rng.randrange(300)}", due))
                    due_of[rid] = due.timestamp()
                await producer.publish_many(REMINDER_EVENTS_TOPIC, events)
                await asyncio.sleep(
                    max(0.0, (b + 1) * WINDOW_S / BATCHES - (time.monotonic() - started))
                )

    async def chaos() -> None:
        while not stop_chaos.is_set():
            await asyncio.sleep(rng.uniform(5.0, 10.0))
            if stop_chaos.is_set():
                return
            action = rng.choice(["kill9", "kill9", "term", "scale_out", "scale_in"])
            if action in ("kill9", "term", "scale_in") and len(live) <= 1:
                action = "scale_out"
            if action == "scale_out" and len(live) >= MAX_WORKERS:
                action = "term"
            actions[action] += 1
            if action == "scale_out":
                spawn()
                continue
            victim = live.pop(rng.randrange(len(live)))
            if action == "kill9":
                victim.kill9()
            else:
                await asyncio.to_thread(victim.terminate, 30.0)
            if action != "scale_in" or len(live) < BASELINE - 1:
                spawn()  # the deployment replaces it

    async def bad_slack() -> None:
        while not stop_chaos.is_set():
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            pick = rng.random()
            if pick < 0.35:
                slack.slow(rng.uniform(0.05, 1.0), count=rng.randrange(5, 30))
            elif pick < 0.6:
                slack.rate_limit(rng.randrange(1, 6), retry_after=1)
            elif pick < 0.85:
                slack.http_error(rng.choice([500, 502, 503, 504]), count=rng.randrange(1, 4))
            else:
                slack.post_then_timeout(1, delay=3.0)  # posted, but the client times out

    tasks = [asyncio.create_task(t()) for t in (chaos, bad_slack)]
    try:
        await publisher()
    finally:
        stop_chaos.set()
        await asyncio.gather(*tasks)
    slack.clear_script()
    while len(live) < 2:
        spawn()

    def counts() -> Counter[str]:
        return Counter(b for m in slack.messages() for b in m.block_ids if b.startswith("soak-"))

    await wait_until(
        lambda: len(counts()) >= TOTAL,
        timeout=180,
        message=f"all {TOTAL} delivered (chaos {dict(actions)})",
    )
    await asyncio.sleep(0)
    delivered = counts()
    dupes = {b: n for b, n in delivered.items() if n > 1}
    assert not dupes, f"{len(dupes)} reminders sent more than once, e.g. {list(dupes)[:5]}"
    assert len(delivered) == TOTAL
    early = [
        (b, m.posted_at - due_of[b])
        for m in slack.messages()
        for b in m.block_ids
        if b in due_of and m.posted_at < due_of[b]
    ]
    assert not early, f"sent before due: {early[:5]}"
    assert sum(actions.values()) >= 8, f"not enough chaos: {dict(actions)}"
    for w in live:
        await asyncio.to_thread(w.terminate, 30.0)


async def test_handover_under_load_with_slack_answering_just_under_its_timeout(stack: Any) -> None:
    """Issue 21.9: Slack answers conversations.open and chat.postMessage in 1.9 s with the
    client's timeout at 2 s, so every post starts late in its claim's window; meanwhile a worker
    joins (scale-out) and every original one is replaced, one after the other (a rolling
    restart), while reminders keep falling due. Every reminder is one DM, none early."""
    rng = random.Random(21)
    slack = stack.slack
    total, window = 600, 45.0
    for method in ("conversations.open", "chat.postMessage"):
        slack.slow(1.9, count=None, method=method)
    live = []
    for i in range(2):  # one after the other: each joins a settled group
        live.append(stack.worker(f"h{i}").start())
        await live[-1].wait_ready(90)
    due_of: dict[str, float] = {}
    started = time.monotonic()

    async def publisher() -> None:
        async with KafkaEventProducer(stack.settings) as producer:
            for b in range(15):
                now = datetime.now(UTC)
                events = []
                for i in range(total // 15):
                    rid = f"hand-{b}-{i}"
                    due = now + timedelta(seconds=rng.uniform(0.5, 8.0))
                    events.append(scheduled(rid, f"U0H{rng.randrange(200)}", due))
                    due_of[rid] = due.timestamp()
                await producer.publish_many(REMINDER_EVENTS_TOPIC, events)
                await asyncio.sleep(max(0.0, (b + 1) * window / 15 - (time.monotonic() - started)))

    async def roll() -> None:
        await asyncio.sleep(5.0)  # reminders are falling due
        extra = stack.worker("h-scale").start()  # scale-out
        await extra.wait_ready(90)
        for i, old in enumerate(list(live)):  # rolling restart: a new pod first, then the old
            new = stack.worker(f"h-new{i}").start()
            await new.wait_ready(90)
            await asyncio.to_thread(old.terminate, 30.0)
            live.remove(old)
            live.append(new)
        live.append(extra)

    await asyncio.gather(publisher(), roll())

    def counts() -> Counter[str]:
        return Counter(b for m in slack.messages() for b in m.block_ids if b.startswith("hand-"))

    await wait_until(lambda: len(counts()) >= total, timeout=180, message=f"all {total} sent")
    delivered = counts()
    dupes = {b: n for b, n in delivered.items() if n > 1}
    assert not dupes, f"{len(dupes)} reminders sent more than once, e.g. {list(dupes)[:5]}"
    early = [
        (b, m.posted_at - due_of[b])
        for m in slack.messages()
        for b in m.block_ids
        if b in due_of and m.posted_at < due_of[b]
    ]
    assert not early, f"sent before due: {early[:5]}"
    for w in live:
        await asyncio.to_thread(w.terminate, 30.0)
