"""EmbeddedBroker / TlsBroker lifecycle: start, stop, readiness errors, and no orphans ever.

The orphan tests run a real Python (or pytest) child that starts brokers, then kill it the hard
way and wait (with a deadline) for the broker processes to disappear.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from coffeebuddy.infra.kafka.testing import (
    BrokerStartError,
    EmbeddedBroker,
    free_port,
    wait_until,
    wait_until_sync,
)
from coffeebuddy.infra.kafka.testing._embedded import TANSU_BIN_ENV, find_tansu_binary
from coffeebuddy.infra.kafka.testing._ports import port_is_open
from coffeebuddy.infra.kafka.testing._tls import find_stunnel


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (containers may not reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_gone(pids: list[int], what: str) -> None:
    wait_until_sync(
        lambda: not any(pid_alive(pid) for pid in pids),
        timeout=15,
        message=f"{what} processes {pids} gone",
    )


def test_embedded_broker_start_stop_and_context_manager() -> None:
    with EmbeddedBroker() as broker:
        pid = broker.pid
        assert pid is not None
        assert pid_alive(pid)
        host, port = broker.bootstrap_servers.split(":")
        assert host == "127.0.0.1"
        assert port_is_open(host, int(port))
        assert 18 in broker.api_versions, "readiness asked ApiVersions"
        assert broker.version[0].isdigit()
        assert "listening on" in broker.log_tail()
    wait_gone([pid], "embedded broker")
    assert not broker.running


async def test_embedded_broker_async_context_manager() -> None:
    async with EmbeddedBroker() as broker:
        pid = broker.pid
        assert pid is not None
        assert broker.running
    await wait_until(lambda: not pid_alive(pid), timeout=10, message="broker gone")


def test_requested_port_in_use_is_reported_with_the_log() -> None:
    with (
        EmbeddedBroker() as first,
        pytest.raises(BrokerStartError, match=r"(?i)address.*in use"),
    ):
        EmbeddedBroker(port=first.port, startup_timeout=10).start()


def test_port_lost_to_another_process_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """free_port() races: when the picked port is taken before Tansu binds, start on another."""
    import socket

    from coffeebuddy.infra.kafka.testing import _embedded

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        monkeypatch.setattr(_embedded, "free_port", lambda host: next(ports, None) or free_port())
        with EmbeddedBroker(startup_timeout=10) as broker:
            assert broker.port != taken
            assert 18 in broker.api_versions


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def _fake_tansu(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-tansu"
    script.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    script.chmod(0o755)
    return script


def test_readiness_timeout_error_carries_the_log_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = _fake_tansu(
        tmp_path,
        """\
        echo "fake tansu starting with $*"
        echo "pretending to listen, but never will" >&2
        exec sleep 60
        """,
    )
    monkeypatch.setenv(TANSU_BIN_ENV, str(script))
    assert find_tansu_binary() == script
    broker = EmbeddedBroker(startup_timeout=1.0)
    with pytest.raises(BrokerStartError) as caught:
        broker.start()
    message = str(caught.value)
    assert "was not ready within 1 s" in message
    assert "fake tansu starting with broker --listener-url tcp://127.0.0.1:" in message
    assert "pretending to listen, but never will" in message
    assert broker.pid is not None
    wait_gone([broker.pid], "fake broker")


def test_broker_that_exits_early_is_reported_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = _fake_tansu(tmp_path, 'echo "no storage engine for you"\nexit 3\n')
    monkeypatch.setenv(TANSU_BIN_ENV, str(script))
    with pytest.raises(BrokerStartError, match="exited with code 3") as caught:
        EmbeddedBroker(startup_timeout=30.0).start()
    assert "no storage engine for you" in str(caught.value)


def test_bad_tansu_override_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TANSU_BIN_ENV, str(tmp_path / "nope"))
    with pytest.raises(BrokerStartError, match=f"{TANSU_BIN_ENV}=.*nope.* is not a file"):
        find_tansu_binary()
    plain = tmp_path / "plain"
    plain.write_text("not a program")
    monkeypatch.setenv(TANSU_BIN_ENV, str(plain))
    with pytest.raises(BrokerStartError, match="is not executable"):
        find_tansu_binary()


# -- orphans ----------------------------------------------------------------------------------

_CHILD = """\
import sys
from coffeebuddy.infra.kafka.testing import EmbeddedBroker, TlsBroker
brokers = [EmbeddedBroker().start()]
if "tls" in sys.argv:
    tls = TlsBroker().start()
    print(*tls.pids, flush=True)
print(*[b.pid for b in brokers], "ready", flush=True)
sys.stdin.read()  # until the parent kills us
"""


def _spawn_child(*args: str) -> tuple[subprocess.Popen[str], list[int]]:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    pids: list[int] = []
    while True:
        line = child.stdout.readline()
        assert line, f"child exited early with {child.wait()}"
        words = line.split()
        pids.extend(int(word) for word in words if word.isdigit())
        if "ready" in words:
            return child, pids


def test_brokers_die_with_a_sigkilled_python() -> None:
    """Plain broker, TLS broker and stunnel: all gone although Python had no chance to clean up."""
    try:
        find_stunnel()
        variant = "tls"
    except BrokerStartError:
        variant = "plain"  # stunnel missing: the TLS half cannot run here
    child, pids = _spawn_child(variant)
    with child:
        assert len(pids) == (3 if variant == "tls" else 1)
        assert all(pid_alive(pid) for pid in pids)
        child.kill()  # SIGKILL: no atexit, no handlers; only the kernel's parent-death signal
        assert child.wait(timeout=10) == -signal.SIGKILL
    wait_gone(pids, "broker/stunnel")


def test_broker_dies_with_a_sigtermed_python() -> None:
    child, pids = _spawn_child()
    with child:
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=15) == -signal.SIGTERM, "default SIGTERM outcome kept"
    wait_gone(pids, "broker")


_INTERRUPTED_TEST = """\
from pathlib import Path

from coffeebuddy.infra.kafka.testing import BrokerHandle, wait_until_sync


def test_blocks(kafka_broker: BrokerHandle) -> None:
    pid = kafka_broker.embedded.pid if kafka_broker.embedded else None
    Path("{pid_file}").write_text(str(pid))
    wait_until_sync(lambda: False, timeout=120, message="the parent interrupts us first")
"""


def test_session_broker_is_stopped_when_pytest_is_interrupted(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT -> KeyboardInterrupt) in the middle of a test run stops the session broker."""
    pid_file = tmp_path / "broker.pid"
    test_file = tmp_path / "test_interrupted_session.py"
    test_file.write_text(_INTERRUPTED_TEST.format(pid_file=pid_file))
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env["COFFEEBUDDY_KAFKA_BROKER"] = "embedded"
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
            lambda: pid_file.exists() and pid_file.read_text().isdigit(),
            timeout=60,
            message="inner pytest started its session broker",
        )
        pid = int(pid_file.read_text())
        assert pid_alive(pid)
        run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate(timeout=10)
    assert "KeyboardInterrupt" in output, output
    wait_gone([pid], "session broker")
