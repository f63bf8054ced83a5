"""Apache Kafka for tests: KRaft nodes (combined broker and controller) as JVM processes.

One node by default, three for fault tests. Every node listens natively on PLAINTEXT, SSL,
SASL_PLAINTEXT and SASL_SSL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), with a CA made at start, SCRAM
users created at format time and the standard authorizer. The PLAINTEXT and SSL listeners are the
trusted admin way in (their ``ANONYMOUS`` principal is a super user, like ``admin``); the SASL
listeners authenticate every other user, who gets only the ACLs a test grants.

About 400 lines for one reason: a single class owning the nodes' processes and their listeners
(start, kill, restart, client settings per listener); the KRaft files are written by `_kraft`.
"""

from __future__ import annotations

import base64
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Self

from coffeebuddy.infra.kafka.testing._artifacts import KafkaRuntime, resolve_kafka_runtime
from coffeebuddy.infra.kafka.testing._certs import CertificateAuthority
from coffeebuddy.infra.kafka.testing._defaults import TEST_CLIENT_DEFAULTS
from coffeebuddy.infra.kafka.testing._kraft import (
    ADMIN_USER,
    LOG4J2,
    SASL_MECHANISMS,
    KraftNode,
    Protocol,
    SaslUser,
    plan_nodes,
    redact,
    server_properties,
)
from coffeebuddy.infra.kafka.testing._lifecycle import BrokerStartError, ContextManaged, wait_ready
from coffeebuddy.infra.kafka.testing._probe import cluster_broker_ids, run_sync
from coffeebuddy.infra.kafka.testing._process import ManagedProcess

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.config import KafkaSettings

__all__ = [
    "ADMIN_USER",
    "SASL_MECHANISMS",
    "ApacheKafka",
    "Protocol",
    "SaslUser",
    "TlsEndpoint",
]

_ADDR_IN_USE = re.compile(r"Address already in use|BindException", re.IGNORECASE)
_PORT_RETRIES = 3


