"""`coffeebuddy-kafka dlq inspect|replay`: the dead-letter sub-commands of the CLI.

Exit codes are the CLI's one table (`ExitCode`): inspect 0 (or 1 on error); replay 0 when
nothing is (left) to send, 2 when records were sent or, with `--dry-run`, would be sent.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.models import DLQ_REPLAYED
from coffeebuddy.infra.kafka.provision._exit import ExitCode
from coffeebuddy.infra.kafka.provision.dlq._errors import DlqError, LedgerTopicMissingError
from coffeebuddy.infra.kafka.provision.dlq._filter import DeadLetterFilter, parse_duration
from coffeebuddy.infra.kafka.provision.dlq._inspect import inspect_dead_letters
from coffeebuddy.infra.kafka.provision.dlq._ledger import (
    STATE_FILE_ENV,
    FileReplayLedger,
    ReplayLedger,
    TopicReplayLedger,
    default_state_file,
)
from coffeebuddy.infra.kafka.provision.dlq._letter import DeadLetter, text_of
from coffeebuddy.infra.kafka.provision.dlq._publisher import Publisher
from coffeebuddy.infra.kafka.provision.dlq._reader import TopicReader
from coffeebuddy.infra.kafka.provision.dlq._replay import (
    NOT_FIXED_BY_REPLAY,
    ReplayReport,
    replay_dead_letters,
)
from coffeebuddy.infra.kafka.topics import CATALOG, DLQ_REPLAYS_TOPIC, TopicConfig


@dataclass(frozen=True)
class DlqClients:
    """How the dlq commands reach Kafka: None = Kafka clients from `KafkaSettings.from_env()`.

    A given reader/publisher is used for the dead letters and the ledger topic alike (tests
    pass in-memory fakes here).
    """

    reader: TopicReader | None = None
    publisher: Publisher | None = None


def _ref(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+):(\d+)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"--ref {text!r}: expected PARTITION:OFFSET, e.g. 0:42")
    return int(match.group(1)), int(match.group(2))


def _duration_arg(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except DlqError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic", help="dead-letter topic, or a catalog topic to use its .dlq")
    parser.add_argument("--origin-topic", help="only dead letters from this origin topic")
    parser.add_argument("--error-type", help="only this error type (class name or dotted path)")
    parser.add_argument(
        "--reason",
        help="only this reason (decode_error, non_retryable, ...); replay leaves decode_error "
        "out unless it is named here",
    )
    parser.add_argument("--key", help="only this original record key")
    parser.add_argument("--run-id", help="only events whose data.run_id is this")
    parser.add_argument("--older-than", type=_duration_arg, metavar="AGE", help="e.g. 30m")
    parser.add_argument("--newer-than", type=_duration_arg, metavar="AGE", help="e.g. 2h")
    parser.add_argument(
        "--ref", type=_ref, action="append", metavar="P:O", help="only DLQ partition:offset"
    )
    parser.add_argument("--limit", type=int, help="at most this many (oldest first)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to read the topic")
    ledger = parser.add_mutually_exclusive_group()
    ledger.add_argument(
        "--ledger-topic",
        metavar="TOPIC",
        help=f"replay ledger topic (default: the catalog's {DLQ_REPLAYS_TOPIC.name}, shared)",
    )
    ledger.add_argument(
        "--state-file",
        nargs="?",
        const="",
        metavar="FILE",
        help=(
            "use a local replay ledger file instead of the topic (offline/ad-hoc; only protects "
            f"replays using the same file); FILE defaults to ${STATE_FILE_ENV} or XDG state"
        ),
    )
    parser.add_argument("--output", choices=("table", "json"), default="table")


def _where(args: argparse.Namespace) -> DeadLetterFilter:
    return DeadLetterFilter(
        origin_topic=args.origin_topic,
        error_type=args.error_type,
        reason=args.reason,
        key=args.key,
        run_id=args.run_id,
        older_than=args.older_than,
        newer_than=args.newer_than,
        refs=frozenset(args.ref) if args.ref else None,
    )


def select_ledger(
    args: argparse.Namespace, settings: KafkaSettings, clients: DlqClients | None = None
) -> ReplayLedger:
    """`--state-file [FILE]` when given, else `--ledger-topic`, else the catalog's ledger topic."""
    clients = clients or DlqClients()
    if args.state_file is not None:
        return FileReplayLedger(args.state_file or default_state_file())
    name = args.ledger_topic or DLQ_REPLAYS_TOPIC.name
    config = (
        CATALOG.topic(name)
        if name in CATALOG.topic_names
        else TopicConfig(
            name=name,
            partitions=1,
            replication_factor=1,
            key_field="ref",
            event_types=frozenset({DLQ_REPLAYED}),
            kind="log",
        )
    )
    return TopicReplayLedger(
        config,
        settings=settings,
        reader=clients.reader,
        publisher=clients.publisher,
        timeout=args.timeout,
    )


