"""`AiokafkaAdmin` against recorded wire responses: request encoding per version, response parsing.

Fast checks of the hand-written ACL requests (built for the negotiated version and encoded to
bytes exactly as aiokafka would send them) and of response parsing; responses are encoded Kafka
answers decoded by aiokafka's own structs. The same calls run against Apache Kafka in
test_provision_broker.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin.config_resource import ConfigResourceType
from aiokafka.protocol.admin import (
    AlterConfigsResponse_v1,
    CreateAclsRequest_v0,
    CreateAclsRequest_v1,
    CreateAclsResponse_v1,
    DeleteAclsRequest_v1,
    DeleteAclsResponse_v1,
    DescribeAclsResponse_v1,
    DescribeConfigsResponse_v0,
    DescribeConfigsResponse_v1,
)

from coffeebuddy.infra.kafka.provision import AiokafkaAdmin
from coffeebuddy.infra.kafka.provision._types import AclSpec

WRITE = AclSpec("User:api", "TOPIC", "app.orders", "WRITE")
GROUP = AclSpec("User:worker", "GROUP", "app.worker", "READ")


def wire(response: Any) -> Any:
    """What aiokafka hands back after reading these bytes off a socket."""
    return type(response).decode(response.encode())


@dataclass
class RecordingClient:
    """Stands in for `AIOKafkaClient`: builds each request for `versions`, returns recordings."""

    versions: dict[int, tuple[int, int]]
    answers: dict[int, Any]
    sent: list[Any] = field(default_factory=list)

    def get_random_node(self) -> int:
        return 1

    async def send(self, node_id: int, request: Any) -> Any:
        struct = request.prepare(self.versions)
        struct.encode()  # must be encodable for this version
        self.sent.append(struct)
        return wire(self.answers[request.API_KEY])


@dataclass
class RecordingAdminClient:
    """Stands in for `AIOKafkaAdminClient` (only what `AiokafkaAdmin` touches)."""

    _client: RecordingClient
    configs_responses: list[Any] = field(default_factory=list)

    async def describe_configs(self, resources: list[Any]) -> list[Any]:
        return [wire(r) for r in self.configs_responses]

    async def alter_configs(self, resources: list[Any]) -> list[Any]:
        """aiokafka's public call: one AlterConfigs answer for the topic resources."""
        self._client.sent.extend(resources)
        return [wire(self._client.answers[33])]


def admin_for(
    versions: dict[int, tuple[int, int]], answers: dict[int, Any]
) -> tuple[AiokafkaAdmin, RecordingClient]:
    client = RecordingClient(versions, answers)
    return AiokafkaAdmin(RecordingAdminClient(client)), client


async def test_create_acls_sends_every_binding_with_pattern_type_on_v1() -> None:
    ok = CreateAclsResponse_v1(throttle_time_ms=0, creation_responses=[(0, None), (0, None)])
    admin, client = admin_for({30: (0, 1)}, {30: ok})
    assert await admin.create_acls([WRITE, GROUP]) == [None, None]
    (sent,) = client.sent
    assert isinstance(sent, CreateAclsRequest_v1)
    assert sent.creations == [
        (2, "app.orders", 3, "User:api", "*", 4, 3),  # TOPIC, LITERAL, WRITE, ALLOW
        (3, "app.worker", 3, "User:worker", "*", 3, 3),  # GROUP, LITERAL, READ, ALLOW
    ]


async def test_create_acls_v0_has_no_pattern_type_and_errors_are_named() -> None:
    denied = CreateAclsResponse_v1(
        throttle_time_ms=0,
        creation_responses=[(0, None), (31, "cluster authorization failed")],
    )
    admin, client = admin_for({30: (0, 0)}, {30: denied})
    answers = await admin.create_acls([WRITE, GROUP])
    assert isinstance(client.sent[0], CreateAclsRequest_v0)
    assert client.sent[0].creations[0] == (2, "app.orders", "User:api", "*", 4, 3)
    assert answers[0] is None
    assert answers[1] is not None
    assert "ClusterAuthorizationFailed" in answers[1]
    assert "cluster authorization failed" in answers[1]


