"""A KRaft node of the Apache Kafka test cluster: listeners, SASL users, ``server.properties``."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from coffeebuddy.infra.kafka.testing._ports import free_port
from coffeebuddy.infra.kafka.testing._process import ManagedProcess

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
PROTOCOLS: tuple[Protocol, ...] = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
#: The super user every SASL test can fall back to.
ADMIN_USER = "admin"
LOG4J2 = """\
status = error
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
logger.server.name = kafka.server
logger.server.level = INFO
logger.raft.name = org.apache.kafka.raft
logger.raft.level = WARN
"""


@dataclass(frozen=True)
class SaslUser:
    """A SASL user of the test cluster (PLAIN and both SCRAM mechanisms); the password stays out
    of reprs."""

    name: str
    password: str = field(repr=False)


@dataclass
class KraftNode:
    """One node of the cluster: its listener ports, data folder and current process."""

    node_id: int
    ports: dict[str, int]
    data_dir: Path
    process: ManagedProcess | None = None
    starts: int = 0


def server_properties(
    node: KraftNode,
    cluster: Mapping[int, KraftNode],
    *,
    host: str,
    users: Iterable[SaslUser],
    keystore: Path,
    extra: Mapping[str, str],
) -> str:
    """The ``server.properties`` of ``node`` in ``cluster`` (combined broker and controller)."""
    replicas = min(3, len(cluster))
    voters = ",".join(f"{n.node_id}@{host}:{n.ports['CONTROLLER']}" for n in cluster.values())
    plain_users = " ".join(f'user_{u.name}="{u.password}"' for u in users)
    listeners = [f"{p}://{host}:{node.ports[p]}" for p in PROTOCOLS]
    config: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": voters,
        "controller.listener.names": "CONTROLLER",
        "listeners": ",".join([*listeners, f"CONTROLLER://{host}:{node.ports['CONTROLLER']}"]),
        "advertised.listeners": ",".join(listeners),
        "listener.security.protocol.map": ",".join(
            [f"{p}:{p}" for p in PROTOCOLS] + ["CONTROLLER:PLAINTEXT"]
        ),
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(node.data_dir / "data"),
        "num.partitions": "1",
        "default.replication.factor": str(replicas),
        "offsets.topic.replication.factor": str(replicas),
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": str(min(2, replicas)),
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": str(replicas),
        "share.coordinator.state.topic.min.isr": str(min(2, replicas)),
        "group.initial.rebalance.delay.ms": "0",
        "group.min.session.timeout.ms": "1000",
        # the log cleaner looks every 0.5 s (15 s by default): compaction tests see it soon
        "log.cleaner.backoff.ms": "500",
        "auto.create.topics.enable": "false",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "ssl.client.auth": "none",
        "sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{ADMIN_USER};User:ANONYMOUS",
        "allow.everyone.if.no.acl.found": "false",
    }
    for listener in ("sasl_plaintext", "sasl_ssl"):
        config[f"listener.name.{listener}.plain.sasl.jaas.config"] = (
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
        )
        for mechanism in ("scram-sha-256", "scram-sha-512"):
            config[f"listener.name.{listener}.{mechanism}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
    config.update(extra)
    return "".join(f"{key}={_escape(value)}\n" for key, value in config.items())


def _escape(value: str) -> str:
    """A ``.properties`` value: backslashes doubled (JAAS strings and paths stay literal)."""
    return value.replace("\\", "\\\\")


def plan_nodes(host: str, count: int, folder: Path) -> dict[int, KraftNode]:
    """``count`` nodes with distinct free ports for every listener and an empty data folder."""
    nodes: dict[int, KraftNode] = {}
    taken: set[int] = set()
    for node_id in range(1, count + 1):
        ports: dict[str, int] = {}
        for listener in (*PROTOCOLS, "CONTROLLER"):
            port = free_port(host)
            while port in taken:
                port = free_port(host)
            taken.add(port)
            ports[listener] = port
        data = folder / f"node-{node_id}"
        if data.exists():
            shutil.rmtree(data)
        data.mkdir(parents=True)
        nodes[node_id] = KraftNode(node_id, ports, data)
    return nodes


def redact(text: str, users: Iterable[SaslUser]) -> str:
    """``text`` with every user's password replaced by ``***``."""
    for user in users:
        text = text.replace(user.password, "***")
    return text
