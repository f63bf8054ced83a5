"""The plan: risk-rated changes with their scope, hashes and file format (`diff` makes one)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from coffeebuddy.infra.kafka.provision._errors import ProvisionError
from coffeebuddy.infra.kafka.provision._types import (
    SCHEMA_VERSION,
    DesiredState,
    sha256_of,
)

Risk = Literal["safe", "disruptive", "destructive", "impossible"]
RISK_ORDER: Mapping[str, int] = {"safe": 0, "disruptive": 1, "destructive": 2, "impossible": 3}
PLAN_KIND = "coffeebuddy-kafka-plan"


class PlanFileError(ProvisionError, ValueError):
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
