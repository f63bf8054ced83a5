"""Apache Kafka from its Maven artifacts: listeners, SASL users, the authorizer, faults, no orphans.

These start JVMs; where Java or the Kafka jars cannot be had they skip naming what is missing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import TopicAuthorizationFailedError

from coffeebuddy.infra.kafka.config import KafkaConnectionError, KafkaSettings, check_connection
from coffeebuddy.infra.kafka.testing import (
    SASL_MECHANISMS,
    ApacheKafka,
    ApacheKafkaUnavailableError,
    BrokerHandle,
    BrokerStartError,
    apache_kafka_unavailable,
    create_topics,
    resolve_kafka_runtime,
    unique_topic_name,
    wait_until,
    wait_until_sync,
)
from coffeebuddy.infra.kafka.testing._apache import ADMIN_USER
from coffeebuddy.infra.kafka.testing._artifacts import JAVA_MISSING, KAFKA_HOME_ENV, find_java

UNAVAILABLE = apache_kafka_unavailable()
needs_apache = pytest.mark.skipif(
    UNAVAILABLE is not None, reason=f"needs Apache Kafka here: {UNAVAILABLE}"
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def _wait_gone(pids: list[int], what: str) -> None:
    wait_until_sync(
        lambda: not any(_alive(pid) for pid in pids), timeout=30, message=f"{what} {pids} gone"
    )


@pytest.fixture(scope="module")
def apache(kafka_broker: BrokerHandle) -> Iterator[ApacheKafka]:
    """The session's Apache Kafka, or a private one when the session runs another broker."""
    if kafka_broker.apache is not None:
        yield kafka_broker.apache
        return
    if UNAVAILABLE is not None:
        pytest.skip(f"needs Apache Kafka here: {UNAVAILABLE}")
    with ApacheKafka(users=["alice"], name="apache-kafka-private") as cluster:
        yield cluster


def test_missing_java_names_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(ApacheKafkaUnavailableError) as caught:
        find_java({"PATH": str(tmp_path)})
    assert JAVA_MISSING in str(caught.value)
    assert "openjdk-17-jre-headless maven" in str(caught.value)
    assert apache_kafka_unavailable({"PATH": str(tmp_path)}) == str(caught.value)


@needs_apache
def test_kafka_home_without_libs_is_named(tmp_path: Path) -> None:
    env = {**os.environ, KAFKA_HOME_ENV: str(tmp_path)}
    with pytest.raises(ApacheKafkaUnavailableError, match=r"KAFKA_HOME=.*no libs/"):
        resolve_kafka_runtime(env)
    assert "has no libs/" in (apache_kafka_unavailable(env) or "")


@needs_apache
def test_no_mvn_and_no_cache_is_named(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # java and nothing else on PATH
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(find_java())
    env = {"PATH": str(bin_dir), "COFFEEBUDDY_KAFKA_CACHE": str(tmp_path / "empty-cache")}
    reason = apache_kafka_unavailable(env)
    assert reason is not None
    assert "mvn is missing" in reason


async def _produce(settings_kwargs: dict[str, object], topic: str) -> None:
    producer = AIOKafkaProducer(**settings_kwargs)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"x", key=b"k")
    finally:
        await producer.stop()


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])
async def test_every_listener_carries_an_idempotent_producer(
    apache: ApacheKafka, protocol: str
) -> None:
    topic = unique_topic_name(f"listener-{protocol}")
    await create_topics(apache.settings(), [(topic, 1)])
    settings = apache.settings(protocol)  # type: ignore[arg-type]
    assert settings.enable_idempotence
    assert settings.acks == "all"
    await _produce(settings.producer_kwargs(), topic)


@pytest.mark.parametrize("mechanism", SASL_MECHANISMS)
async def test_sasl_users_exist_for_every_mechanism_and_the_authorizer_is_on(
    apache: ApacheKafka, mechanism: str
) -> None:
    topic = unique_topic_name(f"authz-{mechanism}")
    await create_topics(apache.settings(), [(topic, 1)])
    admin = apache.settings("SASL_SSL", user=ADMIN_USER, mechanism=mechanism)
    await _produce(admin.producer_kwargs(), topic)  # the super user may
    other = next(name for name in apache.users if name != ADMIN_USER)
    nobody = apache.settings("SASL_SSL", user=other, mechanism=mechanism)
    with pytest.raises(TopicAuthorizationFailedError):  # no ACL granted: refused
        await _produce({**nobody.producer_kwargs(), "enable_idempotence": False}, topic)


