"""Typed catalog: topics, consumer groups, service principals, environments."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from coffeebuddy.infra.kafka.topics._acl import (
    AclBinding,
    ConsumerRole,
    LogReaderRole,
    ProducerRole,
    ServicePrincipal,
)

TopicKind = Literal["events", "dead_letter", "log"]
ContentMode = Literal["structured", "binary"]
"""CloudEvents Kafka content mode producers write to a topic (readers accept both)."""

DLQ_SUFFIX = ".dlq"

_KafkaName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9._-]+$", min_length=1, max_length=249)
]
_Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*$", max_length=64)]


def _ms(delta: timedelta) -> str:
    return str(int(delta.total_seconds() * 1000))


class TopicConfig(BaseModel):
    """One topic: sizing, topic-level configs, key rule, allowed CloudEvents types and owner."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: _KafkaName
    partitions: int = Field(ge=1)
    replication_factor: int = Field(ge=1)
    configs: Mapping[str, str] = Field(default_factory=dict)
    key_field: _Identifier
    event_types: frozenset[str] = frozenset()
    owner: str = ""
    description: str = ""
    dead_letter_topic: _KafkaName | None = None
    kind: TopicKind = "events"
    content_mode: ContentMode = "structured"

    @field_validator("name", "dead_letter_topic")
    @classmethod
    def _not_dots(cls, value: str | None) -> str | None:
        if value in {".", ".."}:
            raise ValueError("'.' and '..' are not legal Kafka topic names")
        return value

    @field_validator("configs", mode="before")
    @classmethod
    def _configs_as_str(cls, value: Any) -> Any:
        # Broker configs are strings on the wire; accept ints/bools in definitions and normalise.
        if isinstance(value, Mapping):
            return {
                str(k): (str(v).lower() if isinstance(v, bool) else str(v))
                for k, v in sorted(value.items())
            }
        return value

    def __hash__(self) -> int:
        return hash(
            (
                self.name,
                self.partitions,
                self.replication_factor,
                tuple(sorted(self.configs.items())),
                self.key_field,
                self.event_types,
                self.dead_letter_topic,
                self.kind,
                self.content_mode,
            )
        )

    def allows(self, event_type: str) -> bool:
        """True when an event of `event_type` may be published here (dead letters take anything)."""
        return self.kind == "dead_letter" or event_type in self.event_types

    def key_for(self, event: Any) -> bytes | None:
        """Record key of `event`: `data.<key_field>` as UTF-8 (None when there is no such field)."""
        data = getattr(event, "data", None)
        value = getattr(data, self.key_field, None)
        if value is None and isinstance(data, Mapping):
            value = data.get(self.key_field)
        return None if value is None else str(value).encode()

    @property
    def cleanup_policy(self) -> str:
        """`cleanup.policy` (Kafka's default `delete` when not set)."""
        return self.configs.get("cleanup.policy", "delete")

    @property
    def is_compacted(self) -> bool:
        return "compact" in self.cleanup_policy.split(",")

    @property
    def retention(self) -> timedelta | None:
        """`retention.ms` as a duration (None when unset or infinite)."""
        raw = self.configs.get("retention.ms")
        if raw is None or raw.strip() == "-1":
            return None
        return timedelta(milliseconds=int(raw))


class ConsumerGroup(BaseModel):
    """A named consumer group, its owning service and the topics it subscribes to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: _KafkaName
    owner: str
    topics: tuple[str, ...]
    description: str = ""

    def __str__(self) -> str:
        return self.name


class Environment(BaseModel):
    """Per-environment overlay values applied to the one catalog definition."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]*$")]
    broker_count: int = Field(ge=1)
    replication_factor: int = Field(ge=1)
    min_insync_replicas: int = Field(ge=1)
    max_partitions: int | None = Field(default=None, ge=1)
    legacy_idempotent_write: bool = False
    """Broker older than 2.8: idempotent producers also need CLUSTER IDEMPOTENT_WRITE."""
    configs: Mapping[str, str] = Field(default_factory=dict)
    """Topic-level config overrides applied to every topic (e.g. a dev-only setting)."""

    def apply(self, topic: TopicConfig) -> TopicConfig:
        """This environment's version of `topic`: RF, min.insync.replicas, capped partitions."""
        partitions = topic.partitions
        if self.max_partitions is not None:
            partitions = min(partitions, self.max_partitions)
        configs = {
            **topic.configs,
            **self.configs,
            "min.insync.replicas": str(self.min_insync_replicas),
        }
        return topic.model_copy(
            update={
                "partitions": partitions,
                "replication_factor": self.replication_factor,
                "configs": dict(sorted(configs.items())),
            }
        )


