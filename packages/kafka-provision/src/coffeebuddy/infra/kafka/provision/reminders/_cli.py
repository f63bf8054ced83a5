"""`coffeebuddy-kafka reminders list|show|cancel`: the reminder worker's operator commands.

Exit codes are the CLI's one table (`ExitCode`): list and show 0 (show: 1 for an unknown id);
cancel 0 when nothing is (left) to cancel, 2 when cancellations were published or, with
`--dry-run`, would be; 1 on an error (unknown id, refused permission, not confirmed). Only
`cancel` writes anything, and only cancellation events to the reminder events topic.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.provision._exit import ExitCode
from coffeebuddy.infra.kafka.provision.dlq._errors import DlqError
from coffeebuddy.infra.kafka.provision.dlq._filter import parse_duration
from coffeebuddy.infra.kafka.provision.reminders._cancel import CancelTarget, cancel_reminders
from coffeebuddy.infra.kafka.provision.reminders._list import (
    Listing,
    list_reminders,
    watch_reminders,
)
from coffeebuddy.infra.kafka.provision.reminders._render import (
    Columns,
    print_cancel,
    print_change,
    print_listing,
    print_story,
)
from coffeebuddy.infra.kafka.provision.reminders._story import show_reminder
from coffeebuddy.infra.kafka.provision.reminders._topics import OperatorTopics
from coffeebuddy.infra.kafka.provision.reminders._view import (
    STATUS_CHOICES,
    Change,
    ReminderFilter,
    Unreadable,
    parse_statuses,
)
from coffeebuddy.infra.kafka.topics import (
    REMINDER_EVENTS_TOPIC,
    REMINDER_HISTORY_TOPIC,
    REMINDER_STATE_CHANGELOG_TOPIC,
)

__all__ = ["add_reminders_parser", "parse_time"]


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """`2026-12-07T10:00:00Z` (no offset: UTC), `now`, or `+2h` / `-30m` from now."""
    now = now or datetime.now(UTC)
    cleaned = text.strip()
    if cleaned.lower() == "now":
        return now
    if cleaned[:1] in "+-" and len(cleaned) > 1:
        try:
            delta = parse_duration(cleaned[1:])
        except DlqError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from exc
        return now + delta if cleaned[0] == "+" else now - delta
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected an RFC 3339 time (2026-12-07T10:00:00Z), now, or +2h / -30m"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _statuses(text: str) -> str:
    try:
        parse_statuses([text])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def _common(parser: argparse.ArgumentParser, *, publishes: bool = False) -> None:
    out = parser.add_mutually_exclusive_group()
    out.add_argument(
        "--json",
        dest="output",
        action="store_const",
        const="json",
        default="table",
        help="one JSON object per line (scripts)",
    )
    out.add_argument("--output", choices=("table", "json"), default="table")
    parser.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="seconds to read a topic's end"
    )
    topics = parser.add_argument_group("topics (default: the catalog's)")
    topics.add_argument(
        "--changelog-topic", metavar="TOPIC", help=REMINDER_STATE_CHANGELOG_TOPIC.name
    )
    topics.add_argument("--history-topic", metavar="TOPIC", help=REMINDER_HISTORY_TOPIC.name)
    if publishes:
        topics.add_argument("--events-topic", metavar="TOPIC", help=REMINDER_EVENTS_TOPIC.name)


def _topics(args: argparse.Namespace) -> OperatorTopics:
    return OperatorTopics.named(
        changelog=args.changelog_topic,
        history=args.history_topic,
        reminders=getattr(args, "events_topic", None),
    )


def _where(args: argparse.Namespace) -> ReminderFilter:
    return ReminderFilter(
        run_id=args.run,
        user=args.user,
        team=args.team,
        statuses=parse_statuses(args.status) if args.status else None,
        due_after=args.due_after,
        due_before=args.due_before,
    )


@contextlib.contextmanager
def _bulk_gc() -> Iterator[None]:
    """Collector thresholds for building 100,000s of long-lived objects (the reminder worker's
    deployable runs with the same): Python's 700/10/10 then spends about a fifth of `list`'s
    CPU in full collections that free nothing. Restored afterwards; the command sets this, the
    library functions never touch the process's collector."""
    old = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*old)


async def cmd_list(args: argparse.Namespace) -> ExitCode:
    with _bulk_gc():
        return await _list(args)


async def _list(args: argparse.Namespace) -> ExitCode:
    settings = KafkaSettings.from_env()
    as_json = args.output == "json"
    if not args.watch:
        listing = await list_reminders(
            settings=settings, where=_where(args), topics=_topics(args), read_timeout=args.timeout
        )
        print_listing(listing, sys.stdout, sys.stderr, as_json=as_json)
        return ExitCode.OK
    columns: list[Columns | None] = [None]

    def listed(listing: Listing) -> None:
        columns[0] = print_listing(listing, sys.stdout, sys.stderr, as_json=as_json)
        if as_json:  # nothing else marks where the listing ends and the changes begin
            sys.stderr.write("watching for changes (Ctrl-C stops)\n")
        sys.stdout.flush()

    def changed(change: Change | Unreadable) -> None:
        print_change(change, sys.stdout, columns[0], as_json=as_json)

    watch = watch_reminders(
        listed,
        changed,
        settings=settings,
        where=_where(args),
        topics=_topics(args),
        read_timeout=args.timeout,
    )
    await _until_interrupted(watch)
    return ExitCode.OK


