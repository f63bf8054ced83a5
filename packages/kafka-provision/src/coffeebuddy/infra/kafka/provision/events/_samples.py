"""Ready samples for `events publish`: one per event type of the catalog's event topics.

An event is built as the JSON envelope a producer would write (`envelope`), the caller's
`--data` merged over the sample's data (`merge_data`), and checked by the models' own decoder
(`validate_envelope`), so what passes here is exactly what a consumer accepts. Types that only
travel on a service's own log topic (the worker's state changelog, the replay ledger) have no
sample: only their owner writes them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from coffeebuddy.infra.kafka.models import (
    REMINDER_CANCELLED,
    REMINDER_SCHEDULED,
    RUN_CANCELLED,
    RUN_CLOSED,
    RUN_CREATED,
    RUN_ORDER_ADDED,
    RUN_RUNNER_ASSIGNED,
    Event,
    decode_event,
)
from coffeebuddy.infra.kafka.provision.events._errors import EventsError
from coffeebuddy.infra.kafka.topics import CATALOG, Catalog, TopicConfig

CLI_SOURCE = "/coffeebuddy/cli"
"""CloudEvents `source` of what `coffeebuddy-kafka events publish` sends."""
DEFAULT_USER = "U0DEVUSER"
"""Recipient / orderer of the samples when neither --user nor COFFEEBUDDY_DEV_SLACK_USER is set."""
TEAM, CHANNEL, PLACE = "T0COFFEE", "C0COFFEE", "Blue Bottle, Market St"

_PREFIX = "coffeebuddy."


def short_name(event_type: str) -> str:
    """`coffeebuddy.reminder.scheduled.v1` -> `reminder.scheduled` (what the CLI accepts)."""
    name = event_type.removeprefix(_PREFIX)
    head, _, version = name.rpartition(".")
    return head if head and version.startswith("v") and version[1:].isdigit() else name


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class SampleOptions:
    """What the sample flags set: run, user, due time, reminder id and kind."""

    run_id: str = field(default_factory=lambda: f"run-cli-{uuid.uuid4().hex[:8]}")
    user: str = DEFAULT_USER
    due_in: timedelta = timedelta(seconds=30)
    reminder_id: str | None = None
    kind: str = "last_call"
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def reminder(self) -> str:
        """The reminder id: the given one, else `<run id>:<kind>`."""
        return self.reminder_id or f"{self.run_id}:{self.kind}"


def _run_created(o: SampleOptions) -> dict[str, Any]:
    return {
        "run_id": o.run_id,
        "team_id": TEAM,
        "channel_id": CHANNEL,
        "organizer_user_id": o.user,
        "place": PLACE,
        "closes_at": _rfc3339(o.now + timedelta(minutes=10)),
    }


def _reminder_scheduled(o: SampleOptions) -> dict[str, Any]:
    due = o.now + o.due_in
    return {
        "run_id": o.run_id,
        "reminder_id": o.reminder,
        "kind": o.kind,
        "team_id": TEAM,
        "channel_id": CHANNEL,
        "recipient_user_id": o.user,
        "due_at": _rfc3339(due),
        "expires_at": _rfc3339(due + timedelta(minutes=10)),
        "place": PLACE,
        "closes_at": _rfc3339(due + timedelta(minutes=5)),
        "order_count": 1,
        "orders": [{"user_id": o.user, "item": "flat white"}],
    }


SAMPLES: Mapping[str, Callable[[SampleOptions], dict[str, Any]]] = {
    RUN_CREATED: _run_created,
    RUN_ORDER_ADDED: lambda o: {"run_id": o.run_id, "user_id": o.user, "item": "flat white"},
    RUN_RUNNER_ASSIGNED: lambda o: {"run_id": o.run_id, "runner_user_id": o.user},
    RUN_CLOSED: lambda o: {"run_id": o.run_id, "closed_at": _rfc3339(o.now)},
    RUN_CANCELLED: lambda o: {"run_id": o.run_id, "reason": "called off from the CLI"},
    REMINDER_SCHEDULED: _reminder_scheduled,
    REMINDER_CANCELLED: lambda o: {
        "run_id": o.run_id,
        "reminder_id": o.reminder,
        "reason": "cancelled from the CLI",
    },
}
"""CloudEvents type -> its sample's `data` (JSON values) for the given options."""


def publishable_types(catalog: Catalog = CATALOG) -> dict[str, TopicConfig]:
    """Event type -> the catalog topic it is published to, for every `events` topic's types."""
    out: dict[str, TopicConfig] = {}
    for topic in catalog.topics:
        if topic.kind == "events":
            out.update(dict.fromkeys(sorted(topic.event_types), topic))
    return dict(sorted(out.items()))


def resolve_type(name: str, catalog: Catalog = CATALOG) -> tuple[str, TopicConfig]:
    """`reminder.scheduled` or its full type -> (type, topic); EventsError names the choices."""
    types = publishable_types(catalog)
    by_name = {short_name(t): t for t in types} | {t: t for t in types}
    event_type = by_name.get(name.strip())
    if event_type is not None:
        return event_type, types[event_type]
    choices = ", ".join(sorted(map(short_name, types)))
    owned = [t for t in catalog.topics if name in {*t.event_types, *map(short_name, t.event_types)}]
    if owned:
        topic = owned[0]
        raise EventsError(
            f"{name!r} travels on {topic.name} (kind {topic.kind}, written by its owner "
            f"{topic.owner or 'service'} only); publish one of: {choices}"
        )
    raise EventsError(f"unknown event type {name!r}; publish one of: {choices}")


def sample_data(event_type: str, options: SampleOptions) -> dict[str, Any]:
    """The ready sample's `data` for `event_type` (JSON values: times as RFC 3339 strings)."""
    try:
        make = SAMPLES[event_type]
    except KeyError:
        raise EventsError(f"no sample for {event_type!r}") from None
    return make(options)


def merge_data(data: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with each key of `changes` replacing the sample's; a null value removes the key."""
    merged = dict(data)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def parse_data(text: str, where: str) -> dict[str, Any]:
    """A `--data` JSON object; EventsError naming `where` (the flag, file or stdin) otherwise."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventsError(f"{where}: not JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(value, dict):
        raise EventsError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def envelope(
    event_type: str,
    data: Mapping[str, Any],
    *,
    source: str = CLI_SOURCE,
    event_id: str | None = None,
    time: datetime | None = None,
) -> dict[str, Any]:
    """The structured-mode CloudEvent (a JSON object) carrying `data`; subject = data.run_id."""
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": event_type,
        "time": _rfc3339(time or datetime.now(UTC)),
        "datacontenttype": "application/json",
        "data": dict(data),
    }
    run_id = data.get("run_id")
    if isinstance(run_id, str):
        body["subject"] = run_id
    return body


def validate_envelope(body: Mapping[str, Any]) -> Event:
    """The models' own check (`decode_event`): EventDecodeError names each bad field."""
    return decode_event(json.dumps(body).encode())
