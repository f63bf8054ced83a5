"""Apply exactly a plan's changes, step by step, and report each step's outcome."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from coffeebuddy.infra.kafka.provision._admin import ClusterAdmin, describe_error
from coffeebuddy.infra.kafka.provision._errors import ProvisionError
from coffeebuddy.infra.kafka.provision._exit import ExitCode
from coffeebuddy.infra.kafka.provision._observe import observe
from coffeebuddy.infra.kafka.provision._plan import Change, Plan
from coffeebuddy.infra.kafka.provision._types import (
    SCHEMA_VERSION,
    AclSpec,
    DesiredTopic,
    ObservedState,
)

log = logging.getLogger("coffeebuddy.infra.kafka.provision")

Status = Literal["applied", "failed", "unsupported", "impossible", "skipped"]

ProgressCallback = Callable[[Change], None]


class PlanRefusedError(ProvisionError, RuntimeError):
    """The cluster no longer looks like it did when the plan was made: nothing was applied."""


@dataclass(frozen=True)
class StepResult:
    change: Change
    status: Status
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.change.id,
            "kind": self.change.kind,
            "action": self.change.action,
            "resource": self.change.resource,
            "risk": self.change.risk,
            "reason": self.change.reason,
            "status": self.status,
            "message": self.message,
        }


@dataclass(frozen=True)
class ApplyReport:
    """What apply did with each change of the plan."""

    environment: str
    plan_hash: str
    results: tuple[StepResult, ...]

    def by_status(self, status: Status) -> tuple[StepResult, ...]:
        return tuple(r for r in self.results if r.status == status)

    @property
    def applied(self) -> tuple[StepResult, ...]:
        return self.by_status("applied")

    @property
    def not_applied(self) -> tuple[StepResult, ...]:
        """Failed, unsupported or impossible steps (skipped-by-choice ones are not counted)."""
        return tuple(r for r in self.results if r.status in ("failed", "unsupported", "impossible"))

    @property
    def ok(self) -> bool:
        return not self.not_applied

    @property
    def exit_code(self) -> ExitCode:
        if self.not_applied:
            return ExitCode.PARTIAL
        return ExitCode.CHANGES if self.applied else ExitCode.OK

    def summary(self) -> str:
        counts = {
            s: len(self.by_status(s))
            for s in ("applied", "failed", "unsupported", "impossible", "skipped")
        }
        return ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing to do"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "coffeebuddy-kafka-apply-report",
            "environment": self.environment,
            "plan_hash": self.plan_hash,
            "exit_code": int(self.exit_code),
            "summary": self.summary(),
            "results": [r.to_dict() for r in self.results],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


async def _await_acl_propagation(
    admin: ClusterAdmin, created: set[AclSpec], deleted: set[AclSpec], limit: float = 15.0
) -> None:
    """Wait (bounded) until DescribeAcls shows what was applied.

    KRaft brokers learn ACLs from the metadata log after CreateAcls/DeleteAcls returned: a plan
    made right after apply could list them again, and a service started in that gap was refused
    (seen on Apache Kafka 4.1: `ClusterAuthorizationFailedError` for an idempotent producer).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        problem: str | None = None
        try:
            seen = set(await admin.describe_acls())
        except Exception as exc:  # reported below if it never settles
            seen, problem = set(), describe_error(exc)
        if problem is None and created <= seen and not (deleted & seen):
            return
        if loop.time() >= deadline:
            missing = f"{len(created - seen)} created not seen, {len(deleted & seen)} deleted seen"
            log.warning(
                "ACL changes not visible in DescribeAcls after %.0f s (%s); a plan made now may "
                "list them again",
                limit,
                problem or missing,
            )
            return
        await asyncio.sleep(0.2)  # polling the brokers' metadata, bounded by the deadline


def _blocked_status(change: Change) -> Status:
    assert change.blocked is not None
    if change.risk == "impossible":
        return "impossible"
    if change.blocked.startswith(("broker", "ACLs cannot")):
        return "unsupported"
    return "skipped"


def _topic_from_details(details: Mapping[str, Any]) -> DesiredTopic:
    return DesiredTopic(
        name=str(details["name"]),
        partitions=int(details["partitions"]),
        replication_factor=int(details["replication_factor"]),
        configs={str(k): str(v) for k, v in dict(details.get("configs") or {}).items()},
        key_field=str(details.get("key_field", "")),
    )


