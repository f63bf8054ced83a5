"""`hatch run dev`: the reminder worker end to end on this machine, narrated.

Starts the embedded Kafka broker, provisions the catalog topics through the provisioning
tool, starts the reminder worker against a local Slack stand-in (or real Slack when
SLACK_BOT_TOKEN is set), publishes a sample coffee run whose reminders fall due a few
seconds later, and prints every DM as it is delivered, with its lateness. Runs until Ctrl-C.

    hatch run dev                     # demo, then keep running until Ctrl-C
    hatch run dev --exit-after-demo   # stop once the demo's reminders are accounted for
    hatch run dev --verbose           # also show the worker's JSON logs
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings, topic_partitions
from coffeebuddy.infra.kafka.models import (
    OrderAdded,
    OrderAddedData,
    OrderLine,
    ReminderCancelled,
    ReminderCancelledData,
    ReminderScheduled,
    ReminderScheduledData,
    ReminderState,
    RunCreated,
    RunCreatedData,
    RunnerAssigned,
    RunnerAssignedData,
    decode_record,
)
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.provision import ensure_topics
from coffeebuddy.infra.kafka.testing import EmbeddedBroker, free_port, wait_until
from coffeebuddy.infra.kafka.topics import (
    REMINDER_EVENTS_TOPIC,
    REMINDER_STATE_CHANGELOG_TOPIC,
    RUN_EVENTS_TOPIC,
)
from coffeebuddy.services.fake_slack import FakeSlackServer
from coffeebuddy.services.reminder_worker import (
    ReminderWorkerService,
    ServiceSettings,
    configure_logging,
)

SOURCE = "/coffeebuddy/dev-demo"
TEAM, CHANNEL = "T0COFFEE", "C0COFFEE"
ORGANIZER, RUNNER, ALICE, CAROL, DAVE = "U0ORGANIZER", "U0BOB", "U0ALICE", "U0CAROL", "U0DAVE"


class Narrator:
    """Prints one aligned line per step, stamped with seconds since the demo started."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def say(self, tag: str, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {tag:<9} {text}", flush=True)

    def more(self, text: str) -> None:
        print(f"{'':18}{text}", flush=True)


@dataclass
class Expectation:
    """What the demo published and what it expects to see delivered."""

    due: dict[str, ReminderScheduledData] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    delivered: dict[str, float] = field(default_factory=dict)  # reminder_id -> lateness (s)

    @property
    def outstanding(self) -> set[str]:
        return set(self.due) - self.cancelled - set(self.delivered)


def _hhmmss(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3] + " UTC"


async def _publish_demo(
    producer: KafkaEventProducer, say: Narrator, recipient: str | None, expect: Expectation
) -> None:
    run_id = f"run-demo-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    closes_at = now + timedelta(seconds=12)
    who = {name: recipient or name for name in (ORGANIZER, RUNNER, ALICE, CAROL, DAVE)}
    orders = [(ALICE, "flat white"), (CAROL, "oat cappuccino"), (DAVE, "double espresso")]

    await producer.publish(
        RUN_EVENTS_TOPIC,
        RunCreated.create(
            source=SOURCE,
            data=RunCreatedData(
                run_id=run_id,
                team_id=TEAM,
                channel_id=CHANNEL,
                organizer_user_id=who[ORGANIZER],
                place="Blue Bottle, Market St",
                closes_at=closes_at,
            ),
        ),
    )
    await producer.publish_many(
        RUN_EVENTS_TOPIC,
        [
            OrderAdded.create(
                source=SOURCE, data=OrderAddedData(run_id=run_id, user_id=who[u], item=i)
            )
            for u, i in orders
        ],
    )
    await producer.publish(
        RUN_EVENTS_TOPIC,
        RunnerAssigned.create(
            source=SOURCE, data=RunnerAssignedData(run_id=run_id, runner_user_id=who[RUNNER])
        ),
    )
    say.say("run", f"coffee run {run_id} at Blue Bottle: 3 orders, runner {RUNNER}")
    say.more(f"closes at {_hhmmss(closes_at)} (published to {RUN_EVENTS_TOPIC.name})")

    def reminder(rid: str, kind: str, user: str, due_in: float) -> ReminderScheduled:
        due_at = now + timedelta(seconds=due_in)
        data = ReminderScheduledData(
            run_id=run_id,
            reminder_id=f"{run_id}:{rid}",
            kind=kind,  # type: ignore[arg-type]
            team_id=TEAM,
            channel_id=CHANNEL,
            recipient_user_id=who[user],
            due_at=due_at,
            expires_at=due_at + timedelta(minutes=10),
            place="Blue Bottle, Market St",
            closes_at=closes_at,
            order_count=len(orders),
            orders=[OrderLine(user_id=who[u], item=i) for u, i in orders],
        )
        return ReminderScheduled.create(source=SOURCE, data=data)

    last_call = reminder("last-call:carol", "last_call", CAROL, 4)
    runner = reminder("runner:bob", "runner", RUNNER, 7)
    doomed = reminder("last-call:dave", "last_call", DAVE, 6)
    for event in (last_call, runner, doomed):
        await producer.publish(REMINDER_EVENTS_TOPIC, event)
        expect.due[event.data.reminder_id] = event.data
        say.say(
            "schedule",
            f"{event.data.kind.replace('_', '-')} reminder for {event.data.recipient_user_id} "
            f"due at {_hhmmss(event.data.due_at)}",
        )
    # The same event again, as a retrying publisher would send it: it must not be a second DM.
    await producer.publish(REMINDER_EVENTS_TOPIC, last_call)
    say.say("duplicate", f"re-published {last_call.data.reminder_id}: expect still one DM")
    await producer.publish(
        REMINDER_EVENTS_TOPIC,
        ReminderCancelled.create(
            source=SOURCE,
            data=ReminderCancelledData(
                run_id=run_id, reminder_id=doomed.data.reminder_id, reason="Dave left early"
            ),
        ),
    )
    expect.cancelled.add(doomed.data.reminder_id)
    say.say("cancel", f"cancelled {doomed.data.reminder_id}: expect no DM")


