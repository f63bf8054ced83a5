"""`coffeebuddy-kafka events tail|publish`: read and write catalog topics from the shell.

kcat's conventions where they fit: `tail` is `kcat -C` (`-e` stops at the end, `-c N` after N
records, `--from-beginning` as kafka-console-consumer says it), `publish` is `kcat -P` with a
ready sample per event type (`--data -` reads the data from stdin). Exit codes are the CLI's
one table: 0 done, 1 error (bad input, unreachable cluster, an event the models refuse).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.models import CONTENT_MODES, REMINDER_SCHEDULED, ContentMode
from coffeebuddy.infra.kafka.provision._exit import ExitCode
from coffeebuddy.infra.kafka.provision.dlq._filter import parse_duration
from coffeebuddy.infra.kafka.provision.events._errors import EventsError
from coffeebuddy.infra.kafka.provision.events._format import record_json, record_line
from coffeebuddy.infra.kafka.provision.events._publish import publish_event
from coffeebuddy.infra.kafka.provision.events._samples import (
    DEFAULT_USER,
    SampleOptions,
    envelope,
    merge_data,
    parse_data,
    publishable_types,
    resolve_type,
    sample_data,
    short_name,
    validate_envelope,
)
from coffeebuddy.infra.kafka.provision.events._tail import tail_topic
from coffeebuddy.infra.kafka.topics import CATALOG, TopicConfig

DEV_USER_ENV = "COFFEEBUDDY_DEV_SLACK_USER"
"""The Slack user `hatch run dev` sends its DMs to: also the samples' default --user."""


def catalog_topic(name: str) -> TopicConfig:
    """A catalog topic by name; EventsError listing the catalog's topics otherwise."""
    if name in CATALOG.topic_names:
        return CATALOG.topic(name)
    raise EventsError(
        f"{name!r} is not a catalog topic; one of: {', '.join(sorted(CATALOG.topic_names))}"
    )


