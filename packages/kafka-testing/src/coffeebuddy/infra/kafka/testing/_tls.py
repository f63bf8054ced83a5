"""TLS mode: the embedded broker behind stunnel, with a CA and server certificate made on the fly.

Tansu's own TLS flags (in the pinned 0.6.0 build) do not work with aiokafka (clients hang), so
stunnel terminates TLS on one port and forwards plain Kafka to the broker, which advertises the
TLS port to clients.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Self

from coffeebuddy.infra.kafka.testing._certs import CertificateAuthority
from coffeebuddy.infra.kafka.testing._defaults import TEST_CLIENT_DEFAULTS
from coffeebuddy.infra.kafka.testing._embedded import EmbeddedBroker
from coffeebuddy.infra.kafka.testing._lifecycle import BrokerStartError, ContextManaged, wait_ready
from coffeebuddy.infra.kafka.testing._ports import free_port, port_is_open
from coffeebuddy.infra.kafka.testing._probe import fetch_api_versions, run_sync
from coffeebuddy.infra.kafka.testing._process import ManagedProcess

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.config import KafkaSettings

__all__ = [
    "STUNNEL_BIN_ENV",
    "STUNNEL_MISSING",
    "StunnelNotFoundError",
    "TlsBroker",
    "find_stunnel",
]

#: Environment variable naming the stunnel binary (default: ``stunnel`` or ``stunnel4`` on PATH).
STUNNEL_BIN_ENV = "COFFEEBUDDY_STUNNEL_BIN"
STUNNEL_MISSING = "stunnel (Debian stunnel4) is not installed"

_ADDR_IN_USE = re.compile(r"address already in use|AddrInUse|bind: ", re.IGNORECASE)
_ATTEMPTS = 3


class StunnelNotFoundError(BrokerStartError):
    """No stunnel binary: the TLS broker cannot run on this machine."""


def find_stunnel() -> Path:
    """``$COFFEEBUDDY_STUNNEL_BIN``, else ``stunnel``/``stunnel4`` on PATH."""
    override = os.environ.get(STUNNEL_BIN_ENV)
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise StunnelNotFoundError(f"{STUNNEL_BIN_ENV}={override!r} is not an executable file")
        return Path(override)
    for name in ("stunnel", "stunnel4"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise StunnelNotFoundError(STUNNEL_MISSING)


class TlsBroker(ContextManaged):
    """An embedded Tansu broker reachable only through TLS (stunnel) on ``bootstrap_servers``.

    ``ca_file`` is the CA that signed the server certificate; ``settings`` is a ``KafkaSettings``
    with ``KAFKA_SECURITY_PROTOCOL=SSL`` and ``KAFKA_SSL_CAFILE`` set to it.
    """

    def __init__(self, *, startup_timeout: float = 30.0, stunnel: Path | None = None) -> None:
        self.host = "127.0.0.1"
        self.startup_timeout = startup_timeout
        self._stunnel_bin = stunnel
        self._dir: Path | None = None
        self.broker: EmbeddedBroker | None = None
        self._stunnel: ManagedProcess | None = None
        self._tls_port: int | None = None
        self.ca: CertificateAuthority | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self._tls_port is None:
            raise RuntimeError("TLS broker is not started")
        return f"{self.host}:{self._tls_port}"

    @property
    def ca_file(self) -> Path:
        if self._dir is None:
            raise RuntimeError("TLS broker is not started")
        return self._dir / "ca.pem"

    @property
    def settings(self) -> KafkaSettings:
        """``KafkaSettings`` trusting ``ca_file`` (fresh object on each access)."""
        return self.settings_with(ca_file=self.ca_file)

    def env(self, *, ca_file: Path | None = None) -> dict[str, str]:
        """The ``KAFKA_*`` variables of :attr:`settings` (``ca_file`` to trust another CA)."""
        return {
            **TEST_CLIENT_DEFAULTS,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_CAFILE": str(ca_file or self.ca_file),
            "KAFKA_ENABLE_IDEMPOTENCE": "false",  # the embedded broker behind it cannot
        }

    def settings_with(
        self, *, ca_file: Path | None = None, extra: Mapping[str, str] | None = None
    ) -> KafkaSettings:
        """``KafkaSettings`` for this broker trusting ``ca_file`` plus ``extra`` variables."""
        from coffeebuddy.infra.kafka.config import KafkaSettings

        return KafkaSettings.from_env({**self.env(ca_file=ca_file), **(extra or {})})

    def log_tail(self, lines: int = 40) -> str:
        """Broker and stunnel log tails."""
        broker = self.broker.log_tail(lines) if self.broker else ""
        proxy = self._stunnel.log_tail(lines) if self._stunnel else ""
        return f"--- tansu ---\n{broker}\n--- stunnel ---\n{proxy}"

    @property
    def pids(self) -> list[int]:
        """Process ids of the broker and stunnel (for orphan checks)."""
        pids = [
            self.broker.pid if self.broker else None,
            self._stunnel.pid if self._stunnel else None,
        ]
        return [pid for pid in pids if pid is not None]

    def start(self) -> Self:
        """Generate certificates, start Tansu and stunnel, wait for a TLS ApiVersions answer."""
        stunnel_bin = self._stunnel_bin or find_stunnel()
        self._dir = Path(tempfile.mkdtemp(prefix="coffeebuddy-tls-"))
        self.ca = CertificateAuthority()
        self.ca.write_cert(self._dir / "ca.pem")
        cert_pem, key_pem = self.ca.issue_server_cert()
        (self._dir / "server.pem").write_bytes(cert_pem)
        key_path = self._dir / "server.key"
        key_path.write_bytes(key_pem)
        key_path.chmod(0o600)
        error: BrokerStartError | None = None
        for attempt in range(_ATTEMPTS):
            tls_port = free_port(self.host)
            broker = EmbeddedBroker(
                advertised_port=tls_port,
                startup_timeout=self.startup_timeout,
                log_dir=self._dir,
                name="tansu-tls",
            )
            broker.start()
            self.broker, self._tls_port = broker, tls_port
            stunnel = self._start_stunnel(stunnel_bin, tls_port, broker.port, attempt)
            try:
                self._wait_ready(stunnel, tls_port)
                return self
            except BrokerStartError as exc:
                error = exc
                stunnel.stop(timeout=2.0)
                broker.stop(timeout=2.0)
                if not _ADDR_IN_USE.search(stunnel.log_tail(100)):
                    break
        assert error is not None
        raise error

    def _start_stunnel(
        self, binary: Path, tls_port: int, plain_port: int, attempt: int
    ) -> ManagedProcess:
        assert self._dir is not None
        conf = self._dir / f"stunnel-{attempt}.conf"
        conf.write_text(
            "\n".join(
                [
                    "foreground = yes",
                    f"pid = {self._dir / f'stunnel-{attempt}.pid'}",
                    "debug = 5",
                    "[kafka]",
                    f"accept = {self.host}:{tls_port}",
                    f"connect = {self.host}:{plain_port}",
                    f"cert = {self._dir / 'server.pem'}",
                    f"key = {self._dir / 'server.key'}",
                    "",
                ]
            )
        )
        process = ManagedProcess(
            [str(binary), str(conf)],
            name=f"stunnel:{tls_port}",
            log_path=self._dir / f"stunnel-{attempt}.log",
        )
        process.start()
        self._stunnel = process
        return process

    def _wait_ready(self, stunnel: ManagedProcess, tls_port: int) -> None:
        context = self.settings.ssl_context()  # the client's own TLS context, trusting our CA
        address = f"{self.host}:{tls_port}"

        def answers() -> bool:
            if not port_is_open(self.host, tls_port, timeout=0.5):
                return False
            run_sync(
                lambda: fetch_api_versions(
                    address, limit=2.0, security_protocol="SSL", ssl_context=context
                )
            )
            return True

        def exited() -> str | None:
            if stunnel.running:
                return None
            return (
                f"stunnel exited with code {stunnel.returncode} before it was ready "
                f"(log {stunnel.log_path}):\n{stunnel.log_tail()}"
            )

        wait_ready(
            answers,
            exited=exited,
            timeout=self.startup_timeout,
            timed_out=lambda problem: (
                f"TLS broker on {address} was not ready within {self.startup_timeout:g} s "
                f"({problem}):\n{self.log_tail()}"
            ),
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Stop stunnel and the broker; remove the certificates."""
        if self._stunnel is not None:
            self._stunnel.stop(timeout=timeout)
        if self.broker is not None:
            self.broker.stop(timeout=timeout)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __repr__(self) -> str:
        where = self.bootstrap_servers if self._tls_port is not None else "not started"
        return f"<TlsBroker {where}>"
