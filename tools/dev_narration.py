"""What `hatch run dev` prints while it runs: one line per step, DM, rejection or dead letter.

The `Reporter` reads what the worker wrote (its state changelog, both dead-letter topics), so
it narrates your own events as well as the demo's: a reminder you publish is shown when the
worker schedules it and when its DM is sent (the text as Slack would render it), a rejected one
with the worker's reason, a dead-lettered record with the harness's reason.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from slack_text import render_slack_text

from coffeebuddy.infra.kafka.models import ReminderScheduledData, ReminderState
from coffeebuddy.infra.kafka.provision.events import TailedRecord
from coffeebuddy.services.fake_slack import FakeSlackServer
from coffeebuddy.services.reminder_worker import block_id_for, render_reminder

FINAL_DROPS = frozenset({"dropped", "cancelled", "run_closed", "run_cancelled", "dead_lettered"})


def hhmmss(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3] + " UTC"


class Narrator:
    """Prints one aligned line per step, stamped with seconds since the demo started."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def say(self, tag: str, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {tag:<9} {text}", flush=True)

    def more(self, text: str) -> None:
        print(f"{'':18}{text}", flush=True)


class OwnErrors(logging.Handler):
    """Without --verbose: this project's ERROR lines as narration, library lines not at all
    (aiokafka's connection errors during a stop would only repeat what the narration says)."""

    def __init__(self, say: Narrator) -> None:
        super().__init__(logging.ERROR)
        self.narrator = say
        self.addFilter(lambda r: r.name == "coffeebuddy" or r.name.startswith("coffeebuddy."))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.narrator.say("error", record.getMessage())
        except Exception:  # a log line must never break the demo
            self.handleError(record)


def quiet_logging(say: Narrator) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(OwnErrors(say))
    root.setLevel(logging.ERROR)


@dataclass
class Expectation:
    """What the demo published and what it expects to see delivered."""

    due: dict[str, ReminderScheduledData] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    delivered: dict[str, float] = field(default_factory=dict)  # reminder_id -> lateness (s)

    @property
    def outstanding(self) -> set[str]:
        return set(self.due) - self.cancelled - set(self.delivered)


@dataclass
class Reporter:
    """Turns changelog states and dead letters into narration lines."""

    say: Narrator
    expect: Expectation
    slack: FakeSlackServer | None
    known: dict[str, ReminderScheduledData] = field(default_factory=dict)
    told: set[tuple[str, str]] = field(default_factory=set)
    hinted_dlq: bool = False

    def state(self, event: ReminderState) -> None:
        data = event.data
        rid = data.reminder_id
        if rid is None:
            return
        if data.reminder is not None:
            self.known[rid] = data.reminder
        demo = rid in self.expect.due
        scheduled = self.expect.due.get(rid) or self.known.get(rid)
        if (rid, data.status) in self.told:
            return
        if data.status == "scheduled" and not demo and scheduled is not None:
            self.told.add((rid, data.status))
            self.say.say(
                "schedule",
                f"{scheduled.kind.replace('_', '-')} reminder {rid} for "
                f"{scheduled.recipient_user_id} due at {hhmmss(scheduled.due_at)} (your event)",
            )
        elif data.status in FINAL_DROPS:
            self.told.add((rid, data.status))
            self.say.say("dropped", f"{rid}: {data.reason or data.status}")
        elif data.status == "sent":
            self.told.add((rid, data.status))
            self._sent(rid, data.slack_ts, data.recorded_at, scheduled, demo)

    def _sent(
        self,
        rid: str,
        slack_ts: str | None,
        recorded_at: datetime,
        scheduled: ReminderScheduledData | None,
        demo: bool,
    ) -> None:
        sent_at = float(slack_ts) if slack_ts else recorded_at.timestamp()
        if scheduled is None:
            self.say.say("DM", f"{rid} delivered at {hhmmss(datetime.fromtimestamp(sent_at, UTC))}")
            return
        lateness = sent_at - scheduled.due_at.timestamp()
        if demo:
            self.expect.delivered[rid] = lateness
        self.say.say(
            "DM",
            f"-> {scheduled.recipient_user_id} ({scheduled.kind.replace('_', '-')}) "
            f"due {hhmmss(scheduled.due_at)}, delivered {lateness * 1000:+.0f} ms late",
        )
        text = self._text(rid, scheduled)
        if text:
            self.say.more(f'"{render_slack_text(text)}"')

    def _text(self, rid: str, scheduled: ReminderScheduledData) -> str:
        """The DM's text: what the Slack stand-in received, else what the worker renders."""
        if self.slack is not None:
            for message in self.slack.messages_with_block_id(block_id_for(rid))[:1]:
                return message.text
        text, _ = render_reminder(
            reminder_id=rid,
            kind=scheduled.kind,
            run_id=scheduled.run_id,
            due_at=scheduled.due_at,
            closes_at=scheduled.closes_at,
            orders=[(o.user_id, o.item) for o in scheduled.orders or ()],
            order_count=scheduled.order_count,
            place=scheduled.place,
        )
        return text

    def dead_letter(self, record: TailedRecord) -> None:
        letter = record.dead_letter
        if letter is None:
            return
        origin = f"{letter.origin_topic}[{letter.origin_partition}]@{letter.origin_offset}"
        error = letter.error_type.rsplit(".", 1)[-1]
        self.say.say("dead-ltr", f"{origin} ({letter.reason}): {error}: {letter.error_message}")
        if not self.hinted_dlq:
            self.hinted_dlq = True
            self.say.more(
                f"list them: hatch run coffeebuddy-kafka dlq inspect {letter.origin_topic}"
            )
