"""The admin operations the tool needs, behind a small interface; aiokafka implements it.

Topics, configs and partitions go through aiokafka's public admin API. aiokafka 0.14 has no ACL
helpers, so ACLs go through its protocol request structs (`CreateAclsRequest_v0/1`,
`DescribeAclsRequest_v0/1`, `DeleteAclsRequest_v0/1`) sent with the admin client's own
connection (`admin_send` in kafka-config's compat module), which picks the highest version both
sides support (Kafka 4 dropped v0, KIP-896).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.protocol.admin import (
    ApiVersionRequest,
    CreateAclsRequest_v0,
    CreateAclsRequest_v1,
    DeleteAclsRequest_v0,
    DeleteAclsRequest_v1,
    DescribeAclsRequest,
)
from aiokafka.protocol.api import Request

from coffeebuddy.infra.kafka.config import admin_send
from coffeebuddy.infra.kafka.provision._types import (
    OPERATION_CODES,
    PATTERN_CODES,
    PERMISSION_CODES,
    RESOURCE_TYPE_CODES,
    AclSpec,
    ConfigValue,
    DesiredTopic,
    code_name,
)

API_ALTER_CONFIGS = 33
API_CREATE_PARTITIONS = 37
API_DESCRIBE_ACLS = 29
API_CREATE_ACLS = 30
API_DELETE_ACLS = 31
API_DESCRIBE_CONFIGS = 32

API_NAMES: Mapping[int, str] = {
    API_DESCRIBE_ACLS: "DescribeAcls",
    API_CREATE_ACLS: "CreateAcls",
    API_DELETE_ACLS: "DeleteAcls",
    API_DESCRIBE_CONFIGS: "DescribeConfigs",
    API_ALTER_CONFIGS: "AlterConfigs",
    API_CREATE_PARTITIONS: "CreatePartitions",
}

_CONFIG_SOURCE_TOPIC = 1
_UNKNOWN_TOPIC_OR_PARTITION = 3


def describe_error(exc: BaseException) -> str:
    """`Type: message` without aiokafka's habit of repeating the type in the message."""
    text = str(exc)
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}" if text else name


def unsupported_api(api_key: int) -> str:
    """The one wording used for a missing broker API in plans and reports."""
    return f"broker does not support {API_NAMES.get(api_key, 'API')} (API key {api_key})"


@dataclass(frozen=True)
class TopicShape:
    partitions: int
    replication_factor: int


class ClusterAdmin(Protocol):
    """What plan/apply need from a cluster. Errors per item come back as text, never raised."""

    async def api_versions(self) -> Mapping[int, tuple[int, int]]: ...

    async def cluster_id(self) -> str | None: ...

    async def list_topics(self) -> Mapping[str, TopicShape]: ...

    async def describe_topic_configs(
        self, names: Sequence[str]
    ) -> Mapping[str, Mapping[str, ConfigValue] | None]:
        """Per topic: its config entries, or None when the broker returned none (unknown)."""
        ...

    async def describe_acls(self) -> list[AclSpec]: ...

    async def probe_create_acls(self) -> str | None:
        """Send an empty CreateAcls: None when the broker answers it properly, else why not."""
        ...

    async def create_topics(self, topics: Sequence[DesiredTopic]) -> Mapping[str, str | None]: ...

    async def alter_topic_configs(self, name: str, configs: Mapping[str, str]) -> str | None: ...

    async def create_partitions(self, name: str, total: int) -> str | None: ...

    async def delete_topics(self, names: Sequence[str]) -> Mapping[str, str | None]: ...

    async def create_acls(self, acls: Sequence[AclSpec]) -> list[str | None]: ...

    async def delete_acls(self, acls: Sequence[AclSpec]) -> list[str | None]: ...

    async def close(self) -> None: ...


def _binding_row(acl: AclSpec, api_version: int) -> tuple[Any, ...]:
    """One exact ACL binding as CreateAcls/DeleteAcls encode it (v1+ adds the pattern type)."""
    head: tuple[Any, ...] = (RESOURCE_TYPE_CODES[acl.resource_type], acl.resource_name)
    tail = (
        acl.principal,
        acl.host,
        OPERATION_CODES[acl.operation],
        PERMISSION_CODES[acl.permission],
    )
    if api_version >= 1:
        return (*head, PATTERN_CODES[acl.pattern_type], *tail)
    return (*head, *tail)


