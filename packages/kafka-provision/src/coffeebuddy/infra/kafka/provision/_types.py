"""Internal model: the desired state (from the catalog), the observed state (from the cluster)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coffeebuddy.infra.kafka.topics import AclIdentity, acl_identity

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.topics import AclBinding

SCHEMA_VERSION = 1
"""Version of every file this tool writes (manifests, plans, reports)."""

# Kafka protocol enum codes (org.apache.kafka.common.acl / resource).
RESOURCE_TYPE_CODES: Mapping[str, int] = {
    "ANY": 1,
    "TOPIC": 2,
    "GROUP": 3,
    "CLUSTER": 4,
    "TRANSACTIONAL_ID": 5,
    "DELEGATION_TOKEN": 6,
}
OPERATION_CODES: Mapping[str, int] = {
    "ANY": 1,
    "ALL": 2,
    "READ": 3,
    "WRITE": 4,
    "CREATE": 5,
    "DELETE": 6,
    "ALTER": 7,
    "DESCRIBE": 8,
    "CLUSTER_ACTION": 9,
    "DESCRIBE_CONFIGS": 10,
    "ALTER_CONFIGS": 11,
    "IDEMPOTENT_WRITE": 12,
}
PERMISSION_CODES: Mapping[str, int] = {"ANY": 1, "DENY": 2, "ALLOW": 3}
PATTERN_CODES: Mapping[str, int] = {"ANY": 1, "MATCH": 2, "LITERAL": 3, "PREFIXED": 4}


def code_name(codes: Mapping[str, int], code: int) -> str:
    """Reverse lookup of a protocol enum code; unknown codes stay visible as `UNKNOWN(<n>)`."""
    for name, value in codes.items():
        if value == code:
            return name
    return f"UNKNOWN({code})"


def canonical_json(value: Any) -> str:
    """Stable JSON text (sorted keys, no whitespace): the input of every content hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_of(value: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


@dataclass(frozen=True, order=True)
class AclSpec:
    """One ACL binding as a cluster may hold it, plus the catalog's reason (service -> role ->
    topic); equal and hashed by what Kafka stores (`identity`), never by the reason.

    The catalog declares bindings with the topics package's `AclBinding` (validated, ALLOW and
    LITERAL only); a cluster can also hold DENY, PREFIXED or unknown-code bindings, which a plan
    must show. `from_binding` is the one conversion from the catalog's model to this one.
    """

    principal: str
    resource_type: str
    resource_name: str
    operation: str
    pattern_type: str = "LITERAL"
    permission: str = "ALLOW"
    host: str = "*"
    reason: str = field(default="", compare=False)

    @classmethod
    def from_binding(cls, binding: AclBinding) -> AclSpec:
        """The catalog's binding (`ServicePrincipal.acl_bindings()`) as planned and applied."""
        return cls(**binding.model_dump())

    @property
    def identity(self) -> AclIdentity:
        """What Kafka stores (the reason is ours only): the topics package's `acl_identity`."""
        return acl_identity(self)

    def describe(self) -> str:
        return (
            f"{self.permission} {self.principal} {self.operation} on {self.resource_type} "
            f"{self.resource_name} ({self.pattern_type.lower()}, host {self.host})"
        )

    def to_dict(self) -> dict[str, str]:
        return {
            "principal": self.principal,
            "resource_type": self.resource_type,
            "resource_name": self.resource_name,
            "pattern_type": self.pattern_type,
            "operation": self.operation,
            "permission": self.permission,
            "host": self.host,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AclSpec:
        return cls(
            principal=str(data["principal"]),
            resource_type=str(data["resource_type"]),
            resource_name=str(data["resource_name"]),
            operation=str(data["operation"]),
            pattern_type=str(data.get("pattern_type", "LITERAL")),
            permission=str(data.get("permission", "ALLOW")),
            host=str(data.get("host", "*")),
            reason=str(data.get("reason", "")),
        )


@dataclass(frozen=True)
class DesiredTopic:
    """A topic as the catalog wants it in one environment (config values normalised)."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)
    key_field: str = ""
    kind: str = "events"
    owner: str = ""
    description: str = ""

    @property
    def keyed(self) -> bool:
        """Records carry a key: more partitions move keys to other partitions."""
        return bool(self.key_field)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "partitions": self.partitions,
            "replication_factor": self.replication_factor,
            "configs": dict(sorted(self.configs.items())),
            "key_field": self.key_field,
            "kind": self.kind,
            "owner": self.owner,
            "description": self.description,
        }


@dataclass(frozen=True)
class DesiredState:
    """Everything the catalog wants for one environment, and which cluster names it owns."""

    environment: str
    topics: tuple[DesiredTopic, ...]
    acls: tuple[AclSpec, ...]
    managed_prefixes: tuple[str, ...] = ()

    @property
    def principals(self) -> frozenset[str]:
        return frozenset(acl.principal for acl in self.acls)

    def topic(self, name: str) -> DesiredTopic | None:
        for topic in self.topics:
            if topic.name == name:
                return topic
        return None

    def owns_topic(self, name: str) -> bool:
        """Catalog topics, and topics under a managed prefix; internal (`_`/`__`) topics never."""
        if name.startswith("_"):
            return False
        if self.topic(name) is not None:
            return True
        return any(name.startswith(prefix) for prefix in self.managed_prefixes if prefix)

    def owns_acl(self, acl: AclSpec) -> bool:
        """ACLs of the catalog's principals; other principals' ACLs are never touched."""
        return acl.principal in self.principals

    def content(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "topics": [t.to_dict() for t in self.topics],
            "acls": [a.to_dict() for a in self.acls],
        }

    def digest(self) -> str:
        return sha256_of(self.content())


@dataclass(frozen=True)
class ConfigValue:
    """One topic config as the broker reports it; `override` = set on the topic, not inherited."""

    value: str | None
    override: bool
    read_only: bool = False


@dataclass(frozen=True)
class ObservedTopic:
    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, ConfigValue] | None
    """None when the broker answered DescribeConfigs without entries: values unknown."""


@dataclass(frozen=True)
class ObservedState:
    """What the cluster showed for the names the plan cares about."""

    cluster_id: str | None
    topics: Mapping[str, ObservedTopic]
    acls: tuple[AclSpec, ...] | None
    """None when ACLs could not be read (API missing or not working)."""
    api_versions: Mapping[int, tuple[int, int]]
    acl_problem: str | None = None
    """Why ACLs cannot be changed on this broker (None when CreateAcls works)."""

    def content(self) -> dict[str, Any]:
        topics: list[dict[str, Any]] = []
        for name in sorted(self.topics):
            t = self.topics[name]
            configs = (
                None
                if t.configs is None
                else {k: t.configs[k].value for k in sorted(t.configs) if t.configs[k].override}
            )
            topics.append(
                {
                    "name": name,
                    "partitions": t.partitions,
                    "replication_factor": t.replication_factor,
                    "overrides": configs,
                }
            )
        acls = None if self.acls is None else sorted(list(a.identity) for a in self.acls)
        return {"cluster_id": self.cluster_id, "topics": topics, "acls": acls}

    def digest(self) -> str:
        return sha256_of(self.content())
