"""Pure planning: diff the desired state against the observed cluster into a risk-rated plan."""

from __future__ import annotations

from collections.abc import Sequence
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
from coffeebuddy.infra.kafka.provision._plan import RISK_ORDER, Change, Plan, Risk, Scope
from coffeebuddy.infra.kafka.provision._types import AclSpec, DesiredState, ObservedState
from coffeebuddy.infra.kafka.topics import AclIdentity

#: Apply order: creates before updates, deletes last.
_PHASES = {
    ("topic", "create"): 0,
    ("topic", "update_config"): 1,
    ("topic", "add_partitions"): 2,
    ("topic", "impossible"): 3,
    ("acl", "create"): 4,
    ("acl", "delete"): 5,
    ("topic", "delete"): 6,
}


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


def _acl_change(
    acl: AclSpec,
    action: Literal["create", "delete"],
    summary: str,
    reason: str,
    blocked: str | None,
) -> Change:
    """Creating a binding is safe; removing one is disruptive (its user loses access)."""
    return Change(
        id=_acl_id(acl, action),
        kind="acl",
        action=action,
        resource=f"{acl.resource_type} {acl.resource_name}",
        risk="safe" if action == "create" else "disruptive",
        summary=summary,
        details=acl.to_dict(),
        reason=reason,
        blocked=blocked,
    )


def _acl_changes(
    desired: DesiredState, observed: ObservedState, notes: list[str], *, allow_delete: bool
) -> list[Change]:
    out: list[Change] = []
    wanted = {a.identity: a for a in desired.acls}
    if observed.acls is None:
        have: dict[AclIdentity, AclSpec] = {}
        notes.append(
            f"ACLs could not be read ({observed.acl_problem}); all {len(wanted)} catalog "
            "bindings are listed as creates"
        )
    else:
        have = {a.identity: a for a in observed.acls if desired.owns_acl(a)}
    for identity in sorted(set(wanted) - set(have)):
        acl = wanted[identity]
        summary = (
            f"allow {acl.principal} {acl.operation} on {acl.resource_type} {acl.resource_name}"
        )
        out.append(_acl_change(acl, "create", summary, acl.reason, observed.acl_problem))
    for identity in sorted(set(have) - set(wanted)):
        acl = have[identity]
        out.append(
            _acl_change(
                acl,
                "delete",
                f"remove {acl.describe()}: the catalog no longer grants it",
                f"{acl.principal} is a catalog principal; binding not in the catalog",
                observed.acl_problem
                or (None if allow_delete else "not allowed: pass --allow-delete"),
            )
        )
    return out