class ApacheKafka(ContextManaged):
    """Apache Kafka in KRaft mode on loopback: ``nodes`` combined broker/controller processes.

    ``users``: SASL user names to create besides ``admin`` (random passwords, see :attr:`users`).
    ``broker_config``: extra ``server.properties`` entries for every node.
    """

    def __init__(
        self,
        nodes: int = 1,
        *,
        users: Iterable[str] = (),
        broker_config: Mapping[str, str] | None = None,
        startup_timeout: float = 120.0,
        heap: str = "512m",
        name: str = "apache-kafka",
        runtime: KafkaRuntime | None = None,
        quick_jit: bool = True,
    ) -> None:
        """`quick_jit`: the brokers' JVMs compile with C1 only, so they start about 2 s sooner
        and take less CPU from the tests beside them; a benchmark turns it off."""
        if nodes < 1:
            raise ValueError("an Apache Kafka cluster needs at least one node")
        self.host = "127.0.0.1"
        self.node_count = nodes
        self.name = name
        self.startup_timeout = startup_timeout
        self.heap = heap
        self.quick_jit = quick_jit
        self._extra_config = dict(broker_config or {})
        self._runtime = runtime
        self._users = {
            user: SaslUser(user, secrets.token_urlsafe(18))
            for user in dict.fromkeys([ADMIN_USER, *users])
        }
        self._dir: Path | None = None
        self._nodes: dict[int, KraftNode] = {}
        self._cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")

    # -- where it is ---------------------------------------------------------------------------

    @property
    def users(self) -> Mapping[str, SaslUser]:
        """SASL users by name (``admin`` is a super user)."""
        return dict(self._users)

    @property
    def node_ids(self) -> list[int]:
        return sorted(self._nodes)

    def bootstrap(self, protocol: Protocol = "PLAINTEXT", *, nodes: Iterable[int] = ()) -> str:
        """``host:port`` list of the ``protocol`` listener of ``nodes`` (default: all)."""
        wanted = list(nodes) or self.node_ids
        if not wanted:
            raise RuntimeError(f"{self.name} is not started")
        return ",".join(f"{self.host}:{self._nodes[i].ports[protocol]}" for i in wanted)

    @property
    def bootstrap_servers(self) -> str:
        """The PLAINTEXT listeners of every node."""
        return self.bootstrap("PLAINTEXT")

    @property
    def ca_file(self) -> Path:
        """The CA that signed every node's certificate (what ``KAFKA_SSL_CAFILE`` points at)."""
        return self._folder() / "ca.pem"

    def env(
        self,
        protocol: Protocol = "PLAINTEXT",
        *,
        user: str = ADMIN_USER,
        mechanism: str = "SCRAM-SHA-512",
        ca_file: Path | None = None,
    ) -> dict[str, str]:
        """``KAFKA_*`` variables for a client on ``protocol`` (as ``user`` on SASL listeners)."""
        env = {
            **TEST_CLIENT_DEFAULTS,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap(protocol),
            "KAFKA_SECURITY_PROTOCOL": protocol,
        }
        if protocol in ("SSL", "SASL_SSL"):
            env["KAFKA_SSL_CAFILE"] = str(ca_file or self.ca_file)
        if protocol.startswith("SASL_"):
            account = self._users[user]
            env |= {
                "KAFKA_SASL_MECHANISM": mechanism,
                "KAFKA_SASL_USERNAME": account.name,
                "KAFKA_SASL_PASSWORD": account.password,
            }
        return env

    def settings(self, protocol: Protocol = "PLAINTEXT", **kwargs: str) -> KafkaSettings:
        """``KafkaSettings`` from :meth:`env` (``user=``, ``mechanism=``)."""
        from coffeebuddy.infra.kafka.config import KafkaSettings

        return KafkaSettings.from_env(self.env(protocol, **kwargs))  # type: ignore[arg-type]

    @property
    def tls(self) -> TlsEndpoint:
        """The native SSL listeners, shaped like the embedded broker's stunnel ``TlsBroker``."""
        return TlsEndpoint(self)

    @property
    def pids(self) -> list[int]:
        return [n.process.pid for n in self._nodes.values() if n.process and n.process.pid]

    def pid(self, node_id: int) -> int | None:
        process = self._nodes[node_id].process
        return process.pid if process is not None and process.running else None

    def log_tail(self, lines: int = 40, *, node: int | None = None) -> str:
        """The last log lines of one node, or of every node with a header each."""
        picked = [node] if node is not None else self.node_ids
        parts = []
        for node_id in picked:
            process = self._nodes[node_id].process
            text = process.log_tail(lines) if process else ""
            parts.append(text if node is not None else f"--- node {node_id} ---\n{text}")
        return "\n".join(parts)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        """Generate certificates, format storage, start every node, wait until all registered."""
        if self._nodes and all(n.process and n.process.running for n in self._nodes.values()):
            return self
        runtime = self._runtime or resolve_kafka_runtime()
        self._runtime = runtime
        folder = self._folder()
        ca = CertificateAuthority(f"{self.name} test CA")
        ca.write_cert(folder / "ca.pem")
        cert_pem, key_pem = ca.issue_server_cert()
        keystore = folder / "server-keystore.pem"
        keystore.write_bytes(key_pem + cert_pem)
        keystore.chmod(0o600)
        (folder / "log4j2.properties").write_text(LOG4J2)
        error: BrokerStartError | None = None
        for _attempt in range(_PORT_RETRIES):
            self._plan_nodes(folder)
            try:
                for node in self._nodes.values():
                    self._format(node)
                for node in self._nodes.values():
                    self._spawn(node)
                self.wait_ready()
                return self
            except BrokerStartError as exc:
                error = exc
                logs = self.log_tail(400)
                self._stop_nodes(timeout=5.0)
                if not _ADDR_IN_USE.search(logs):
                    break
        assert error is not None
        raise error

    def _folder(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix=f"coffeebuddy-{self.name}-"))
        return self._dir

    def _plan_nodes(self, folder: Path) -> None:
        self._nodes = plan_nodes(self.host, self.node_count, folder)
        for node in self._nodes.values():
            (node.data_dir / "server.properties").write_text(
                server_properties(
                    node,
                    self._nodes,
                    host=self.host,
                    users=self._users.values(),
                    keystore=folder / "server-keystore.pem",
                    extra=self._extra_config,
                )
            )

    def _java(self, main: str, *args: str, heap: str = "256m", quick: bool = True) -> list[str]:
        assert self._runtime is not None
        return [
            str(self._runtime.java),
            f"-Xmx{heap}",
            "-XX:+UseSerialGC",
            *(["-XX:TieredStopAtLevel=1"] if quick else []),
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self._folder() / 'log4j2.properties'}",
            "-cp",
            self._runtime.classpath,
            main,
            *args,
        ]

    def _format(self, node: KraftNode) -> None:
        scram = [
            arg
            for user in self._users.values()
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
            for arg in ("--add-scram", f"{mechanism}=[name={user.name},password={user.password}]")
        ]
        process = ManagedProcess(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={self._cluster_id}",  # an id may start with "-"
                f"--config={node.data_dir / 'server.properties'}",
                "--ignore-formatted",
                *scram,
            ),
            name=f"{self.name}-format-{node.node_id}",
            log_path=node.data_dir / "format.log",
        )
        process.start()
        try:
            code = process.wait(timeout=max(60.0, self.startup_timeout))
        except subprocess.TimeoutExpired:  # its argv holds passwords: never let it be printed
            process.stop(timeout=2.0)
            code = None
        if code != 0:
            tail = redact(process.log_tail(30), self._users.values())
            raise BrokerStartError(
                f"formatting Apache Kafka storage for node {node.node_id} failed "
                f"(exit {code}):\n{tail}"
            )

    def _spawn(self, node: KraftNode) -> None:
        node.starts += 1
        node.process = ManagedProcess(
            self._java(
                "kafka.Kafka",
                str(node.data_dir / "server.properties"),
                heap=self.heap,
                quick=self.quick_jit,
            ),
            name=f"{self.name}-{node.node_id}",
            log_path=node.data_dir / f"server-{node.starts}.log",
        )
        node.process.start()

    def wait_ready(self, timeout: float | None = None, *, nodes: Iterable[int] = ()) -> None:
        """Wait until ``nodes`` (default: all running) answer and every live node is registered."""
        limit = self.startup_timeout if timeout is None else timeout
        wanted = list(nodes) or [
            i for i, n in self._nodes.items() if n.process and n.process.running
        ]

        def exited() -> str | None:
            for node_id in wanted:
                process = self._nodes[node_id].process
                if process is None or not process.running:
                    code = process.returncode if process else None
                    return (
                        f"{self.name} node {node_id} exited with code {code} before it was ready "
                        f"(log {process.log_path if process else '-'}):\n"
                        f"{self.log_tail(40, node=node_id)}"
                    )
            return None

        def registered() -> bool:
            for node_id in wanted:
                address = self.bootstrap("PLAINTEXT", nodes=[node_id])
                seen = run_sync(lambda: cluster_broker_ids(address, limit=2.0))  # noqa: B023
                if not set(wanted) <= seen:
                    raise ConnectionError(
                        f"node {node_id} sees brokers {sorted(seen)}, waiting for {sorted(wanted)}"
                    )
            return True

        wait_ready(
            registered,
            exited=exited,
            timeout=limit,
            interval=0.1,
            timed_out=lambda problem: (
                f"{self.name} was not ready within {limit:g} s ({problem}):\n{self.log_tail(30)}"
            ),
        )

    def kill(self, node_id: int) -> None:
        """SIGKILL one node (its data stays; :meth:`restart` brings it back)."""
        process = self._nodes[node_id].process
        if process is not None and process.running:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30.0)

    def stop_node(self, node_id: int, timeout: float = 30.0) -> None:
        """Stop one node cleanly (SIGTERM, controlled shutdown), SIGKILL after ``timeout``."""
        process = self._nodes[node_id].process
        if process is not None:
            process.stop(timeout=timeout)

    def restart(self, node_id: int, *, wait: bool = True) -> None:
        """Start a stopped or killed node again on its ports and data (durable storage)."""
        node = self._nodes[node_id]
        if node.process is not None and node.process.running:
            raise RuntimeError(f"{self.name} node {node_id} is still running")
        self._spawn(node)
        if wait:
            self.wait_ready(nodes=[node_id])

    def stop(self, timeout: float = 15.0) -> None:
        """Stop every node and remove the cluster's files."""
        self._stop_nodes(timeout)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _stop_nodes(self, timeout: float) -> None:
        running = [n.process for n in self._nodes.values() if n.process and n.process.running]
        for process in running:  # all at once: a lone survivor waits for a quorum that is gone
            process.send_signal(signal.SIGTERM)
        for process in running:
            process.stop(timeout=timeout)

    def __repr__(self) -> str:
        where = self.bootstrap_servers if self._nodes else "not started"
        return f"<ApacheKafka {self.name} nodes={self.node_count} {where}>"


