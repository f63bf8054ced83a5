"""Human output of `coffeebuddy-kafka`: the plan and apply report as rich tables."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from coffeebuddy.infra.kafka.provision._apply import ApplyReport, Status
from coffeebuddy.infra.kafka.provision._plan import Change, Plan

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


def rich_console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=None if stream.isatty() else 160, highlight=False)


def _risk(change: Change) -> str:
    return f"[{_RISK_STYLE.get(change.risk, '')}]{change.risk}[/]"


def print_plan(plan: Plan, console: Console) -> None:
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


def print_report(report: ApplyReport, console: Console) -> None:
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
