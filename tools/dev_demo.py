"""The sample coffee run `hatch run dev` publishes, and what it expects to happen.

A run with three orders and a runner; a last call and a runner reminder due a few seconds later;
the last call published twice (a retrying publisher: still one DM); a third reminder cancelled
before it is due (no DM).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from dev_narration import Expectation, Narrator, hhmmss

from coffeebuddy.infra.kafka.models import (
    OrderAdded,
    OrderAddedData,
    OrderLine,
    ReminderCancelled,
    ReminderCancelledData,
    ReminderScheduled,
    ReminderScheduledData,
    RunCreated,
    RunCreatedData,
    RunnerAssigned,
    RunnerAssignedData,
)
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_TOPIC, RUN_EVENTS_TOPIC

SOURCE = "/coffeebuddy/dev-demo"
TEAM, CHANNEL = "T0COFFEE", "C0COFFEE"
ORGANIZER, RUNNER, ALICE, CAROL, DAVE = "U0ORGANIZER", "U0BOB", "U0ALICE", "U0CAROL", "U0DAVE"


async def publish_demo(
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
    say.more(f"closes at {hhmmss(closes_at)} (published to {RUN_EVENTS_TOPIC.name})")

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
        expect.due[event.data.reminder_id] = event.data
        await producer.publish(REMINDER_EVENTS_TOPIC, event)
        say.say(
            "schedule",
            f"{event.data.kind.replace('_', '-')} reminder for {event.data.recipient_user_id} "
            f"due at {hhmmss(event.data.due_at)}",
        )
    # The same event again, as a retrying publisher would send it: it must not be a second DM.
    await producer.publish(REMINDER_EVENTS_TOPIC, last_call)
    say.say("duplicate", f"re-published {last_call.data.reminder_id}: expect still one DM")
    expect.cancelled.add(doomed.data.reminder_id)
    await producer.publish(
        REMINDER_EVENTS_TOPIC,
        ReminderCancelled.create(
            source=SOURCE,
            data=ReminderCancelledData(
                run_id=run_id, reminder_id=doomed.data.reminder_id, reason="Dave left early"
            ),
        ),
    )
    say.say("cancel", f"cancelled {doomed.data.reminder_id}: expect no DM")