def _short(value: str | None, width: int = 60) -> str:
    text = (value or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


_COLUMNS = ("dlq p:o", "age", "origin", "key", "reason", "error", "message", "tries", "replayed")


def _print_letters(
    letters: Sequence[DeadLetter], ledger: ReplayLedger | None, output: Literal["table", "json"]
) -> None:
    """`replayed` is unknown (null, `?`) when the ledger could not be read."""
    now = datetime.now(UTC)
    if output == "json":
        rows = [
            {**d.to_json(now), "replayed": None if ledger is None else d in ledger} for d in letters
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title=f"{len(letters)} dead letters", show_lines=False)
    for column in _COLUMNS:
        table.add_column(column, overflow="fold")
    for d in letters:
        table.add_row(
            f"{d.partition}:{d.offset}",
            _age(d.age(now)),
            f"{d.origin_topic}[{d.origin_partition}]@{d.origin_offset}",
            _short(text_of(d.origin_key), 24),
            d.reason,
            d.error_type.rsplit(".", 1)[-1],
            _short(d.error_message),
            "" if d.attempts is None else str(d.attempts),
            "?" if ledger is None else "yes" if d in ledger else "",
        )
    Console(width=200).print(table)


def _print_replay(report: ReplayReport) -> None:
    console = Console(width=200, highlight=False)
    for letter in report.already_replayed:
        console.print(f"skip {letter.ref}: already replayed")
    for letter in report.left_out:
        console.print(f"leave {letter.ref}: {letter.reason}", soft_wrap=True)
    if report.left_out:
        reasons = sorted({d.reason for d in report.left_out})
        why = "; ".join(f"{r}: {NOT_FIXED_BY_REPLAY[r]}" for r in reasons)
        console.print(
            f"left out {len(report.left_out)} dead letter(s) a replay cannot fix ({why})",
            soft_wrap=True,
        )
    if report.dry_run:
        for letter in report.to_replay:
            key = text_of(letter.origin_key)
            console.print(f"would replay {letter.ref} -> {letter.origin_topic} key={key}")
        console.print(f"dry run: {len(report.to_replay)} of {len(report.selected)} would be sent")
        return
    for letter, md in report.replayed:
        console.print(f"replayed {letter.ref} -> {md.topic}[{md.partition}]@{md.offset}")
    console.print(f"replayed {len(report.replayed)} of {len(report.selected)} selected")


async def cmd_inspect(args: argparse.Namespace, *, clients: DlqClients) -> ExitCode:
    settings = KafkaSettings.from_env()
    ledger = select_ledger(args, settings, clients)
    shown: ReplayLedger | None = ledger
    try:
        await ledger.load()
    except LedgerTopicMissingError as exc:
        # Inspecting stays read-only and useful without the ledger; replay refuses instead.
        sys.stderr.write(f"warning: {exc}; the replayed column is unknown\n")
        shown = None
    letters = await inspect_dead_letters(
        args.topic,
        settings=settings,
        where=_where(args),
        limit=args.limit,
        timeout=args.timeout,
        reader=clients.reader,
    )
    _print_letters(letters, shown, args.output)
    return ExitCode.OK


async def cmd_replay(args: argparse.Namespace, *, clients: DlqClients) -> ExitCode:
    where = _where(args)
    if where.selects_all and args.limit is None and not (args.all or args.dry_run):
        raise DlqError(
            "dlq replay: select what to replay (--reason, --error-type, --key, --run-id, "
            "--origin-topic, --older-than, --newer-than, --ref, --limit) or pass --all; "
            "see it first with --dry-run"
        )
    settings = KafkaSettings.from_env()
    report = await replay_dead_letters(
        args.topic,
        ledger=select_ledger(args, settings, clients),
        settings=settings,
        where=where,
        dry_run=args.dry_run,
        rate=args.rate,
        limit=args.limit,
        timeout=args.timeout,
        reader=clients.reader,
        publisher=clients.publisher,
    )
    if args.output == "json":
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        _print_replay(report)
    changed = report.to_replay if report.dry_run else report.replayed
    return ExitCode.CHANGES if changed else ExitCode.OK


def add_dlq_parser(
    subparsers: argparse._SubParsersAction[Any], clients: DlqClients | None = None
) -> None:
    """Add `dlq inspect` and `dlq replay` to the `coffeebuddy-kafka` parser."""
    clients = clients or DlqClients()
    dlq = subparsers.add_parser("dlq", help="inspect and replay dead letters")
    leaves = dlq.add_subparsers(dest="dlq_command", required=True)
    inspect = leaves.add_parser(
        "inspect",
        help="list dead letters (read-only, no group)",
        epilog=f"exit codes: {ExitCode.OK} listed, {ExitCode.ERROR} error",
    )
    _filter_options(inspect)
    inspect.set_defaults(func=functools.partial(cmd_inspect, clients=clients))
    replay = leaves.add_parser(
        "replay",
        help="re-publish dead letters to their origin, once (exit 2: sent, or would send)",
        epilog=f"exit codes: {ExitCode.OK} nothing (left) to send, {ExitCode.CHANGES} records "
        f"sent (with --dry-run: would be sent), {ExitCode.ERROR} error (what was sent before it "
        "is in the ledger)",
    )
    _filter_options(replay)
    replay.add_argument("--dry-run", action="store_true", help="show what would be sent")
    replay.add_argument(
        "--all", action="store_true", help="replay every dead letter not yet replayed (no filter)"
    )
    replay.add_argument(
        "--rate", type=float, metavar="MSG_PER_S", help="at most this many per second"
    )
    replay.set_defaults(func=functools.partial(cmd_replay, clients=clients))