class _CreateAcls(Request[CreateAclsRequest_v0 | CreateAclsRequest_v1]):  # type: ignore[misc]
    """CreateAcls with any number of creations (aiokafka's own builds exactly one)."""

    API_KEY = 30

    def __init__(self, acls: Sequence[AclSpec]) -> None:
        self._acls = list(acls)

    def build(
        self, request_struct_class: type[CreateAclsRequest_v0 | CreateAclsRequest_v1]
    ) -> CreateAclsRequest_v0 | CreateAclsRequest_v1:
        return request_struct_class(
            [_binding_row(acl, request_struct_class.API_VERSION) for acl in self._acls]
        )


class _DeleteAcls(Request[DeleteAclsRequest_v0 | DeleteAclsRequest_v1]):  # type: ignore[misc]
    """DeleteAcls with one exact filter per binding."""

    API_KEY = 31

    def __init__(self, acls: Sequence[AclSpec]) -> None:
        self._acls = list(acls)

    def build(
        self, request_struct_class: type[DeleteAclsRequest_v0 | DeleteAclsRequest_v1]
    ) -> DeleteAclsRequest_v0 | DeleteAclsRequest_v1:
        return request_struct_class(
            [_binding_row(acl, request_struct_class.API_VERSION) for acl in self._acls]
        )


@contextlib.contextmanager
def _quiet_aiokafka_conn() -> Iterator[None]:
    """aiokafka logs a traceback when a broker answers garbage; the probe reports it instead."""
    logger = logging.getLogger("aiokafka.conn")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _error_text(code: int, message: str | None) -> str | None:
    if code == 0:
        return None
    from aiokafka.errors import for_code

    name = for_code(code).__name__
    return f"{name} (error code {code})" + (f": {message}" if message else "")


_AUTHORIZATION_CODES = frozenset({29, 31})  # TOPIC_/CLUSTER_AUTHORIZATION_FAILED


def _create_error_text(topic: str, code: int, message: str | None) -> str | None:
    """CreateTopics' error for `topic`; a refusal names the topic and the missing grant."""
    text = _error_text(code, message)
    if text is None or code not in _AUTHORIZATION_CODES:
        return text
    return (
        f"not authorized to create topic {topic!r} ({text}); the connecting principal needs "
        "CREATE on the topic or the cluster (run coffeebuddy-kafka as the platform admin)"
    )