@contextlib.contextmanager
def _stop_on_sigint(stop: asyncio.Event) -> Iterator[None]:
    """Ctrl-C ends the tail cleanly (a stop event, not a KeyboardInterrupt mid-await)."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def cmd_tail(args: argparse.Namespace) -> ExitCode:
    topic = catalog_topic(args.topic)
    settings = KafkaSettings.from_env()
    stop = asyncio.Event()
    start = "the beginning" if args.from_beginning else "the end (new records only)"
    sys.stderr.write(f"tailing {topic.name} from {start}; Ctrl-C stops\n")
    shown = 0
    with _stop_on_sigint(stop):
        records = tail_topic(
            settings,
            topic,
            from_beginning=args.from_beginning,
            exit_at_end=args.exit_at_end,
            count=args.count,
            stop=stop,
        )
        async for record in records:
            line = json.dumps(record_json(record)) if args.json else record_line(record)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            shown += 1
    if args.exit_at_end:
        sys.stderr.write(f"reached the end of {topic.name}: {shown} record(s)\n")
    return ExitCode.OK


def _read_data(arg: str | None) -> dict[str, Any]:
    """`--data JSON`, `--data @FILE` or `--data -` (stdin, as `kcat -P` reads it)."""
    if arg is None:
        return {}
    if arg == "-":
        return parse_data(sys.stdin.read(), "--data - (stdin)")
    if arg.startswith("@"):
        path = Path(arg[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise EventsError(f"--data {arg}: cannot read ({exc.strerror})") from None
        return parse_data(text, f"--data {arg}")
    return parse_data(arg, "--data")


def _due_in(text: str) -> timedelta:
    """`30`, `30s`, `2m`, `1h30m`; negative (`-20m`) for a reminder already due."""
    try:
        return timedelta(seconds=float(text))
    except ValueError:
        pass
    sign = -1 if text.strip().startswith("-") else 1
    try:
        return sign * parse_duration(text.strip().removeprefix("-"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _options(args: argparse.Namespace) -> SampleOptions:
    user = args.user or os.environ.get(DEV_USER_ENV, "").strip() or DEFAULT_USER
    given: dict[str, Any] = {"run_id": args.run} if args.run else {}
    return SampleOptions(
        user=user, due_in=args.due_in, kind=args.kind, reminder_id=args.reminder_id, **given
    )


def _hint(event_type: str, data: dict[str, Any]) -> str:
    """What to do next with a published reminder (stderr: stdout stays one line per event)."""
    if event_type != REMINDER_SCHEDULED:
        return ""
    return (
        f"reminder {data.get('reminder_id')} for {data.get('recipient_user_id')} due at "
        f"{data.get('due_at')}; cancel it with: coffeebuddy-kafka events publish "
        f"reminder.cancelled --run {data.get('run_id')} --reminder-id {data.get('reminder_id')}\n"
    )


async def cmd_publish(args: argparse.Namespace) -> ExitCode:
    event_type, topic = resolve_type(args.type)
    data = merge_data(sample_data(event_type, _options(args)), _read_data(args.data))
    body = envelope(event_type, data)
    mode: ContentMode | None = args.mode
    if args.dry_run:
        if not args.no_validate:
            validate_envelope(body)
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
        sys.stderr.write(
            f"dry run: would publish to {topic.name} ({mode or topic.content_mode} mode)\n"
        )
        return ExitCode.OK
    if args.no_validate:
        sys.stderr.write("warning: --no-validate: sending the event without the models' check\n")
    published = await publish_event(
        KafkaSettings.from_env(), topic, body, mode=mode, validate=not args.no_validate
    )
    if args.json:
        sys.stdout.write(json.dumps(published.to_json()) + "\n")
    else:
        sys.stdout.write(
            f"{published.topic}/{published.partition}/{published.offset}  "
            f"{short_name(published.event_type)}  id={published.event_id}  "
            f"key={published.key or '-'}  ({published.mode})\n"
        )
    if published.validated:
        sys.stderr.write(_hint(event_type, data))
    return ExitCode.OK


def _types_epilog() -> str:
    rows = [f"  {short_name(t):<28} -> {topic.name}" for t, topic in publishable_types().items()]
    return "event types (short or full name) and their topics:\n" + "\n".join(rows)


def add_events_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `events tail` and `events publish` to the `coffeebuddy-kafka` parser."""
    events = subparsers.add_parser("events", help="read (tail) and write (publish) events")
    leaves = events.add_subparsers(dest="events_command", required=True)

    tail = leaves.add_parser(
        "tail",
        help="print a catalog topic's records as they arrive, one line each (kcat -C)",
        description="Follow a catalog topic (no consumer group, nothing committed). Each record "
        "is decoded in either CloudEvents content mode; one that does not decode is shown as "
        "such with its partition and offset, and the tail goes on.",
        epilog="topics: " + ", ".join(sorted(CATALOG.topic_names)),
    )
    tail.add_argument("topic", help="a catalog topic name, e.g. coffeebuddy.reminder.events")
    tail.add_argument(
        "--from-beginning", action="store_true", help="start at the first record, not the end"
    )
    tail.add_argument(
        "-e",
        "--exit-at-end",
        action="store_true",
        help="stop at the end offsets seen at start (kcat -e)",
    )
    tail.add_argument("-c", "--count", type=int, metavar="N", help="stop after N records")
    tail.add_argument("--json", action="store_true", help="one JSON object per line (scripts)")
    tail.set_defaults(func=cmd_tail)

    publish = leaves.add_parser(
        "publish",
        help="publish a ready sample of an event type, checked by the models first (kcat -P)",
        description="Publish one event to its catalog topic: the type's ready sample, changed "
        "by the flags and --data, checked by the models before it is sent. Prints "
        "topic/partition/offset and the event id.",
        epilog=_types_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    publish.add_argument("type", help="event type, e.g. reminder.scheduled (see below)")
    publish.add_argument("--run", metavar="RUN_ID", help="run id (default: a new run-cli-...)")
    publish.add_argument(
        "--user",
        metavar="USER_ID",
        help=f"recipient / orderer / runner (default ${DEV_USER_ENV}, else {DEFAULT_USER})",
    )
    publish.add_argument(
        "--due-in",
        type=_due_in,
        default=timedelta(seconds=30),
        metavar="DURATION",
        help="reminder.scheduled: due this long from now (30, 30s, 2m; default 30s; "
        "--due-in=-20m for one already past its expiry, which the worker drops)",
    )
    publish.add_argument(
        "--reminder-id", metavar="ID", help="reminder id (default <run id>:<kind>)"
    )
    publish.add_argument(
        "--kind",
        choices=("last_call", "runner"),
        default="last_call",
        help="reminder.scheduled: kind (default last_call)",
    )
    publish.add_argument(
        "--data",
        metavar="JSON|@FILE|-",
        help="JSON object merged over the sample's data (a null removes a field); "
        "@FILE reads a file, - reads stdin",
    )
    publish.add_argument(
        "--mode",
        choices=CONTENT_MODES,
        help="CloudEvents content mode (default: the topic's, structured)",
    )
    publish.add_argument(
        "--no-validate",
        action="store_true",
        help="send even if the models refuse it (to watch a consumer dead-letter it)",
    )
    publish.add_argument("--dry-run", action="store_true", help="print the event, send nothing")
    publish.add_argument("--json", action="store_true", help="print the result as JSON")
    publish.set_defaults(func=cmd_publish)
