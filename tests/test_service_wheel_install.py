"""The image recipe without Docker: wheels of every monorepo package, installed into a fresh venv
(wheels only, no dev/test dependencies), then the entrypoint run as the container runs it.

Mirrors services/reminder-worker/Dockerfile: build stage = one wheel per local package; runtime
stage = install those wheels (third-party dependencies from PyPI) and run
`coffeebuddy-reminder-worker`. Here it runs against its own broker and the fake Slack until
/readyz answers 200, then SIGTERM must end it cleanly.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from coffeebuddy.infra.kafka.provision import ensure_topics
from coffeebuddy.infra.kafka.testing import free_port, local_broker_kind, start_broker, wait_until
from coffeebuddy.services.fake_slack import FakeSlackServer

ROOT = Path(__file__).resolve().parents[1]
# The same list, in the same order, as the Dockerfile's build stage.
IMAGE_PACKAGES = [
    "packages/kafka-config",
    "packages/kafka-topics",
    "packages/kafka-models",
    "packages/kafka-metrics",
    "packages/kafka-producer",
    "packages/kafka-consumer",
    "packages/kafka-reminder-worker",
    "services/reminder-worker",
]


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result  # type: ignore[no-any-return]


def _python_for_image(uv: str) -> str:
    """Python 3.12 (the image's) when uv finds one locally, else the interpreter running tests."""
    found = subprocess.run(
        [uv, "python", "find", "--no-python-downloads", "3.12"],
        capture_output=True,
        text=True,
        check=False,
    )
    return (
        found.stdout.strip() if found.returncode == 0 and found.stdout.strip() else sys.executable
    )


def _spawn(executable: Path, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [str(executable)], env=env, stdout=log, stderr=log, cwd=log_path.parent
        )


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("needs the `uv` executable to build wheels and a venv (not on PATH)")
    work = tmp_path_factory.mktemp("image")
    wheels = work / "wheels"
    build_env = work / "build-env"
    _run([uv, "venv", "-q", str(build_env)])
    build_python = str(build_env / "bin" / "python")
    try:
        _run([uv, "pip", "install", "-q", "--python", build_python, "hatchling>=1.26"])
    except AssertionError as exc:
        pytest.skip(f"needs PyPI (or a uv cache) to install hatchling: {exc}")
    for package in IMAGE_PACKAGES:
        _run(
            [build_python, "-m", "hatchling", "build", "-t", "wheel", "-d", str(wheels)],
            cwd=ROOT / package,
        )
    built = sorted(wheels.glob("*.whl"))
    assert len(built) == len(IMAGE_PACKAGES), built
    venv = work / "venv"
    _run([uv, "venv", "-q", "--python", _python_for_image(uv), str(venv)])
    # Local wheels by path (never the same names from an index), third-party ones from PyPI.
    # --compile-bytecode: like pip in the image, so the entrypoint does not compile on each start.
    _run(
        [
            uv,
            "pip",
            "install",
            "-q",
            "--compile-bytecode",
            "--python",
            str(venv / "bin" / "python"),
            *map(str, built),
        ]
    )
    return venv


def test_service_wheel_image_has_no_dev_dependencies(image_venv: Path) -> None:
    script = (
        "import importlib.util as u\n"
        "for name in ('pytest', 'hypothesis', 'coffeebuddy.infra.kafka.testing', 'mypy',"
        # the Slack stand-in is a test double: never in the runtime image
        " 'slack_bolt', 'coffeebuddy.services.fake_slack'):\n"
        "    print(name, u.find_spec(name) is not None)\n"
        "import coffeebuddy.services.reminder_worker, slack_sdk, aiokafka\n"
    )
    result = _run([str(image_venv / "bin" / "python"), "-c", script])
    installed = [line for line in result.stdout.splitlines() if line.endswith(" True")]
    assert installed == [], f"dev/test packages in the runtime image: {installed}"


def test_service_wheel_entrypoint_help(image_venv: Path) -> None:
    result = _run([str(image_venv / "bin" / "coffeebuddy-reminder-worker"), "--help"])
    assert "SLACK_BOT_TOKEN" in result.stdout
    assert "WORKER_DRAIN_TIMEOUT_S" in result.stdout


async def test_service_wheel_entrypoint_serves_until_sigterm(
    image_venv: Path, tmp_path: Path
) -> None:
    port = free_port()
    broker = start_broker(kind=local_broker_kind())
    with contextlib.ExitStack() as cleanup, FakeSlackServer() as slack:
        cleanup.callback(broker.close)
        assert (await ensure_topics(broker.settings(), "dev")).ok
        env = {
            "PATH": os.environ.get("PATH", ""),
            **{k: v for k, v in broker.env.items() if k.startswith("KAFKA_")},
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_API_BASE_URL": slack.base_url,
            "WORKER_HTTP_HOST": "127.0.0.1",
            "WORKER_HTTP_PORT": str(port),
            "WORKER_DRAIN_TIMEOUT_S": "10",
        }
        log_path = tmp_path / "worker.log"
        process = _spawn(image_venv / "bin" / "coffeebuddy-reminder-worker", env, log_path)
        try:

            async def ready() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"worker exited: {log_path.read_text()}")
                async with (
                    aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
                    session.get(f"http://127.0.0.1:{port}/readyz") as response,
                ):
                    return response.status == 200

            await wait_until(ready, timeout=45, message="installed worker ready", ignore=(OSError,))
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert process.wait(20) == 0, log_path.read_text()
            assert time.monotonic() - started < 10
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    assert slack.token not in log_path.read_text()


def test_service_wheel_list_matches_the_dockerfile() -> None:
    dockerfile = (ROOT / "services" / "reminder-worker" / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (\S+) \1$", dockerfile, flags=re.MULTILINE)
    assert copied == IMAGE_PACKAGES