@pytest.mark.parametrize("mechanism", SASL_MECHANISMS)
async def test_wrong_password_is_refused_naming_user_and_mechanism(
    apache: ApacheKafka, mechanism: str
) -> None:
    env = apache.env("SASL_SSL", mechanism=mechanism)
    env["KAFKA_SASL_PASSWORD"] = "not-the-password-4711"
    settings = KafkaSettings.from_env(env)
    with pytest.raises(KafkaConnectionError) as caught:
        await check_connection(settings, timeout=10)
    message = str(caught.value)
    assert "KAFKA_SASL_USERNAME" in message
    assert mechanism in message
    assert "not-the-password-4711" not in message
    assert apache.users[ADMIN_USER].password not in message


def test_reprs_keep_passwords_out(apache: ApacheKafka) -> None:
    for user in apache.users.values():
        assert user.password not in repr(user)
        assert user.password not in repr(apache)
        assert user.password not in repr(apache.settings("SASL_SSL", user=user.name))


@needs_apache
def test_failed_start_reports_the_log_and_leaves_no_jvm() -> None:
    cluster = ApacheKafka(startup_timeout=0.5, name="apache-kafka-too-slow")
    with pytest.raises(BrokerStartError, match=r"not ready within 0.5 s") as caught:
        cluster.start()
    pids = cluster.pids
    cluster.stop()
    assert "--- node 1 ---" in str(caught.value)  # the log tail is in the error
    assert pids
    _wait_gone(pids, "JVMs of a failed start")


_CHILD = """\
import sys
from coffeebuddy.infra.kafka.testing import ApacheKafka
cluster = ApacheKafka(name="apache-kafka-orphan-test").start()
print(*cluster.pids, "ready", flush=True)
sys.stdin.read()
"""


@needs_apache
def test_jvm_dies_with_a_sigkilled_python() -> None:
    """The kernel's parent-death signal takes the JVM down although Python had no say."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    with child:
        assert child.stdout is not None
        words = child.stdout.readline().split()
        assert "ready" in words, f"child exited with {child.wait()}"
        pids = [int(word) for word in words if word.isdigit()]
        assert pids
        assert all(_alive(pid) for pid in pids)
        child.kill()
        assert child.wait(timeout=10) == -signal.SIGKILL
    _wait_gone(pids, "Apache Kafka JVM")


_INTERRUPTED = """\
from pathlib import Path
from coffeebuddy.infra.kafka.testing import BrokerHandle, wait_until_sync

def test_blocks(kafka_broker: BrokerHandle) -> None:
    assert kafka_broker.apache is not None
    Path("{pid_file}").write_text(" ".join(map(str, kafka_broker.apache.pids)))
    wait_until_sync(lambda: False, timeout=180, message="the parent interrupts us first")
"""


@needs_apache
def test_session_jvm_is_stopped_when_pytest_is_interrupted(tmp_path: Path) -> None:
    pid_file = tmp_path / "jvm.pids"
    test_file = tmp_path / "test_interrupted_apache.py"
    test_file.write_text(_INTERRUPTED.format(pid_file=pid_file))
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env["COFFEEBUDDY_KAFKA_BROKER"] = "apache"
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            str(test_file),
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
            "-o",
            "asyncio_default_fixture_loop_scope=function",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_sync(
            lambda: pid_file.exists() and bool(pid_file.read_text().strip()),
            timeout=120,
            message="inner pytest started its Apache Kafka",
        )
        pids = [int(pid) for pid in pid_file.read_text().split()]
        run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate(timeout=10)
    assert "KeyboardInterrupt" in output, output
    _wait_gone(pids, "session Apache Kafka JVM")


async def test_cluster_survives_a_killed_node_and_takes_it_back(kafka_cluster: ApacheKafka) -> None:
    """Three nodes, RF 3, min ISR 2: acks=all writes go on with a node SIGKILLed; it rejoins."""
    topic = unique_topic_name("three-nodes")
    await create_topics(
        kafka_cluster.settings(),
        [(topic, 1)],
        replication_factor=3,
        configs={"min.insync.replicas": "2"},
    )
    settings = kafka_cluster.settings()
    victim = kafka_cluster.node_ids[-1]
    kafka_cluster.kill(victim)
    assert kafka_cluster.pid(victim) is None
    survivors = [i for i in kafka_cluster.node_ids if i != victim]
    await _produce(
        {
            **settings.producer_kwargs(),
            "bootstrap_servers": kafka_cluster.bootstrap(nodes=survivors),
        },
        topic,
    )
    kafka_cluster.restart(victim)
    assert kafka_cluster.pid(victim) is not None
    admin = AIOKafkaAdminClient(**settings.admin_kwargs())
    await admin.start()
    try:

        async def back_in_sync() -> bool:
            described = await admin.describe_topics([topic])
            return len(described[0]["partitions"][0].get("isr", [])) == 3

        assert await wait_until(back_in_sync, timeout=60, message=f"node {victim} back in ISR")
    finally:
        await admin.close()
