"""`coffeebuddy-kafka`: validate, render, plan, apply, drift (and `dlq` from `_dlq.py`).

Sub-command hook: `coffeebuddy.infra.kafka.provision._dlq` may define
`register(subparsers: argparse._SubParsersAction) -> None`. It adds its own parser
(`subparsers.add_parser("dlq", ...)`) and sets `func=` on each leaf parser: a callable taking
the parsed `argparse.Namespace` and returning an exit code (an `int`, or an awaitable of one,
which the CLI runs with `asyncio.run`). The CLI wires it in when the function exists.

Exit codes: 0 nothing to do / in sync, 1 error (bad input, invalid catalog, unreachable
cluster), 2 changes applied (apply) or differences found (plan, drift, render --check),
3 refused (cluster changed since the plan, unusable plan file), 4 partially applied
(some changes failed, are unsupported by the broker, or impossible).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.table import Table

from coffeebuddy.infra.kafka.config import KafkaSettings, KafkaSettingsError
from coffeebuddy.infra.kafka.provision._api import (
    apply_plan,
    build_plan,
    detect_drift,
    render_manifests,
    stale_manifests,
    validate,
)
from coffeebuddy.infra.kafka.provision._apply import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_REFUSED,
    ApplyReport,
    PlanRefusedError,
    Status,
)
from coffeebuddy.infra.kafka.provision._catalog import ENVIRONMENTS
from coffeebuddy.infra.kafka.provision._plan import Change, Plan, PlanFileError

_RISK_STYLE = {
    "safe": "green",
    "disruptive": "yellow",
    "destructive": "red",
    "impossible": "bold red",
}
_STATUS_STYLE = {
    "applied": "green",
    "failed": "red",
    "unsupported": "red",
    "impossible": "bold red",
    "skipped": "dim",
}


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1: exit 2 means "changes" for this tool."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=None if stream.isatty() else 160, highlight=False)


def _risk(change: Change) -> str:
    return f"[{_RISK_STYLE.get(change.risk, '')}]{change.risk}[/]"


def _print_plan(plan: Plan, console: Console) -> None:
    """Topics table, ACL table (each ACL with the service -> role -> topic it comes from), notes."""
    topics = [c for c in plan.changes if c.kind == "topic"]
    acls = [c for c in plan.changes if c.kind == "acl"]
    if topics:
        table = Table(title=f"topics ({plan.environment})")
        for column in ("risk", "action", "topic", "change", "will not apply because"):
            table.add_column(column, overflow="fold")
        for change in topics:
            table.add_row(
                _risk(change), change.action, change.resource, change.summary, change.blocked or ""
            )
        console.print(table)
    if acls:
        common = {c.blocked for c in acls}
        shared = next(iter(common)) if len(common) == 1 else None
        table = Table(title=f"ACL bindings ({plan.environment})")
        columns = ["risk", "action", "principal", "operation", "resource", "from"]
        if shared is None:
            columns.append("will not apply because")
        for column in columns:
            table.add_column(column, overflow="fold")
        for change in acls:
            row = [
                _risk(change),
                change.action,
                str(change.details.get("principal", "")),
                str(change.details.get("operation", "")),
                change.resource,
                change.reason,
            ]
            if shared is None:
                row.append(change.blocked or "")
            table.add_row(*row)
        console.print(table)
        if shared is not None:
            console.print(f"[red]{shared}: {len(acls)} ACL binding(s) will NOT be applied[/]")
    if plan.changes:
        counts = plan.counts()
        risks = ", ".join(
            f"{counts[r]} {r}" for r in ("safe", "disruptive", "destructive", "impossible")
        )
        console.print(
            f"{len(plan.changes)} change(s): {risks}; {counts['blocked']} will not be applied"
        )
    else:
        console.print("No changes: the cluster matches the catalog.")
    for note in plan.notes:
        console.print(f"note: {note}")
    console.print(f"plan_hash {plan.plan_hash}", soft_wrap=True)
    console.print(f"observed  {plan.observed_hash}", soft_wrap=True)


def _print_report(report: ApplyReport, console: Console) -> None:
    """One row per change; a reason shared by many ACL rows is printed once below the table."""
    acl_messages = {r.message for r in report.not_applied if r.change.kind == "acl"}
    shared = next(iter(acl_messages)) if len(acl_messages) == 1 else None
    if report.results:
        table = Table(title=f"apply {report.environment}")
        for column in ("status", "risk", "action", "resource", "from", "message"):
            table.add_column(column, overflow="fold")
        for result in report.results:
            change = result.change
            message = result.message
            if shared is not None and message == shared:
                message = "see below"
            table.add_row(
                f"[{_STATUS_STYLE.get(result.status, '')}]{result.status}[/]",
                change.risk,
                f"{change.kind} {change.action}",
                change.resource,
                change.reason,
                message,
            )
        console.print(table)
    statuses: tuple[Status, ...] = ("unsupported", "failed")
    for status in statuses:
        grouped: dict[str, int] = {}
        for result in report.by_status(status):
            if result.change.kind == "acl":
                grouped[result.message] = grouped.get(result.message, 0) + 1
        for message, count in grouped.items():
            console.print(f"[red]{message}: {count} ACL binding(s) NOT applied[/]")
    console.print(f"result: {report.summary()} (exit {report.exit_code})")


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _load_settings() -> KafkaSettings:
    return KafkaSettings.from_env()


def _envs(args: argparse.Namespace) -> list[str]:
    return list(args.env) if args.env else list(ENVIRONMENTS)


def cmd_validate(args: argparse.Namespace) -> int:
    failed = False
    for env in _envs(args):
        problems = validate(None, env)
        if problems:
            failed = True
            print(f"{env}: {len(problems)} problem(s)")
            for problem in problems:
                print(f"  - {problem}")
        else:
            print(f"{env}: catalog valid")
    return EXIT_ERROR if failed else EXIT_OK


def cmd_render(args: argparse.Namespace) -> int:
    out = Path(args.out)
    envs = _envs(args)
    if args.check:
        stale = stale_manifests(out, envs=envs)
        for env, names in stale.items():
            print(f"{out / env}: out of date: {', '.join(names)}; run coffeebuddy-kafka render")
        if not stale:
            print(f"{out}: manifests match the catalog")
        return EXIT_CHANGES if stale else EXIT_OK
    render_manifests(envs=envs, out=out, strimzi_cluster=args.strimzi_cluster)
    for env in envs:
        print(f"rendered {out / env}")
    return EXIT_OK


async def cmd_plan(args: argparse.Namespace) -> int:
    plan = await build_plan(
        _load_settings(),
        None,
        args.env or "dev",
        allow_delete=args.allow_delete,
        allow_destructive=args.allow_destructive,
        managed_prefixes=args.managed_prefix or None,
        acls=not args.no_acls,
    )
    if args.out:
        _write(Path(args.out), plan.to_json())
    if args.output == "json":
        sys.stdout.write(plan.to_json())
    elif args.output == "markdown":
        sys.stdout.write(plan.to_markdown())
    else:
        _print_plan(plan, _console())
        if args.out:
            print(f"plan written to {args.out}: review it, then apply with --plan {args.out}")
    return EXIT_CHANGES if plan.has_changes else EXIT_OK


async def cmd_apply(args: argparse.Namespace) -> int:
    settings = _load_settings()
    if args.plan:
        plan = Plan.load(Path(args.plan))
        if args.env and args.env != plan.environment:
            raise PlanFileError(f"{args.plan}: plan is for {plan.environment!r}, not {args.env!r}")
    else:
        if not args.yes:
            raise ValueError(
                "apply needs --plan FILE (a reviewed plan) or --yes to plan and apply now"
            )
        plan = await build_plan(
            settings,
            None,
            args.env or "dev",
            allow_delete=args.allow_delete,
            allow_destructive=args.allow_destructive,
            managed_prefixes=args.managed_prefix or None,
            acls=not args.no_acls,
        )
    human = args.output != "json"
    console = _console()
    if human:
        _print_plan(plan, console)
    progress_console = _console(stderr=True)
    if human and progress_console.is_terminal and plan.actionable:
        from rich.progress import Progress

        with Progress(console=progress_console, transient=True) as bar:
            task = bar.add_task("applying", total=len(plan.actionable))
            report = await apply_plan(
                settings, plan, acls=not args.no_acls, progress=lambda _c: bar.advance(task)
            )
    else:
        report = await apply_plan(settings, plan, acls=not args.no_acls)
    if human:
        _print_report(report, console)
    else:
        sys.stdout.write(report.to_json())
    return report.exit_code


async def cmd_drift(args: argparse.Namespace) -> int:
    plan = await detect_drift(
        _load_settings(),
        None,
        args.env or "dev",
        managed_prefixes=args.managed_prefix or None,
        acls=not args.no_acls,
    )
    if args.output == "json":
        body = plan.to_dict()
        body["drift"] = plan.has_changes
        sys.stdout.write(json.dumps(body, indent=2, sort_keys=True) + "\n")
    else:
        console = _console()
        if plan.changes:
            console.print(f"[red]drift in {plan.environment}: {len(plan.changes)} difference(s)[/]")
        _print_plan(plan, console)
    return EXIT_CHANGES if plan.has_changes else EXIT_OK


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="coffeebuddy-kafka",
        description="Topics and ACLs as code: validate, render, plan, apply, drift.",
        epilog="exit codes: 0 nothing to do, 1 error, 2 changes applied/found, 3 refused, "
        "4 partially applied",
    )
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

    _register_plugins(sub)
    return parser


def _register_plugins(sub: Any) -> None:
    """Wire `_dlq.register`; a broken dlq module must not take plan/apply down with it."""
    try:
        from coffeebuddy.infra.kafka.provision import _dlq

        register: Callable[[Any], None] | None = getattr(_dlq, "register", None)
    except Exception as exc:
        problem = f"the dlq commands failed to load: {type(exc).__name__}: {exc}"

        def unavailable(_args: argparse.Namespace) -> int:
            print(f"error: {problem}", file=sys.stderr)
            return EXIT_ERROR

        broken = sub.add_parser("dlq", help="dead-letter tools (failed to load)")
        broken.set_defaults(func=unavailable)
        return
    if register is not None:
        register(sub)


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    err = _console(stderr=True)
    try:
        result = args.func(args)
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
        return int(result)
    except (PlanRefusedError, PlanFileError) as exc:
        return _fail(args, err, EXIT_REFUSED, "refused", str(exc))
    except KafkaSettingsError as exc:
        return _fail(args, err, EXIT_ERROR, "error", str(exc))
    except (ValueError, OSError) as exc:
        return _fail(args, err, EXIT_ERROR, "error", str(exc))
    except Exception as exc:
        return _fail(args, err, EXIT_ERROR, "error", f"{type(exc).__name__}: {exc}")


def _fail(args: argparse.Namespace, err: Console, code: int, label: str, message: str) -> int:
    """Explain on stderr; with `--output json` also give machines a JSON object on stdout."""
    err.print(f"[red]{label}:[/] {message}", soft_wrap=True)
    if getattr(args, "output", None) == "json":
        body = {"kind": "coffeebuddy-kafka-error", "exit_code": code, label: message}
        sys.stdout.write(json.dumps(body, indent=2, sort_keys=True) + "\n")
    return code


async def _await(result: Any) -> Any:
    return await result


__all__ = [
    "EXIT_CHANGES",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_REFUSED",
    "build_parser",
    "main",
]