def _full_config_set(change: Change, observed: ObservedState) -> dict[str, str]:
    """Legacy AlterConfigs replaces all overrides: keep the ones the catalog does not set."""
    wanted = {str(k): str(v) for k, v in dict(change.details["configs"]).items()}
    topic = observed.topics.get(change.resource)
    kept: dict[str, str] = {}
    if topic is not None and topic.configs is not None:
        for key, cv in topic.configs.items():
            if cv.override and not cv.read_only and cv.value is not None and key not in wanted:
                kept[key] = cv.value
    return {**kept, **wanted}


async def execute_plan(
    admin: ClusterAdmin,
    plan: Plan,
    *,
    acls: bool = True,
    verify: bool = True,
    progress: ProgressCallback | None = None,
) -> ApplyReport:
    """Re-read the cluster, refuse if it changed since `plan`, then run each change once."""
    observed = await observe(admin, plan.scope)
    if verify and observed.digest() != plan.observed_hash:
        raise PlanRefusedError(
            f"cluster state changed since the plan was made (plan saw {plan.observed_hash}, "
            f"now {observed.digest()}): nothing applied; run `coffeebuddy-kafka plan` again"
        )
    results: dict[str, StepResult] = {}
    todo: list[Change] = []
    for change in plan.changes:
        if change.blocked is not None:
            results[change.id] = StepResult(change, _blocked_status(change), change.blocked)
        elif change.kind == "acl" and not acls:
            results[change.id] = StepResult(change, "skipped", "ACLs not managed by this call")
        else:
            todo.append(change)

    def done(change: Change, error: str | None) -> None:
        status: Status = "applied" if error is None else "failed"
        results[change.id] = StepResult(change, status, error or "")
        if progress is not None:
            progress(change)

    async def guarded(changes: list[Change], run: Callable[[], Any]) -> None:
        try:
            await run()
        except Exception as exc:
            for change in changes:
                if change.id not in results:
                    done(change, describe_error(exc))

    creates = [c for c in todo if c.kind == "topic" and c.action == "create"]
    if creates:

        async def create_topics() -> None:
            answers = await admin.create_topics([_topic_from_details(c.details) for c in creates])
            for change in creates:
                done(change, answers.get(change.resource, "no answer"))

        await guarded(creates, create_topics)

    for change in todo:
        if change.id in results:
            continue
        if change.kind == "topic" and change.action == "update_config":

            async def alter(change: Change = change) -> None:
                done(
                    change,
                    await admin.alter_topic_configs(
                        change.resource, _full_config_set(change, observed)
                    ),
                )

            await guarded([change], alter)
        elif change.kind == "topic" and change.action == "add_partitions":

            async def grow(change: Change = change) -> None:
                done(
                    change,
                    await admin.create_partitions(change.resource, int(change.details["desired"])),
                )

            await guarded([change], grow)

    created: set[AclSpec] = set()
    deleted: set[AclSpec] = set()
    acl_groups = (
        ("create", admin.create_acls),
        ("delete", admin.delete_acls),
    )
    for action, call in acl_groups:
        batch = [c for c in todo if c.kind == "acl" and c.action == action]
        if not batch:
            continue

        async def run_acls(
            batch: list[Change] = batch, call: Any = call, action: str = action
        ) -> None:
            specs = [AclSpec.from_dict(c.details) for c in batch]
            answers = await call(specs)
            for change, spec, answer in zip(batch, specs, answers, strict=True):
                done(change, answer)
                if answer is None:
                    (created if action == "create" else deleted).add(spec)

        await guarded(batch, run_acls)
    if created or deleted:
        await _await_acl_propagation(admin, created, deleted)

    deletes = [c for c in todo if c.kind == "topic" and c.action == "delete"]
    if deletes:

        async def delete_topics() -> None:
            answers = await admin.delete_topics([c.resource for c in deletes])
            for change in deletes:
                done(change, answers.get(change.resource, "no answer"))

        await guarded(deletes, delete_topics)

    ordered = tuple(results[c.id] for c in plan.changes)
    return ApplyReport(environment=plan.environment, plan_hash=plan.plan_hash, results=ordered)
