"""`coffeebuddy-kafka`: the parser, the entry point and the error-to-exit-code mapping.

Commands: validate, render, plan, apply, drift (`_commands`), `dlq inspect|replay`
(`coffeebuddy.infra.kafka.provision.dlq`) and `events tail|publish`
(`coffeebuddy.infra.kafka.provision.events`), all sharing one exit-code table (`ExitCode`).
Every parser takes `-v/--verbose` (third-party log lines are hidden without it: `_logs`) and
the top one `--version`.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from rich.console import Console

from coffeebuddy.infra.kafka.config import KafkaSettingsError
from coffeebuddy.infra.kafka.provision._apply import PlanRefusedError
from coffeebuddy.infra.kafka.provision._catalog import ENVIRONMENTS
from coffeebuddy.infra.kafka.provision._commands import (
    cmd_apply,
    cmd_drift,
    cmd_plan,
    cmd_render,
    cmd_validate,
)
from coffeebuddy.infra.kafka.provision._exit import ExitCode, exit_code_table
from coffeebuddy.infra.kafka.provision._logs import cli_logging
from coffeebuddy.infra.kafka.provision._plan import PlanFileError
from coffeebuddy.infra.kafka.provision._tables import rich_console
from coffeebuddy.infra.kafka.provision._version import __version__
from coffeebuddy.infra.kafka.provision.dlq._cli import DlqClients, add_dlq_parser
from coffeebuddy.infra.kafka.provision.events._cli import add_events_parser
from coffeebuddy.infra.kafka.provision.reminders._cli import add_reminders_parser


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1: exit 2 means "changes" for this tool.

    Every parser (sub-commands are made with this class too) accepts `-v/--verbose`, so it may
    come before or after the command; only the top parser gives it a default.
    """

    def __init__(self, *args: Any, verbose_default: Any = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            default=verbose_default,
            help="also show library log lines (aiokafka's connection errors, ...)",
        )

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitCode.ERROR, f"{self.prog}: error: {message}\n")


def _cluster_options(
    parser: argparse.ArgumentParser, *, deletes: bool = True, markdown: bool = False
) -> None:
    parser.add_argument("--env", choices=ENVIRONMENTS, help="environment (default dev)")
    parser.add_argument(
        "--managed-prefix",
        action="append",
        metavar="PREFIX",
        help="topics under this prefix are owned by the catalog (default: its common prefix)",
    )
    parser.add_argument("--no-acls", action="store_true", help="leave ACLs out of the plan")
    outputs = ("text", "json", "markdown") if markdown else ("text", "json")
    parser.add_argument("--output", choices=outputs, default="text")
    if deletes:
        parser.add_argument(
            "--allow-delete",
            action="store_true",
            help="delete managed topics/ACLs the catalog no longer has",
        )
        parser.add_argument(
            "--allow-destructive",
            action="store_true",
            help="apply config changes that delete data (shorter retention)",
        )


def build_parser(*, dlq_clients: DlqClients | None = None) -> argparse.ArgumentParser:
    """The whole CLI; `dlq_clients` replaces the Kafka clients of the dlq commands (tests)."""
    parser = _Parser(
        prog="coffeebuddy-kafka",
        description="Topics and ACLs as code (validate, render, plan, apply, drift), "
        "dead-letter inspect/replay (dlq) and reading/writing events (events tail|publish).",
        epilog="exit codes (every command):\n" + exit_code_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        verbose_default=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("validate", help="offline catalog validation (no cluster)")
    p.add_argument("--env", action="append", choices=ENVIRONMENTS, help="default: all")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("render", help="write manifests (ours, Terraform JSON, Strimzi) per env")
    p.add_argument("--env", action="append", choices=ENVIRONMENTS, help="default: all")
    p.add_argument(
        "--out", default="infra/kafka", help="folder holding <env>/ (default infra/kafka)"
    )
    p.add_argument("--strimzi-cluster", help="strimzi.io/cluster label (default coffeebuddy-<env>)")
    p.add_argument("--check", action="store_true", help="exit 2 when checked-in files are stale")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("plan", help="read the cluster and show a risk-rated plan")
    _cluster_options(p, markdown=True)
    p.add_argument("--out", help="write the plan JSON to this file (for apply --plan)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("apply", help="apply a reviewed plan file (or plan+apply with --yes)")
    _cluster_options(p)
    p.add_argument("--plan", help="plan file from `plan --out`; refused if the cluster changed")
    p.add_argument("--yes", action="store_true", help="without --plan: plan and apply at once")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("drift", help="exit 2 when the cluster differs from the catalog (CI/cron)")
    _cluster_options(p, deletes=False)
    p.set_defaults(func=cmd_drift)

    add_dlq_parser(sub, dlq_clients)
    add_events_parser(sub)
    add_reminders_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None, *, dlq_clients: DlqClients | None = None) -> int:
    """Console-script entry point; returns the exit code (`ExitCode`)."""
    parser = build_parser(dlq_clients=dlq_clients)
    args = parser.parse_args(argv)
    err = rich_console(stderr=True)
    try:
        with cli_logging(args.verbose):
            result = args.func(args)
            if inspect.isawaitable(result):
                result = asyncio.run(_await(result))
        return int(result)
    except KeyboardInterrupt:
        return 130
    except (PlanRefusedError, PlanFileError) as exc:
        return _fail(args, err, ExitCode.REFUSED, "refused", str(exc))
    except KafkaSettingsError as exc:
        return _fail(args, err, ExitCode.ERROR, "error", str(exc))
    except (ValueError, OSError) as exc:
        return _fail(args, err, ExitCode.ERROR, "error", str(exc))
    except Exception as exc:
        return _fail(args, err, ExitCode.ERROR, "error", f"{type(exc).__name__}: {exc}")


def _fail(args: argparse.Namespace, err: Console, code: int, label: str, message: str) -> int:
    """Explain on stderr; with `--output json` also give machines a JSON object on stdout."""
    err.print(f"[red]{label}:[/] {message}", soft_wrap=True)
    if getattr(args, "output", None) == "json":
        body = {"kind": "coffeebuddy-kafka-error", "exit_code": code, label: message}
        sys.stdout.write(json.dumps(body, indent=2, sort_keys=True) + "\n")
    return code


async def _await(result: Any) -> Any:
    return await result