async def _until_interrupted(work: Any) -> None:
    """Run `work` until it ends or SIGINT / SIGTERM arrive (then stop it cleanly: exit 0)."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    interrupted: list[int] = []

    def stop(sig: int) -> None:
        interrupted.append(sig)
        task.cancel()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop, sig)
            installed.append(sig)
    try:
        await task
    except asyncio.CancelledError:
        if not interrupted:
            raise
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def cmd_show(args: argparse.Namespace) -> ExitCode:
    story = await show_reminder(
        args.reminder_id,
        settings=KafkaSettings.from_env(),
        topics=_topics(args),
        run_id=args.run,
        read_timeout=args.timeout,
    )
    print_story(story, sys.stdout, as_json=args.output == "json")
    return ExitCode.OK


async def _ask(targets: Sequence[CancelTarget]) -> bool:
    """Ask on stderr, read the answer from stdin (end of input: no)."""
    sys.stderr.write(
        "\n".join(f"  {t.reminder_id}  ({t.status}, run {t.run_id})" for t in targets)
        + f"\ncancel these {len(targets)} reminders? [y/N] "
    )
    sys.stderr.flush()
    answer = await asyncio.to_thread(sys.stdin.readline)
    return answer.strip().lower() in {"y", "yes"}


async def cmd_cancel(args: argparse.Namespace) -> ExitCode:
    if not args.reminder_ids and args.run is None:
        raise ValueError("reminders cancel: name reminder ids, or a whole run with --run RUN")
    report = await cancel_reminders(
        args.reminder_ids,
        run_id=args.run,
        settings=KafkaSettings.from_env(),
        topics=_topics(args),
        dry_run=args.dry_run,
        confirm=None if args.yes else _ask,
        reason=args.reason,
        read_timeout=args.timeout,
    )
    print_cancel(report, sys.stdout, as_json=args.output == "json")
    changed = report.to_cancel if report.dry_run else report.cancelled
    return ExitCode.CHANGES if changed else ExitCode.OK


def add_reminders_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `reminders list|show|cancel` to the `coffeebuddy-kafka` parser."""
    reminders = subparsers.add_parser(
        "reminders", help="list, explain and cancel the reminder worker's reminders"
    )
    leaves = reminders.add_subparsers(dest="reminders_command", required=True)

    p = leaves.add_parser(
        "list",
        help="reminders as the state changelog holds them, by due time (read-only, no group)",
        epilog=f"exit codes: {ExitCode.OK} listed, {ExitCode.ERROR} error",
    )
    p.add_argument("--run", help="only this run's reminders")
    p.add_argument("--user", help="only reminders for this Slack user id")
    p.add_argument("--team", help="only this Slack team id")
    p.add_argument(
        "--status",
        action="append",
        type=_statuses,
        metavar="STATUS",
        help="only these (repeat or comma-separate): "
        + ", ".join(k for k in STATUS_CHOICES if k != "dead_lettered")
        + " (pending = scheduled or claimed)",
    )
    p.add_argument("--due-after", type=parse_time, metavar="TIME", help="RFC 3339, now, -1h")
    p.add_argument("--due-before", type=parse_time, metavar="TIME", help="RFC 3339, now, +2h")
    p.add_argument(
        "--watch", "-w", action="store_true", help="then follow the changelog: one line per change"
    )
    _common(p)
    p.set_defaults(func=cmd_list)

    p = leaves.add_parser(
        "show",
        help="one reminder's story from its history partition and its changelog state",
        epilog=f"exit codes: {ExitCode.OK} shown, {ExitCode.ERROR} unknown id or error",
    )
    p.add_argument("reminder_id", metavar="ID")
    p.add_argument("--run", help="its run, when the history has no record of it")
    _common(p)
    p.set_defaults(func=cmd_show)

    p = leaves.add_parser(
        "cancel",
        help="publish reminder.cancelled for pending reminders (exit 2: published / would be)",
        epilog=f"exit codes: {ExitCode.OK} nothing (left) to cancel, {ExitCode.CHANGES} "
        f"cancellations published (with --dry-run: would be), {ExitCode.ERROR} error, unknown "
        "id or not confirmed (nothing published)",
    )
    p.add_argument("reminder_ids", nargs="*", metavar="ID")
    p.add_argument(
        "--run", help="every pending reminder of this run (with IDs: where to look them up)"
    )
    p.add_argument("--dry-run", action="store_true", help="show what would be cancelled")
    p.add_argument("--yes", "-y", action="store_true", help="cancel several without asking")
    p.add_argument("--reason", help="the events' data.reason (default: cancelled by user@host)")
    _common(p, publishes=True)
    p.set_defaults(func=cmd_cancel)
