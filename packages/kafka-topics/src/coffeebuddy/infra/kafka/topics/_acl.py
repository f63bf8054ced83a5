"""Principal-centric ACLs: services declare roles, roles expand to least-privilege bindings."""

from __future__ import annotations

from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

ResourceType = Literal["TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID"]
Operation = Literal["READ", "WRITE", "DESCRIBE", "IDEMPOTENT_WRITE"]
PatternType = Literal["LITERAL"]
Permission = Literal["ALLOW"]

CLUSTER_RESOURCE_NAME = "kafka-cluster"
"""Kafka's fixed name for the CLUSTER resource."""

_ResourceName = Annotated[str, StringConstraints(min_length=1, max_length=249)]

AclIdentity = tuple[str, str, str, str, str, str, str]


class AclFields(Protocol):
    """What any ACL binding model has (the catalog's `AclBinding`, provision's `AclSpec`)."""

    @property
    def principal(self) -> str: ...
    @property
    def resource_type(self) -> str: ...
    @property
    def resource_name(self) -> str: ...
    @property
    def pattern_type(self) -> str: ...
    @property
    def operation(self) -> str: ...
    @property
    def permission(self) -> str: ...
    @property
    def host(self) -> str: ...


def acl_identity(acl: AclFields) -> AclIdentity:
    """Everything Kafka stores for a binding, in one order for every model (a reason is ours)."""
    return (
        acl.principal,
        acl.resource_type,
        acl.resource_name,
        acl.pattern_type,
        acl.operation,
        acl.permission,
        acl.host,
    )


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProducerRole(_Frozen):
    """Writes events to `topic` (TOPIC WRITE + DESCRIBE; TRANSACTIONAL_ID when transactional)."""

    role: Literal["producer"] = "producer"
    topic: _ResourceName
    transactional_id: _ResourceName | None = None


class ConsumerRole(_Frozen):
    """Reads `topic` as a member of consumer group `group` (TOPIC READ + DESCRIBE, GROUP READ)."""

    role: Literal["consumer"] = "consumer"
    topic: _ResourceName
    group: _ResourceName


class LogReaderRole(_Frozen):
    """Reads `topic` by explicit partition assignment, without a group (TOPIC READ + DESCRIBE)."""

    role: Literal["log_reader"] = "log_reader"
    topic: _ResourceName


Role = Annotated[ProducerRole | ConsumerRole | LogReaderRole, Field(discriminator="role")]


class ServicePrincipal(_Frozen):
    """One authenticated identity (e.g. `User:reminder-worker`) and the roles its service plays."""

    name: Annotated[str, StringConstraints(pattern=r"^User:[a-z0-9][a-z0-9._-]*$", max_length=200)]
    service: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    roles: tuple[Role, ...]
    description: str = ""

    def acl_bindings(self, *, legacy_idempotent_write: bool = False) -> list[AclBinding]:
        """Expand the roles to exact bindings, one per (resource, operation), with a reason."""
        out: dict[tuple[str, str, str], AclBinding] = {}

        def add(resource_type: ResourceType, name: str, op: Operation, reason: str) -> None:
            key = (resource_type, name, op)
            existing = out.get(key)
            if existing is None:
                out[key] = AclBinding(
                    principal=self.name,
                    resource_type=resource_type,
                    resource_name=name,
                    operation=op,
                    reason=reason,
                )
            elif reason not in existing.reason.split("; "):
                out[key] = existing.model_copy(update={"reason": f"{existing.reason}; {reason}"})

        for role in self.roles:
            if isinstance(role, ProducerRole):
                why = f"{self.service}: producer of {role.topic}"
                add("TOPIC", role.topic, "WRITE", why)
                add("TOPIC", role.topic, "DESCRIBE", why)
                if legacy_idempotent_write:
                    add(
                        "CLUSTER",
                        CLUSTER_RESOURCE_NAME,
                        "IDEMPOTENT_WRITE",
                        f"{self.service}: idempotent producer of {role.topic} on a broker < 2.8",
                    )
                if role.transactional_id is not None:
                    twhy = f"{self.service}: transactional producer of {role.topic}"
                    add("TRANSACTIONAL_ID", role.transactional_id, "WRITE", twhy)
                    add("TRANSACTIONAL_ID", role.transactional_id, "DESCRIBE", twhy)
            elif isinstance(role, ConsumerRole):
                why = f"{self.service}: consumer of {role.topic} in group {role.group}"
                add("TOPIC", role.topic, "READ", why)
                add("TOPIC", role.topic, "DESCRIBE", why)
                add("GROUP", role.group, "READ", why)
            else:
                why = f"{self.service}: log reader of {role.topic} (partition assignment, no group)"
                add("TOPIC", role.topic, "READ", why)
                add("TOPIC", role.topic, "DESCRIBE", why)
        return sorted(out.values(), key=AclBinding.sort_key)


class AclBinding(_Frozen):
    """One ALLOW rule on one literal resource; `reason` traces it to service, role, topic."""

    principal: str
    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType = "LITERAL"
    operation: Operation
    permission: Permission = "ALLOW"
    host: str = "*"
    reason: str

    def sort_key(self) -> tuple[str, str, str, str]:
        """Deterministic order for plans and docs."""
        return (self.principal, self.resource_type, self.resource_name, self.operation)

    @property
    def identity(self) -> AclIdentity:
        """Everything Kafka stores for the binding (the reason is ours only)."""
        return acl_identity(self)
