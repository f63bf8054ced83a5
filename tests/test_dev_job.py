"""`hatch run dev` (tools/dev.py) is the README's first command: it must show the demo working,
narrate what a newcomer publishes next (the commands it prints must work as printed), and stop
cleanly on Ctrl-C at any moment: the worker first, then the broker, no library error lines."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RULES = REPO / "infra" / "prometheus" / "rules"
NO_LIBRARY_NOISE = ("ERROR", "Traceback", "aiokafka", "Exception ignored", "Unclosed")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLACK_"))}
    env.pop("COFFEEBUDDY_DEV_SLACK_USER", None)
    return env


class DevJob:
    """tools/dev.py in a subprocess; its stdout collected line by line on a thread."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "tools" / "dev.py"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(),
            cwd=REPO,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def out(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 90) -> re.Match[str]:
        """The first output line matching `pattern` (a condition with a deadline)."""
        regex = re.compile(pattern)
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(regex.search(x) for x in self.lines) or not self._reader.is_alive(),
                timeout=timeout,
            )
            for line in self.lines:
                match = regex.search(line)
                if match:
                    return match
        state = "timed out" if not found else f"exited {self.process.poll()}"
        raise AssertionError(f"no line matching {pattern!r} ({state}):\n{self.out}")

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def dev_job() -> Iterator[list[DevJob]]:
    jobs: list[DevJob] = []
    yield jobs
    for job in jobs:
        job.close()


def _stopped_in_order(out: str) -> None:
    worker = out.index("worker stopped (exit code 0)")
    broker = out.index("broker stopped")
    assert worker < broker, out
    for noise in NO_LIBRARY_NOISE:
        assert noise not in out, f"{noise!r} in the output:\n{out}"


def test_dev_job_delivers_the_sample_run_and_stops_cleanly() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "dev.py"), "--exit-after-demo"],
        capture_output=True,
        text=True,
        timeout=150,
        env=_env(),
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, f"stdout:\n{out}\nstderr:\n{result.stderr[-3000:]}"
    assert "created coffeebuddy.reminder.events" in out
    assert "2 of 2 expected DMs delivered" in out
    assert "2 DM(s) in Slack" in out
    assert "cancelled reminder not sent" in out
    assert out.count("-> U0CAROL (last-call)") == 1, "the re-published reminder was sent twice"
    # the DM text as Slack shows it: the date token and the mentions rendered
    assert "<!date^" not in out
    assert "<@" not in out
    assert re.search(r'"Last call: the coffee run from Blue Bottle, Market St closes at '
                     r'\d\d:\d\d; it has 3 orders\."', out), out  # fmt: skip
    assert "@U0ALICE: flat white; @U0CAROL: oat cappuccino" in out
    _stopped_in_order(out)
    assert result.stderr == ""


@pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="prometheus (Debian prometheus) is not installed"
)
def test_after_the_demo_the_printed_commands_work_and_are_narrated_then_ctrl_c(
    dev_job: list[DevJob],
) -> None:
    """The newcomer's path: publish your own reminder and a bad event with the commands the
    banner prints, see the DM and the dead letter's reason, look at Prometheus, press Ctrl-C."""
    job = DevJob("--observe")
    dev_job.append(job)
    prometheus = job.wait_for(r"Prometheus on (http://127\.0\.0\.1:\d+) ").group(1)
    job.wait_for(r"Ctrl-C stops everything\.")
    assert "2 of 2 expected DMs delivered" in job.out
    export = job.wait_for(r"export (KAFKA_BOOTSTRAP_SERVERS=\S+) (KAFKA_ENABLE_IDEMPOTENCE=false)")
    env = _env() | dict(v.split("=", 1) for v in export.groups())
    printed = [
        line.strip()
        for line in job.lines
        if line.strip().startswith(("hatch run coffeebuddy-kafka", "echo "))
    ]
    listing, showing, publish, tail, bad = printed
    assert "reminders list --run run-demo-" in listing
    assert "reminders show run-demo-" in showing
    assert publish.endswith("events publish reminder.scheduled --due-in 30")
    assert tail.endswith("events tail coffeebuddy.reminder.events")

    def run(command: str) -> subprocess.CompletedProcess[str]:
        # as printed, with this env's console script for `hatch run coffeebuddy-kafka`
        command = command.split("   #", 1)[0].replace(
            "hatch run coffeebuddy-kafka", str(BIN / "coffeebuddy-kafka")
        )
        return subprocess.run(
            ["/bin/sh", "-c", command],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    demo = run(listing)
    assert demo.returncode == 0, demo.stderr
    assert "run-demo-" in demo.stdout
    assert {"sent", "cancelled"} <= set(demo.stdout.split())
    story = run(showing)
    assert story.returncode == 0, story.stderr
    assert "scheduled" in story.stdout
    mine = run(publish.replace("--due-in 30", "--due-in 2"))
    assert mine.returncode == 0, mine.stderr
    reminder_id = re.search(r"reminder (\S+) for U0DEVUSER", mine.stderr)
    assert reminder_id is not None, mine.stderr
    garbled = run(bad)
    assert garbled.returncode == 0, garbled.stderr
    stale = run(publish.replace("--due-in 30", "--due-in=-20m"))  # past its expiry: rejected
    stale_id = re.search(r"reminder (\S+) for U0DEVUSER", stale.stderr)
    assert stale_id is not None, stale.stderr
    mine_id = re.escape(reminder_id.group(1))
    job.wait_for(rf"schedule  last-call reminder {mine_id} for U0DEVUSER .*\(your event\)")
    job.wait_for(r"DM        -> U0DEVUSER \(last-call\) due .* delivered [+-]\d+ ms late")
    job.wait_for(
        r"dead-ltr  coffeebuddy\.reminder\.events\[\d\]@\d+ \(decode_error\): EventDecodeError: "
        r"coffeebuddy\.reminder\.scheduled\.v1: data\.due_at: must be an RFC 3339 timestamp"
    )
    job.wait_for(
        r"list them: hatch run coffeebuddy-kafka dlq inspect coffeebuddy\.reminder\.events"
    )
    job.wait_for(rf"dropped   {re.escape(stale_id.group(1))}: expired$")
    seen = run(tail.replace("events tail", "events tail --from-beginning -e"))
    assert seen.returncode == 0, seen.stderr
    assert "UNDECODABLE" in seen.stdout
    assert f"reminder {reminder_id.group(1)} for U0DEVUSER" in seen.stdout

    def query(path: str, **params: str) -> dict[str, object]:
        url = f"{prometheus}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - local http URL
            body: dict[str, object] = json.loads(response.read())
        return body

    up = query("/api/v1/query", query='up{job="reminder-worker"}')
    assert up["data"]["result"][0]["value"][1] == "1", up  # type: ignore[index]
    rules = query("/api/v1/rules", type="alert")
    loaded = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}  # type: ignore[index]
    expected = set(
        re.findall(r"- alert: (\w+)", "".join(p.read_text() for p in RULES.glob("*.yml")))
    )
    assert expected
    assert loaded == expected

    code = job.interrupt()
    out = job.out
    assert code == 0, out
    assert "Ctrl-C: stopping (the worker first, then the broker)" in out
    assert (
        out.index("worker stopped") < out.index("prometheus stopped") < out.index("broker stopped")
    )
    assert out.splitlines()[-1].endswith("everything stopped (exit code 0)")
    _stopped_in_order(out)


def test_ctrl_c_during_start_up_stops_the_worker_then_the_broker(dev_job: list[DevJob]) -> None:
    job = DevJob()
    dev_job.append(job)
    # right after this line the worker is being created and starts: Ctrl-C lands in its start-up
    job.wait_for(r"slack     Slack stand-in at ")
    code = job.interrupt()
    out = job.out
    assert code == 130, out
    assert "Ctrl-C: stopping (the worker first, then the broker)" in out
    assert "stopping the worker" in out
    assert "reminder worker ready" not in out
    assert " DM " not in out
    assert out.splitlines()[-1].endswith("stopped during start-up or the demo")
    _stopped_in_order(out)


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        (
            {"SLACK_BOT_TOKEN": "xoxb-not-a-real-token"},
            (),
            "also set COFFEEBUDDY_DEV_SLACK_USER to the Slack user id (U...) who should receive",
        ),
        ({"PATH": str(BIN)}, ("--observe",), "prometheus is not installed: --observe runs a local"),
    ],
)
def test_what_the_dev_job_needs_is_named_before_anything_starts(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "dev.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env() | env,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "broker" not in done.stdout