async def test_empty_create_acls_probe_accepts_a_proper_empty_answer() -> None:
    admin, client = admin_for(
        {30: (0, 1)}, {30: CreateAclsResponse_v1(throttle_time_ms=0, creation_responses=[])}
    )
    assert await admin.probe_create_acls() is None
    assert client.sent[0].creations == []


async def test_describe_acls_parses_resources_into_bindings() -> None:
    answer = DescribeAclsResponse_v1(
        throttle_time_ms=0,
        error_code=0,
        error_message=None,
        resources=[
            (2, "app.orders", 3, [("User:api", "*", 4, 3), ("User:api", "*", 8, 3)]),
            (3, "app.worker", 4, [("User:worker", "10.0.0.1", 3, 2)]),
        ],
    )
    admin, _ = admin_for({29: (0, 1)}, {29: answer})
    acls = await admin.describe_acls()
    assert [a.identity for a in acls] == [
        ("User:api", "TOPIC", "app.orders", "LITERAL", "DESCRIBE", "ALLOW", "*"),
        ("User:api", "TOPIC", "app.orders", "LITERAL", "WRITE", "ALLOW", "*"),
        ("User:worker", "GROUP", "app.worker", "PREFIXED", "READ", "DENY", "10.0.0.1"),
    ]


async def test_delete_acls_sends_one_exact_filter_per_binding() -> None:
    answer = DeleteAclsResponse_v1(
        throttle_time_ms=0, filter_responses=[(0, None, []), (0, None, [])]
    )
    admin, client = admin_for({31: (0, 1)}, {31: answer})
    assert await admin.delete_acls([WRITE, GROUP]) == [None, None]
    assert isinstance(client.sent[0], DeleteAclsRequest_v1)
    assert client.sent[0].filters[1] == (3, "app.worker", 3, "User:worker", "*", 3, 3)


async def test_alter_configs_reports_the_broker_error() -> None:
    answer = AlterConfigsResponse_v1(
        throttle_time_ms=0, resources=[(42, "Invalid value x for retention.ms", 2, "app.orders")]
    )
    admin, client = admin_for({33: (0, 1)}, {33: answer})
    error = await admin.alter_topic_configs("app.orders", {"retention.ms": "x"})
    assert error is not None
    assert "InvalidRequest" in error
    assert "retention.ms" in error
    [resource] = client.sent
    assert (resource.resource_type, resource.name) == (ConfigResourceType.TOPIC, "app.orders")
    assert resource.configs == {"retention.ms": "x"}


async def test_describe_configs_marks_topic_overrides_and_empty_answers_as_unknown() -> None:
    v1 = DescribeConfigsResponse_v1(
        throttle_time_ms=0,
        resources=[
            (
                0,
                None,
                2,
                "app.orders",
                [
                    ("retention.ms", "604800000", False, 1, False, []),  # TOPIC_CONFIG
                    ("segment.bytes", "1073741824", False, 5, False, []),  # DEFAULT_CONFIG
                ],
            ),
            (0, None, 2, "app.empty", []),
        ],
    )
    admin, _ = admin_for({}, {})
    admin._admin.configs_responses = [v1]
    configs = await admin.describe_topic_configs(["app.orders", "app.empty"])
    orders = configs["app.orders"]
    assert orders is not None
    assert orders["retention.ms"].override is True
    assert orders["segment.bytes"].override is False
    assert configs["app.empty"] is None

    v0 = DescribeConfigsResponse_v0(
        throttle_time_ms=0,
        resources=[(0, None, 2, "app.orders", [("retention.ms", "1", False, False, False)])],
    )
    admin._admin.configs_responses = [v0]
    old = await admin.describe_topic_configs(["app.orders"])
    assert old["app.orders"] is not None
    assert old["app.orders"]["retention.ms"].override is True  # is_default False on v0
