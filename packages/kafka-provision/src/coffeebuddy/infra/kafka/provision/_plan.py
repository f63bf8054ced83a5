"""Diff the desired state against the observed cluster into a risk-rated, hashed plan."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from coffeebuddy.infra.kafka.provision._admin import (
    API_ALTER_CONFIGS,
    API_CREATE_PARTITIONS,
    unsupported_api,
)
from coffeebuddy.infra.kafka.provision._normalize import (
    ConfigValueError,
    normalize_config_value,
    values_equal,
)
from coffeebuddy.infra.kafka.provision._types import (
    SCHEMA_VERSION,
    AclSpec,
    DesiredState,
    ObservedState,
    sha256_of,
)

Risk = Literal["safe", "disruptive", "destructive", "impossible"]
RISK_ORDER: Mapping[str, int] = {"safe": 0, "disruptive": 1, "destructive": 2, "impossible": 3}
PLAN_KIND = "coffeebuddy-kafka-plan"

_PHASES = {
    ("topic", "create"): 0,
    ("topic", "update_config"): 1,
    ("topic", "add_partitions"): 2,
    ("topic", "impossible"): 3,
    ("acl", "create"): 4,
    ("acl", "delete"): 5,
    ("topic", "delete"): 6,
}


class PlanFileError(ValueError):
    """A plan file that cannot be used: unreadable, wrong kind/version, or edited after hashing."""


@dataclass(frozen=True)
class Scope:
    """Which cluster names a plan looked at; apply re-reads exactly these to detect changes."""

    topics: tuple[str, ...]
    prefixes: tuple[str, ...]
    principals: tuple[str, ...]
    include_acls: bool = True

    def owns_topic(self, name: str) -> bool:
        if name.startswith("_"):
            return False
        return name in self.topics or any(name.startswith(p) for p in self.prefixes if p)

    def to_dict(self) -> dict[str, Any]:
        return {
            "topics": list(self.topics),
            "prefixes": list(self.prefixes),
            "principals": list(self.principals),
            "include_acls": self.include_acls,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scope:
        return cls(
            topics=tuple(data["topics"]),
            prefixes=tuple(data["prefixes"]),
            principals=tuple(data["principals"]),
            include_acls=bool(data["include_acls"]),
        )

    @classmethod
    def of(cls, desired: DesiredState, *, include_acls: bool = True) -> Scope:
        return cls(
            topics=tuple(sorted(t.name for t in desired.topics)),
            prefixes=tuple(sorted(desired.managed_prefixes)),
            principals=tuple(sorted(desired.principals)) if include_acls else (),
            include_acls=include_acls,
        )


@dataclass(frozen=True)
class Change:
    """One step of a plan. `blocked` says why apply will not perform it (flag, broker, physics)."""

    id: str
    kind: Literal["topic", "acl"]
    action: str
    resource: str
    risk: Risk
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""
    blocked: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "action": self.action,
            "resource": self.resource,
            "risk": self.risk,
            "summary": self.summary,
            "details": _jsonable(self.details),
            "reason": self.reason,
            "blocked": self.blocked,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Change:
        return cls(
            id=str(data["id"]),
            kind=data["kind"],
            action=str(data["action"]),
            resource=str(data["resource"]),
            risk=data["risk"],
            summary=str(data["summary"]),
            details=dict(data.get("details") or {}),
            reason=str(data.get("reason", "")),
            blocked=data.get("blocked"),
        )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


@dataclass(frozen=True)
class Plan:
    """A reviewable plan: apply performs exactly its changes, if the cluster still matches."""

    environment: str
    changes: tuple[Change, ...]
    notes: tuple[str, ...]
    desired_hash: str
    observed_hash: str
    cluster_id: str | None
    scope: Scope
    allow_delete: bool = False
    allow_destructive: bool = False

    @property
    def actionable(self) -> tuple[Change, ...]:
        """Changes apply will attempt (not blocked)."""
        return tuple(c for c in self.changes if c.blocked is None)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(RISK_ORDER, 0)
        for change in self.changes:
            out[change.risk] += 1
        out["blocked"] = sum(1 for c in self.changes if c.blocked is not None)
        return out

    def body(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": PLAN_KIND,
            "environment": self.environment,
            "cluster_id": self.cluster_id,
            "desired_hash": self.desired_hash,
            "observed_hash": self.observed_hash,
            "options": {
                "allow_delete": self.allow_delete,
                "allow_destructive": self.allow_destructive,
            },
            "scope": self.scope.to_dict(),
            "summary": self.counts(),
            "changes": [c.to_dict() for c in self.changes],
            "notes": list(self.notes),
        }

    @property
    def plan_hash(self) -> str:
        return sha256_of(self.body())

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "plan_hash": self.plan_hash}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_markdown(self) -> str:
        """A review comment for a change request: one table row per change, then the notes."""

        def cell(text: str) -> str:
            return text.replace("|", "\\|").replace("\n", " ")

        lines = [
            f"### coffeebuddy-kafka plan: {self.environment}",
            "",
            f"`plan_hash` {self.plan_hash}  ",
            f"`observed_hash` {self.observed_hash}  ",
            f"`desired_hash` {self.desired_hash}",
            "",
        ]
        if not self.changes:
            lines.append("No changes: the cluster matches the catalog.")
        else:
            lines += [
                "| risk | kind | action | resource | change | from | will not apply because |",
                "| --- | --- | --- | --- | --- | --- | --- |",
            ]
            lines += [
                "| "
                + " | ".join(
                    cell(v)
                    for v in (
                        c.risk,
                        c.kind,
                        c.action,
                        c.resource,
                        c.summary,
                        c.reason,
                        c.blocked or "",
                    )
                )
                + " |"
                for c in self.changes
            ]
        lines += ["", *(f"- note: {cell(n)}" for n in self.notes)]
        return "\n".join(lines).rstrip() + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "plan") -> Plan:
        if data.get("kind") != PLAN_KIND:
            raise PlanFileError(
                f"{source}: not a coffeebuddy-kafka plan (kind={data.get('kind')!r})"
            )
        if data.get("schema_version") != SCHEMA_VERSION:
            raise PlanFileError(
                f"{source}: schema_version {data.get('schema_version')!r} is not "
                f"{SCHEMA_VERSION}; re-run `coffeebuddy-kafka plan`"
            )
        try:
            options = data["options"]
            plan = cls(
                environment=str(data["environment"]),
                changes=tuple(Change.from_dict(c) for c in data["changes"]),
                notes=tuple(str(n) for n in data["notes"]),
                desired_hash=str(data["desired_hash"]),
                observed_hash=str(data["observed_hash"]),
                cluster_id=data.get("cluster_id"),
                scope=Scope.from_dict(data["scope"]),
                allow_delete=bool(options["allow_delete"]),
                allow_destructive=bool(options["allow_destructive"]),
            )
        except (KeyError, TypeError) as exc:
            raise PlanFileError(f"{source}: missing or malformed field {exc}") from exc
        if data.get("plan_hash") != plan.plan_hash:
            raise PlanFileError(
                f"{source}: plan_hash does not match its content (edited after it was made?)"
            )
        return plan

    @classmethod
    def load(cls, path: Path) -> Plan:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise PlanFileError(f"{path}: cannot read plan file ({exc.strerror})") from exc
        except json.JSONDecodeError as exc:
            raise PlanFileError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from exc
        if not isinstance(data, dict):
            raise PlanFileError(f"{path}: expected a JSON object")
        return cls.from_dict(data, source=str(path))


def _config_risk(key: str, current: str | None, desired: str) -> tuple[Risk, str]:
    """Why a config change may hurt: shorter retention deletes data, stricter ISR blocks writes."""
    try:
        if key in ("retention.ms", "retention.bytes") and current is not None:
            cur = int(normalize_config_value(key, current))
            new = int(desired)
            if new != -1 and (cur == -1 or new < cur):
                return "destructive", "records beyond the shorter retention are deleted"
        if key == "min.insync.replicas" and current is not None and int(desired) > int(current):
            return "disruptive", "acks=all producers fail while fewer replicas are in sync"
    except (ValueError, ConfigValueError):
        return "disruptive", "value not comparable"
    if key == "cleanup.policy":
        return "disruptive", "changes how old records are removed"
    return "safe", ""


def _max_risk(risks: Sequence[Risk]) -> Risk:
    return max(risks, key=lambda r: RISK_ORDER[r]) if risks else "safe"


def _acl_id(acl: AclSpec, action: str) -> str:
    return "acl/" + "/".join(acl.identity) + "/" + action


def diff(
    desired: DesiredState,
    observed: ObservedState,
    *,
    allow_delete: bool = False,
    allow_destructive: bool = False,
    include_acls: bool = True,
) -> Plan:
    """Pure planning: what must change for the cluster to match the catalog, rated by risk."""
    scope = Scope.of(desired, include_acls=include_acls)
    changes: list[Change] = []
    notes: list[str] = []
    versions = observed.api_versions

    for topic in desired.topics:
        current = observed.topics.get(topic.name)
        if current is None:
            changes.append(
                Change(
                    id=f"topic/{topic.name}/create",
                    kind="topic",
                    action="create",
                    resource=topic.name,
                    risk="safe",
                    summary=(
                        f"create topic {topic.name}: {topic.partitions} partitions, "
                        f"replication {topic.replication_factor}, {len(topic.configs)} configs"
                    ),
                    details=topic.to_dict(),
                )
            )
            continue
        if current.partitions > topic.partitions:
            changes.append(
                Change(
                    id=f"topic/{topic.name}/partitions",
                    kind="topic",
                    action="impossible",
                    resource=topic.name,
                    risk="impossible",
                    summary=(
                        f"{topic.name} has {current.partitions} partitions, catalog wants "
                        f"{topic.partitions}: Kafka cannot remove partitions (migrate to a new "
                        "topic, or raise the catalog value)"
                    ),
                    details={"current": current.partitions, "desired": topic.partitions},
                    blocked="impossible: Kafka cannot decrease partitions",
                )
            )
        elif current.partitions < topic.partitions:
            keyed = topic.keyed
            changes.append(
                Change(
                    id=f"topic/{topic.name}/partitions",
                    kind="topic",
                    action="add_partitions",
                    resource=topic.name,
                    risk="disruptive" if keyed else "safe",
                    summary=(
                        f"add partitions to {topic.name}: "
                        f"{current.partitions} -> {topic.partitions}"
                        + (
                            f" (keyed by {topic.key_field}: keys move to other partitions, "
                            "per-key order breaks across the change)"
                            if keyed
                            else ""
                        )
                    ),
                    details={
                        "current": current.partitions,
                        "desired": topic.partitions,
                        "key_field": topic.key_field,
                    },
                    blocked=(
                        None
                        if API_CREATE_PARTITIONS in versions
                        else unsupported_api(API_CREATE_PARTITIONS)
                    ),
                )
            )
        if current.replication_factor != topic.replication_factor:
            changes.append(
                Change(
                    id=f"topic/{topic.name}/replication",
                    kind="topic",
                    action="impossible",
                    resource=topic.name,
                    risk="impossible",
                    summary=(
                        f"{topic.name} has replication factor {current.replication_factor}, "
                        f"catalog wants {topic.replication_factor}: needs a partition "
                        "reassignment (kafka-reassign-partitions.sh), not done by this tool"
                    ),
                    details={
                        "current": current.replication_factor,
                        "desired": topic.replication_factor,
                    },
                    blocked="impossible: replication factor changes need a reassignment",
                )
            )
        if not topic.configs:
            continue
        if current.configs is None:
            notes.append(
                f"configs of {topic.name} unknown: the broker answered DescribeConfigs "
                "without entries; not compared (not counted as drift)"
            )
            continue
        diffs: list[dict[str, Any]] = []
        risks: list[Risk] = []
        unknown: list[str] = []
        for key in sorted(topic.configs):
            want = topic.configs[key]
            have = current.configs.get(key)
            if have is None or have.value is None:
                unknown.append(key)
                continue
            if values_equal(key, have.value, want):
                continue
            risk, why = _config_risk(key, have.value, want)
            risks.append(risk)
            diffs.append(
                {"key": key, "current": have.value, "desired": want, "risk": risk, "why": why}
            )
        if unknown:
            notes.append(
                f"configs of {topic.name} not reported by the broker: {', '.join(unknown)} "
                "(unknown, not compared)"
            )
        if diffs:
            risk = _max_risk(risks)
            blocked: str | None = None
            if API_ALTER_CONFIGS not in versions:
                blocked = unsupported_api(API_ALTER_CONFIGS)
            elif risk == "destructive" and not allow_destructive:
                blocked = "destructive: pass --allow-destructive to apply"
            changes.append(
                Change(
                    id=f"topic/{topic.name}/config",
                    kind="topic",
                    action="update_config",
                    resource=topic.name,
                    risk=risk,
                    summary=f"update {topic.name}: "
                    + ", ".join(f"{d['key']} {d['current']} -> {d['desired']}" for d in diffs),
                    details={"diff": diffs, "configs": dict(sorted(topic.configs.items()))},
                    blocked=blocked,
                )
            )

    extras = [
        n for n in sorted(observed.topics) if desired.topic(n) is None and desired.owns_topic(n)
    ]
    changes.extend(
        Change(
            id=f"topic/{name}/delete",
            kind="topic",
            action="delete",
            resource=name,
            risk="destructive",
            summary=f"delete topic {name} (managed name, not in the catalog): data is lost",
            details={"partitions": observed.topics[name].partitions},
            blocked=None if allow_delete else "not allowed: pass --allow-delete",
        )
        for name in extras
    )

    if include_acls:
        changes.extend(_acl_changes(desired, observed, notes, allow_delete=allow_delete))

    changes.sort(key=lambda c: (_PHASES.get((c.kind, c.action), 9), c.id))
    return Plan(
        environment=desired.environment,
        changes=tuple(changes),
        notes=tuple(notes),
        desired_hash=desired.digest(),
        observed_hash=observed.digest(),
        cluster_id=observed.cluster_id,
        scope=scope,
        allow_delete=allow_delete,
        allow_destructive=allow_destructive,
    )


def _acl_changes(
    desired: DesiredState, observed: ObservedState, notes: list[str], *, allow_delete: bool
) -> list[Change]:
    out: list[Change] = []
    wanted = {a.identity: a for a in desired.acls}
    if observed.acls is None:
        have: dict[tuple[str, str, str, str, str, str, str], AclSpec] = {}
        notes.append(
            f"ACLs could not be read ({observed.acl_problem}); all {len(wanted)} catalog "
            "bindings are listed as creates"
        )
    else:
        have = {a.identity: a for a in observed.acls if desired.owns_acl(a)}
    for identity in sorted(set(wanted) - set(have)):
        acl = wanted[identity]
        out.append(
            Change(
                id=_acl_id(acl, "create"),
                kind="acl",
                action="create",
                resource=f"{acl.resource_type} {acl.resource_name}",
                risk="safe",
                summary=f"allow {acl.principal} {acl.operation} on {acl.resource_type} "
                f"{acl.resource_name}",
                details=acl.to_dict(),
                reason=acl.reason,
                blocked=observed.acl_problem,
            )
        )
    for identity in sorted(set(have) - set(wanted)):
        acl = have[identity]
        out.append(
            Change(
                id=_acl_id(acl, "delete"),
                kind="acl",
                action="delete",
                resource=f"{acl.resource_type} {acl.resource_name}",
                risk="disruptive",
                summary=f"remove {acl.describe()}: the catalog no longer grants it",
                details=acl.to_dict(),
                reason=f"{acl.principal} is a catalog principal; binding not in the catalog",
                blocked=observed.acl_problem
                or (None if allow_delete else "not allowed: pass --allow-delete"),
            )
        )
    return out


def without_acls(plan: Plan) -> Plan:
    """The same plan with ACL steps dropped (callers that manage topics only)."""
    return replace(plan, changes=tuple(c for c in plan.changes if c.kind != "acl"))