class TlsEndpoint:
    """The SSL listeners of an :class:`ApacheKafka`, with the surface of ``TlsBroker``."""

    def __init__(self, cluster: ApacheKafka) -> None:
        self._cluster = cluster

    @property
    def bootstrap_servers(self) -> str:
        return self._cluster.bootstrap("SSL")

    @property
    def ca_file(self) -> Path:
        return self._cluster.ca_file

    @property
    def pids(self) -> list[int]:
        return self._cluster.pids

    def env(self, *, ca_file: Path | None = None) -> dict[str, str]:
        """``KAFKA_*`` variables for an SSL client trusting ``ca_file`` (default: cluster CA)."""
        return self._cluster.env("SSL", ca_file=ca_file)

    @property
    def settings(self) -> KafkaSettings:
        return self.settings_with()

    def settings_with(
        self, *, ca_file: Path | None = None, extra: Mapping[str, str] | None = None
    ) -> KafkaSettings:
        from coffeebuddy.infra.kafka.config import KafkaSettings

        return KafkaSettings.from_env({**self.env(ca_file=ca_file), **(extra or {})})

    def log_tail(self, lines: int = 40) -> str:
        return self._cluster.log_tail(lines)

    def __repr__(self) -> str:
        return f"<TlsEndpoint {self.bootstrap_servers}>"