class AiokafkaAdmin:
    """`ClusterAdmin` over `AIOKafkaAdminClient` (started by `connect`)."""

    def __init__(self, client: AIOKafkaAdminClient, *, timeout_ms: int = 30_000) -> None:
        self._admin = client
        self._timeout_ms = timeout_ms
        self._versions: dict[int, tuple[int, int]] | None = None

    @classmethod
    async def connect(cls, admin_kwargs: Mapping[str, Any]) -> AiokafkaAdmin:
        client = AIOKafkaAdminClient(**dict(admin_kwargs))
        await client.start()
        return cls(client, timeout_ms=int(admin_kwargs.get("request_timeout_ms", 30_000)))

    async def close(self) -> None:
        await self._admin.close()

    async def _send(self, request: Any) -> Any:
        return await admin_send(self._admin, request)

    async def api_versions(self) -> Mapping[int, tuple[int, int]]:
        if self._versions is None:
            response = await self._send(ApiVersionRequest())
            self._versions = {int(k): (int(lo), int(hi)) for k, lo, hi in response.api_versions}
        return self._versions

    async def cluster_id(self) -> str | None:
        described = await self._admin.describe_cluster()
        value = described.get("cluster_id")
        return None if value is None else str(value)

    async def list_topics(self) -> Mapping[str, TopicShape]:
        out: dict[str, TopicShape] = {}
        for topic in await self._admin.describe_topics():
            # A topic with e.g. LEADER_NOT_AVAILABLE still exists; only "unknown" means absent.
            if topic.get("error_code", 0) == _UNKNOWN_TOPIC_OR_PARTITION:
                continue
            partitions = topic.get("partitions") or []
            replicas = max((len(p.get("replicas") or []) for p in partitions), default=0)
            out[str(topic["topic"])] = TopicShape(len(partitions), replicas)
        return out

    async def describe_topic_configs(
        self, names: Sequence[str]
    ) -> Mapping[str, Mapping[str, ConfigValue] | None]:
        out: dict[str, Mapping[str, ConfigValue] | None] = dict.fromkeys(names)
        if not names:
            return out
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        for response in await self._admin.describe_configs(resources):
            version = type(response).API_VERSION
            for resource in response.resources:
                error_code, _msg, _rtype, name, entries = resource[:5]
                if error_code != 0 or not entries:
                    continue
                values: dict[str, ConfigValue] = {}
                for entry in entries:
                    key, value, read_only = entry[0], entry[1], entry[2]
                    # v0 has is_default; v1+ has config_source (1 = set on the topic).
                    override = (not entry[3]) if version == 0 else entry[3] == _CONFIG_SOURCE_TOPIC
                    values[str(key)] = ConfigValue(value, override, bool(read_only))
                out[str(name)] = values
        return out

    async def describe_acls(self) -> list[AclSpec]:
        request = DescribeAclsRequest(
            resource_type=RESOURCE_TYPE_CODES["ANY"],
            resource_name=None,  # null = any name
            resource_pattern_type_filter=PATTERN_CODES["ANY"],
            principal=None,
            host=None,
            operation=OPERATION_CODES["ANY"],
            permission_type=PERMISSION_CODES["ANY"],
        )
        response = await self._send(request)
        error = _error_text(response.error_code, response.error_message)
        if error is not None:
            raise RuntimeError(f"DescribeAcls failed: {error}")
        out: list[AclSpec] = []
        with_pattern = type(response).API_VERSION >= 1
        for resource in response.resources:
            rtype, rname = resource[0], resource[1]
            pattern = code_name(PATTERN_CODES, resource[2]) if with_pattern else "LITERAL"
            for principal, host, operation, permission in resource[-1]:
                out.append(
                    AclSpec(
                        principal=principal,
                        resource_type=code_name(RESOURCE_TYPE_CODES, rtype),
                        resource_name=rname,
                        operation=code_name(OPERATION_CODES, operation),
                        pattern_type=pattern,
                        permission=code_name(PERMISSION_CODES, permission),
                        host=host,
                    )
                )
        return sorted(out)

    async def probe_create_acls(self) -> str | None:
        try:
            with _quiet_aiokafka_conn():
                response = await self._send(_CreateAcls([]))
        except Exception as exc:
            return (
                f"{unsupported_api(API_CREATE_ACLS)}: it is advertised, but an empty CreateAcls "
                f"request failed ({describe_error(exc)})"
            )
        if list(response.creation_responses):
            return f"{unsupported_api(API_CREATE_ACLS)}: it answers an empty request with results"
        return None

    async def create_topics(self, topics: Sequence[DesiredTopic]) -> Mapping[str, str | None]:
        new = [
            NewTopic(
                t.name,
                t.partitions,
                t.replication_factor,
                topic_configs=dict(sorted(t.configs.items())),
            )
            for t in topics
        ]
        response = await self._admin.create_topics(new, timeout_ms=self._timeout_ms)
        results: dict[str, str | None] = {
            t.name: "no answer for this topic in CreateTopics" for t in topics
        }
        for row in response.topic_errors:
            name, code = row[0], row[1]
            message = row[2] if len(row) > 2 else None
            results[str(name)] = _create_error_text(str(name), code, message)
        return results

    async def alter_topic_configs(self, name: str, configs: Mapping[str, str]) -> str | None:
        # AlterConfigs replaces every override of the topic: callers pass the full set.
        resource = ConfigResource(
            ConfigResourceType.TOPIC, name, configs=dict(sorted(configs.items()))
        )
        responses = await self._admin.alter_configs([resource])
        for response in responses:
            for code, message, _rtype, _rname in response.resources:
                error = _error_text(code, message)
                if error is not None:
                    return error
        return None

    async def create_partitions(self, name: str, total: int) -> str | None:
        response = await self._admin.create_partitions(
            {name: NewPartitions(total_count=total)}, timeout_ms=self._timeout_ms
        )
        for _topic, code, message in response.topic_errors:
            error = _error_text(code, message)
            if error is not None:
                return error
        return None

    async def delete_topics(self, names: Sequence[str]) -> Mapping[str, str | None]:
        response = await self._admin.delete_topics(list(names), timeout_ms=self._timeout_ms)
        missing = "no answer for this topic in DeleteTopics"
        results: dict[str, str | None] = dict.fromkeys(names, missing)
        for row in response.topic_error_codes:
            results[str(row[0])] = _error_text(row[1], None)
        return results

    async def create_acls(self, acls: Sequence[AclSpec]) -> list[str | None]:
        response = await self._send(_CreateAcls(acls))
        rows = list(response.creation_responses)
        if len(rows) != len(acls):
            return [f"broker answered {len(rows)} results for {len(acls)} bindings"] * len(acls)
        return [_error_text(code, message) for code, message in rows]

    async def delete_acls(self, acls: Sequence[AclSpec]) -> list[str | None]:
        response = await self._send(_DeleteAcls(acls))
        rows = list(response.filter_responses)
        if len(rows) != len(acls):
            return [f"broker answered {len(rows)} results for {len(acls)} filters"] * len(acls)
        return [_error_text(row[0], row[1]) for row in rows]