class Catalog(BaseModel):
    """Every topic, group and principal of the slice; `environment` is None for the definition."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    topics: tuple[TopicConfig, ...]
    groups: tuple[ConsumerGroup, ...] = ()
    principals: tuple[ServicePrincipal, ...] = ()
    environment: str | None = None
    legacy_idempotent_write: bool = False

    def topic(self, name: str) -> TopicConfig:
        """The topic called `name`; KeyError listing the known names otherwise."""
        for topic in self.topics:
            if topic.name == name:
                return topic
        raise KeyError(f"no topic {name!r} in the catalog (known: {sorted(self.topic_names)})")

    @property
    def topic_names(self) -> frozenset[str]:
        return frozenset(t.name for t in self.topics)

    def group(self, name: str) -> ConsumerGroup:
        """The consumer group called `name`; KeyError otherwise."""
        for group in self.groups:
            if group.name == name:
                return group
        known = sorted(g.name for g in self.groups)
        raise KeyError(f"no consumer group {name!r} in the catalog (known: {known})")

    def principal(self, name: str) -> ServicePrincipal:
        """The principal called `name` (e.g. `User:reminder-worker`); KeyError otherwise."""
        for principal in self.principals:
            if principal.name == name:
                return principal
        known = sorted(p.name for p in self.principals)
        raise KeyError(f"no principal {name!r} in the catalog (known: {known})")

    def dead_letter_for(self, topic: TopicConfig | str) -> TopicConfig:
        """The dead-letter topic of `topic`; KeyError when it has none."""
        origin = self.topic(topic if isinstance(topic, str) else topic.name)
        if origin.dead_letter_topic is None:
            raise KeyError(f"topic {origin.name!r} has no dead-letter topic")
        return self.topic(origin.dead_letter_topic)

    def origin_of(self, dead_letter: TopicConfig | str) -> TopicConfig | None:
        """The topic whose dead letters go to `dead_letter` (None when no topic names it)."""
        name = dead_letter if isinstance(dead_letter, str) else dead_letter.name
        for topic in self.topics:
            if topic.dead_letter_topic == name:
                return topic
        return None

    def topics_for_event_type(self, event_type: str) -> list[TopicConfig]:
        """Topics that accept `event_type` (dead-letter topics excluded)."""
        return [t for t in self.topics if t.kind != "dead_letter" and event_type in t.event_types]

    @property
    def event_types(self) -> frozenset[str]:
        """Every CloudEvents type some topic of the catalog carries."""
        return frozenset(e for t in self.topics for e in t.event_types)

    def producers_of(self, topic: TopicConfig | str) -> list[ServicePrincipal]:
        name = topic if isinstance(topic, str) else topic.name
        return [
            p
            for p in self.principals
            if any(isinstance(r, ProducerRole) and r.topic == name for r in p.roles)
        ]

    def consumers_of(self, topic: TopicConfig | str) -> list[ServicePrincipal]:
        """Principals reading `topic`, in a group or as a log reader."""
        name = topic if isinstance(topic, str) else topic.name
        return [
            p
            for p in self.principals
            if any(isinstance(r, ConsumerRole | LogReaderRole) and r.topic == name for r in p.roles)
        ]

    def acl_notes(self, topic: TopicConfig | str) -> list[str]:
        """Who may do what on `topic`, one line per role, derived from the principals."""
        name = topic if isinstance(topic, str) else topic.name
        notes: list[str] = []
        for principal in self.principals:
            for role in principal.roles:
                if role.topic != name:
                    continue
                if isinstance(role, ProducerRole):
                    notes.append(f"{principal.name} ({principal.service}) produces")
                elif isinstance(role, ConsumerRole):
                    notes.append(
                        f"{principal.name} ({principal.service}) consumes in group {role.group}"
                    )
                else:
                    notes.append(
                        f"{principal.name} ({principal.service}) reads by partition assignment"
                    )
        return notes

    def acl_bindings(self, *, legacy_idempotent_write: bool | None = None) -> list[AclBinding]:
        """Every ALLOW binding the principals need, deduplicated, in a deterministic order."""
        legacy = legacy_idempotent_write
        if legacy is None:
            legacy = self.legacy_idempotent_write
        merged: dict[tuple[str, str, str, str], AclBinding] = {}
        for principal in self.principals:
            for binding in principal.acl_bindings(legacy_idempotent_write=legacy):
                key = binding.sort_key()
                if key in merged:
                    old = merged[key]
                    reason = f"{old.reason}; {binding.reason}"
                    merged[key] = old.model_copy(update={"reason": reason})
                else:
                    merged[key] = binding
        return [merged[k] for k in sorted(merged)]

    def for_environment(self, env: Environment | str) -> Catalog:
        """The catalog with `env`'s replication, min.insync.replicas and partition cap applied."""
        environment = get_environment(env) if isinstance(env, str) else env
        if self.environment is not None:
            raise ValueError(
                f"catalog is already rendered for {self.environment!r}; "
                "call for_environment on the definition"
            )
        return self.model_copy(
            update={
                "topics": tuple(environment.apply(t) for t in self.topics),
                "environment": environment.name,
                "legacy_idempotent_write": environment.legacy_idempotent_write,
            }
        )

    def extend(
        self,
        *,
        topics: Iterable[TopicConfig] = (),
        groups: Iterable[ConsumerGroup] = (),
        principals: Iterable[ServicePrincipal] = (),
    ) -> Catalog:
        """A catalog with more entries (later slices add; they never rename or remove).

        A principal whose name already exists gets the extra roles appended.
        """
        merged_principals = {p.name: p for p in self.principals}
        for principal in principals:
            if principal.name in merged_principals:
                old = merged_principals[principal.name]
                merged_principals[principal.name] = old.model_copy(
                    update={"roles": (*old.roles, *principal.roles)}
                )
            else:
                merged_principals[principal.name] = principal
        return self.model_copy(
            update={
                "topics": (*self.topics, *topics),
                "groups": (*self.groups, *groups),
                "principals": tuple(merged_principals.values()),
            }
        )


DEV = Environment(
    name="dev", broker_count=1, replication_factor=1, min_insync_replicas=1, max_partitions=3
)
STAGING = Environment(
    name="staging", broker_count=3, replication_factor=3, min_insync_replicas=2, max_partitions=6
)
PROD = Environment(name="prod", broker_count=3, replication_factor=3, min_insync_replicas=2)

ENVIRONMENTS: Mapping[str, Environment] = {e.name: e for e in (DEV, STAGING, PROD)}


def get_environment(name: str) -> Environment:
    """The environment called `name` (`dev`, `staging`, `prod`); ValueError otherwise."""
    try:
        return ENVIRONMENTS[name]
    except KeyError:
        raise ValueError(
            f"unknown environment {name!r}; expected one of {sorted(ENVIRONMENTS)}"
        ) from None
