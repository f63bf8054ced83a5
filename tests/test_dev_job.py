"""`hatch run dev` (tools/dev.py) is the README's first command: it must show the demo working."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_dev_job_delivers_the_sample_run_and_stops_cleanly() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLACK_"))}
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "dev.py"), "--exit-after-demo"],
        capture_output=True,
        text=True,
        timeout=150,
        env=env,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, f"stdout:\n{out}\nstderr:\n{result.stderr[-3000:]}"
    assert "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:" in out
    assert "created coffeebuddy.reminder.events" in out
    assert "2 of 2 expected DMs delivered" in out
    assert "2 DM(s) in Slack" in out
    assert "cancelled reminder not sent" in out
    assert out.count("-> U0CAROL (last-call)") == 1, "the re-published reminder was sent twice"
    assert "worker stopped (exit code 0)" in out