async def _watch_deliveries(
    settings: KafkaSettings,
    say: Narrator,
    expect: Expectation,
    slack: FakeSlackServer | None,
) -> None:
    """Tail the worker's state changelog and print each reminder as it is sent or dropped."""
    consumer = AIOKafkaConsumer(**settings.consumer_kwargs(None))
    await consumer.start()
    try:
        name = REMINDER_STATE_CHANGELOG_TOPIC.name
        partitions = await topic_partitions(consumer, name)
        tps = [TopicPartition(name, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    if record.value is None:
                        continue  # tombstone: settled state pruned, or a released claim
                    event = decode_record(record.value, record.headers)
                    if isinstance(event, ReminderState):
                        _report(event, say, expect, slack)
    finally:
        await consumer.stop()


def _report(
    event: ReminderState, say: Narrator, expect: Expectation, slack: FakeSlackServer | None
) -> None:
    data = event.data
    if data.reminder_id is None or data.reminder_id not in expect.due:
        return
    if data.status in ("dropped", "cancelled"):
        say.say("dropped", f"{data.reminder_id}: {data.reason or 'no reason given'}")
        return
    if data.status != "sent" or data.reminder_id in expect.delivered:
        return
    scheduled = expect.due[data.reminder_id]
    sent_at = float(data.slack_ts) if data.slack_ts else data.recorded_at.timestamp()
    lateness = sent_at - scheduled.due_at.timestamp()
    expect.delivered[data.reminder_id] = lateness
    say.say(
        "DM",
        f"-> {scheduled.recipient_user_id} ({scheduled.kind.replace('_', '-')}) "
        f"due {_hhmmss(scheduled.due_at)}, delivered {lateness * 1000:+.0f} ms late",
    )
    if slack is not None:
        for message in slack.messages_with_block_id(data.reminder_id)[:1]:
            say.more(f'"{message.text}"')


async def _main(args: argparse.Namespace) -> int:
    say = Narrator()
    token = os.environ.get("SLACK_BOT_TOKEN", "").strip()
    recipient = os.environ.get("COFFEEBUDDY_DEV_SLACK_USER", "").strip() or None
    if token and not recipient:
        print(
            "SLACK_BOT_TOKEN is set: also set COFFEEBUDDY_DEV_SLACK_USER to the Slack user id "
            "(U...) who should receive the demo DMs.",
            file=sys.stderr,
        )
        return 2
    print("CoffeeBuddy reminder worker: local demo (Ctrl-C stops it)\n", flush=True)
    async with contextlib.AsyncExitStack() as stack:
        broker = await stack.enter_async_context(EmbeddedBroker())
        kafka = KafkaSettings.from_env(
            {
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "KAFKA_CLIENT_ID": "coffeebuddy-dev",
                # The embedded broker has no InitProducerId: idempotence off, explicitly.
                "KAFKA_ENABLE_IDEMPOTENCE": "false",
                "KAFKA_SESSION_TIMEOUT_MS": "6000",
                "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            }
        )
        say.say("broker", f"embedded Kafka broker on {broker.bootstrap_servers}")
        say.more(
            f"export KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers} "
            "KAFKA_ENABLE_IDEMPOTENCE=false  # to point your own clients at it"
        )

        report = await ensure_topics(kafka, "dev")
        created = [r.change.resource for r in report.applied]
        say.say("topics", f"provisioned from the catalog (env dev): {report.summary()}")
        for name in created:
            say.more(f"created {name}")

        slack: FakeSlackServer | None = None
        if token:
            base_url = os.environ.get("SLACK_API_BASE_URL", "https://slack.com/api/")
            say.say("slack", f"real Slack at {base_url}; DMs go to {recipient}")
        else:
            slack = await stack.enter_async_context(FakeSlackServer())
            token, base_url = slack.token, slack.base_url
            say.say("slack", f"Slack stand-in at {base_url} (set SLACK_BOT_TOKEN for real Slack)")

        http_port = free_port()
        service = ReminderWorkerService(
            ServiceSettings.from_env(
                {
                    "SLACK_BOT_TOKEN": token,
                    "SLACK_API_BASE_URL": base_url,
                    "WORKER_HTTP_PORT": str(http_port),
                    "WORKER_DRAIN_TIMEOUT_S": "10",
                }
            ),
            kafka,
            registry=CollectorRegistry(),
        )
        service_task = asyncio.create_task(service.run(), name="reminder-worker")
        await wait_until(
            lambda: service.ready().ok or service_task.done(),
            timeout=60,
            message="reminder worker ready (/readyz)",
        )
        if service_task.done():
            say.say("worker", f"failed to start (exit code {service_task.result()})")
            return 1
        say.say(
            "worker", f"reminder worker ready; probes and metrics on http://127.0.0.1:{http_port}"
        )
        say.more("/healthz /readyz /metrics")

        expect = Expectation()
        producer = await stack.enter_async_context(KafkaEventProducer(kafka))
        watcher = asyncio.create_task(_watch_deliveries(kafka, say, expect, slack))
        await _publish_demo(producer, say, recipient, expect)

        with contextlib.suppress(TimeoutError):
            await wait_until(lambda: not expect.outstanding, timeout=40, message="demo DMs")
        # A cancelled reminder is proven absent only after its due time has passed.
        latest_due = max(d.due_at for d in expect.due.values())
        await wait_until(
            lambda: datetime.now(UTC) > latest_due + timedelta(seconds=1),
            timeout=40,
            message="last due time passed",
        )
        wanted = len(expect.due) - len(expect.cancelled)
        late = max(expect.delivered.values(), default=0.0)
        leaked = expect.cancelled & set(expect.delivered)
        dm_count = len(slack.messages()) if slack is not None else len(expect.delivered)
        ok = not expect.outstanding and not leaked and dm_count == wanted
        say.say(
            "summary",
            f"{len(expect.delivered)} of {wanted} expected DMs delivered "
            f"(worst lateness {late * 1000:.0f} ms); {dm_count} DM(s) in Slack; "
            f"cancelled reminder {'SENT (bug!)' if leaked else 'not sent'}.",
        )
        if not args.exit_after_demo:
            say.more("the worker keeps running: publish your own events to the broker above.")
            say.more("Ctrl-C stops everything.")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await asyncio.wait(
                [asyncio.create_task(stop.wait()), service_task],
                return_when=asyncio.FIRST_COMPLETED,
            )
        say.say("stop", "draining the worker")
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        if not service_task.done():
            service.request_stop()
        code = await service_task
        say.say("stop", f"worker stopped (exit code {code}); broker stopped")
        return 0 if ok and code == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exit-after-demo", action="store_true", help="stop after the demo")
    parser.add_argument("--verbose", action="store_true", help="show the worker's JSON logs")
    args = parser.parse_args()
    if args.verbose:
        configure_logging("INFO")
    else:
        logging.basicConfig(level=logging.ERROR)
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
