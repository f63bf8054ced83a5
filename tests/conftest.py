"""Fixtures for the tests that need Apache Kafka itself (ACLs, SASL users, broker faults).

`catalog_kafka`: a dedicated single-node Apache Kafka (one SCRAM user per catalog principal)
with the catalog's dev topics and ACLs applied by the provisioning code, shared by the
least-privilege and single-broker fault tests. `leak_check`: after a test, no SASL password or
private key of any Apache Kafka it used may appear in its logs, output or files under tmp_path.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from coffeebuddy.infra.kafka.models import ReminderScheduled, ReminderScheduledData
from coffeebuddy.infra.kafka.provision import apply_plan, build_plan
from coffeebuddy.infra.kafka.testing import (
    SESSION_SASL_USERS,
    ApacheKafka,
    apache_kafka_unavailable,
    free_port,
    wait_until,
)
from coffeebuddy.services.fake_slack import FakeSlackServer

_PEM_BODY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----\n(.*?)\n-----END", re.DOTALL)


def require_apache() -> None:
    """Skip (naming why) where this run cannot or must not start Apache Kafka."""
    if os.environ.get("COFFEEBUDDY_KAFKA_BROKER") == "embedded":
        pytest.skip(
            "needs Apache Kafka (ACLs, SASL users, a broker to kill): "
            "COFFEEBUDDY_KAFKA_BROKER=embedded forces the embedded broker"
        )
    reason = apache_kafka_unavailable()
    if reason is not None:
        pytest.skip(f"needs Apache Kafka (ACLs, SASL users, a broker to kill): {reason}")


@pytest.fixture(scope="session")
def apache_required() -> None:
    """Skips (naming why) where this run cannot or must not start Apache Kafka."""
    require_apache()


async def provision(cluster: ApacheKafka, env: str) -> None:
    """`plan` + `apply` of the shipped catalog for `env`, ACLs included, as the admin; then
    wait until a new plan is empty: CreateAcls answers before every broker's authorizer has
    the new bindings (an idempotent producer started at once gets ClusterAuthorizationFailed)."""
    settings = cluster.settings()
    plan = await build_plan(settings, None, env)
    report = await apply_plan(settings, plan)
    assert report.ok, report.to_json()

    async def in_sync() -> bool:
        return (await build_plan(settings, None, env)).changes == ()

    await wait_until(in_sync, timeout=30, message=f"{env} catalog in sync after apply")


@pytest.fixture(scope="session")
def provision_catalog() -> object:
    """`await provision_catalog(cluster, env)`: the catalog applied and in sync (see provision)."""
    return provision


@pytest.fixture(scope="session")
def catalog_kafka() -> Iterator[ApacheKafka]:
    """A dedicated Apache Kafka (SCRAM users per catalog principal) with the dev catalog."""
    require_apache()
    cluster = ApacheKafka(users=SESSION_SASL_USERS, name="apache-kafka-catalog").start()
    try:
        asyncio.run(provision(cluster, "dev"))
        yield cluster
    finally:
        cluster.stop()


def cluster_secrets(cluster: ApacheKafka) -> list[str]:
    """Every SASL password of `cluster` and the base64 lines of its private key."""
    found = [user.password for user in cluster.users.values()]
    keystore = cluster.ca_file.parent / "server-keystore.pem"
    if keystore.exists():
        for body in _PEM_BODY.findall(keystore.read_text()):
            found.extend(line for line in body.splitlines() if len(line) >= 32)
    return found


class LeakCheck:
    """Secrets to look for and extra texts (subprocess output) to look in."""

    def __init__(self) -> None:
        self.secrets: list[str] = []
        self.texts: list[tuple[str, str]] = []

    def watch(self, cluster: ApacheKafka) -> None:
        self.secrets.extend(cluster_secrets(cluster))

    def scan(self, where: str, text: str) -> None:
        self.texts.append((where, text))


@pytest.fixture
def leak_check(
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> Iterator[LeakCheck]:
    """Fail the test when a password or private key of its Apache Kafka shows up anywhere."""
    check = LeakCheck()
    yield check
    for name in request.fixturenames:
        value = request.node.funcargs.get(name)
        if isinstance(value, ApacheKafka):
            check.watch(value)
    out, err = capsys.readouterr()
    logged = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''} {r.exc_info[1] if r.exc_info else ''}"
        for phase in ("setup", "call")
        for r in caplog.get_records(phase)  # type: ignore[arg-type]
    )
    texts = [("captured log", logged), ("stdout", out), ("stderr", err), *check.texts]
    texts.extend(
        (str(path), path.read_text(errors="replace"))
        for path in tmp_path.rglob("*")
        if path.is_file()
    )
    assert check.secrets, "leak_check found no secrets to look for: no Apache Kafka in the test"
    leaks = sorted({where for where, text in texts for secret in check.secrets if secret in text})
    assert not leaks, f"a test password or private key appears in: {leaks}"


@dataclass
class WorkerProcess:
    """The deployable worker (`python -m coffeebuddy.services.reminder_worker`) as a process."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def for_cluster(
        cls,
        cluster: ApacheKafka,
        slack: FakeSlackServer,
        log_path: Path,
        *,
        protocol: str = "SASL_SSL",
        user: str = "reminder-worker",
        mechanism: str = "SCRAM-SHA-512",
        bootstrap: str | None = None,
        **extra: str,
    ) -> WorkerProcess:
        kafka = cluster.env(protocol, user=user, mechanism=mechanism)  # type: ignore[arg-type]
        if bootstrap is not None:
            kafka["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLACK_"))},
            **kafka,
            "KAFKA_CLIENT_ID": "reminder-worker-test",
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_API_BASE_URL": slack.base_url,
            "SLACK_TIMEOUT_S": "2",
            "REMINDER_AUTH_PROBE_MAX_S": "1",
            "WORKER_HTTP_HOST": "127.0.0.1",
            "WORKER_HTTP_PORT": str(free_port()),
            "WORKER_DRAIN_TIMEOUT_S": "10",
            **extra,
        }
        return cls(env, log_path)

    def start(self) -> WorkerProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "coffeebuddy.services.reminder_worker"],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['WORKER_HTTP_PORT']}"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def records(self) -> list[dict[str, object]]:
        """The JSON log lines."""
        return [json.loads(line) for line in self.logs().splitlines() if line.startswith("{")]

    async def readyz(self) -> tuple[int, dict[str, object]]:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
            session.get(self.url + "/readyz") as response,
        ):
            return response.status, json.loads(await response.text())

    async def wait_ready(
        self, deadline_s: float = 60.0, *, ready: bool = True
    ) -> dict[str, object]:
        """Wait until /readyz says `ready` (the body of that answer)."""
        seen: list[dict[str, object]] = []

        async def check() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the worker exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            status, body = await self.readyz()
            seen[:] = [body]
            return (status == 200) is ready

        try:
            await wait_until(
                check, timeout=deadline_s, message=f"worker ready={ready}", ignore=(OSError,)
            )
        except TimeoutError as exc:
            raise AssertionError(f"{exc} (last {seen})\n{self.log_tail()}") from None
        return seen[0]

    async def metric(self, name: str) -> float:
        """Sum of every sample of `name` on /metrics (0 when absent)."""
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
            session.get(self.url + "/metrics") as response,
        ):
            text = await response.text()
        return sum(
            float(line.rpartition(" ")[2])
            for line in text.splitlines()
            if line.split("{", 1)[0].split(" ", 1)[0] == name
        )

    def exit_code(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def delivered(slack: FakeSlackServer) -> Counter[str]:
    """How many DMs each reminder id got (the first block id is the reminder id)."""
    return slack.block_id_counts()


class Workers:
    """Starts worker processes for a test (`workers.start(cluster, slack, **kw)`); kills
    the survivors at teardown. Also carries the helpers test modules cannot import."""

    delivered = staticmethod(delivered)

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[WorkerProcess] = []

    def make(self, cluster: ApacheKafka, slack: FakeSlackServer, **kw: str) -> WorkerProcess:
        log = self.tmp_path / f"worker-{len(self.started)}.log"
        worker = WorkerProcess.for_cluster(cluster, slack, log, **kw)
        self.started.append(worker)
        return worker

    def start(self, cluster: ApacheKafka, slack: FakeSlackServer, **kw: str) -> WorkerProcess:
        return self.make(cluster, slack, **kw).start()

    @staticmethod
    def reminder(rid: str, user: str, due_at: datetime) -> ReminderScheduled:
        return reminder(rid, user, due_at)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    """Worker processes of a test (see `Workers`)."""
    started = Workers(tmp_path)
    yield started
    for worker in started.started:
        worker.kill()


def reminder(rid: str, user: str, due_at: datetime) -> ReminderScheduled:
    """A runner reminder for `user` due at `due_at` (expires ten minutes later)."""
    data = ReminderScheduledData(
        reminder_id=rid,
        kind="runner",
        run_id=f"run-{rid}",
        team_id="T0COFFEE",
        channel_id="C0COFFEE",
        recipient_user_id=user,
        due_at=due_at,
        expires_at=due_at + timedelta(minutes=10),
        place="Corner Cafe",
        closes_at=due_at + timedelta(minutes=5),
        order_count=1,
    )
    return ReminderScheduled.create(data=data)
