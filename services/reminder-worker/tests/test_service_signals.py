"""Signals: SIGTERM during start-up ends cleanly; a second signal forces the exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coffeebuddy.infra.kafka.testing import free_port, wait_until_sync


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port that accepts connections and never answers: the Kafka check waits its 15 s."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


def _start(tmp_path: Path, port: int) -> tuple[subprocess.Popen[bytes], Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLACK_"))}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}",
        SLACK_BOT_TOKEN="xoxb-signal-test",
        WORKER_HTTP_PORT=str(free_port()),
    )
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "coffeebuddy.services.reminder_worker"],
            env=env,
            stdout=log,
            stderr=log,
        )
    wait_until_sync(
        lambda: "connecting to Kafka" in log_path.read_text() or process.poll() is not None,
        timeout=60,
        message="worker reached its Kafka check",
    )
    return process, log_path


def test_sigterm_during_startup_exits_cleanly_and_fast(tmp_path: Path, blackhole: int) -> None:
    process, log_path = _start(tmp_path, blackhole)
    try:
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0, log_path.read_text()
        assert time.monotonic() - started < 10  # not the 15 s connection check
        assert "stop requested" in log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_second_signal_forces_exit(tmp_path: Path, blackhole: int) -> None:
    process, log_path = _start(tmp_path, blackhole)
    try:
        # Stopped, the worker holds both signals pending and takes them together on SIGCONT, so
        # the second one is seen while the first stop is still under way. Sent one after the other
        # to a running worker, the first could finish its (quick) start-up stop before the second.
        os.kill(process.pid, signal.SIGSTOP)
        os.kill(process.pid, signal.SIGINT)
        os.kill(process.pid, signal.SIGTERM)
        os.kill(process.pid, signal.SIGCONT)
        assert process.wait(20) == 130, log_path.read_text()
        assert "second stop signal" in log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
