"""`hatch run dev --observe`: a local Prometheus scraping the worker, with the project's rules.

The Debian `prometheus` package (what CI installs) or any `prometheus` binary on PATH; its
config, rules and TSDB live in a temporary directory; it listens on a free loopback port and
is stopped (SIGTERM, then SIGKILL) when the dev job stops. On Linux it also dies with the dev
job if that is killed outright (parent-death signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RULES_DIR = REPO / "infra" / "prometheus" / "rules"
JOB = "reminder-worker"  # the job name the alert rules expect
MISSING = (
    "prometheus is not installed: --observe runs a local Prometheus (Debian/Ubuntu: "
    "apt-get install prometheus; or put a prometheus binary on PATH)"
)
LATENESS_P99 = (
    "histogram_quantile(0.99, sum by (le) "
    "(rate(coffeebuddy_reminder_delivery_lateness_seconds_bucket[1m])))"
)


def find_prometheus() -> str | None:
    return shutil.which("prometheus")


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the dev job dies (Linux prctl)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig, sigkill = 1, 9
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, sigkill)


class LocalPrometheus:
    """One Prometheus process: `await start()`, `url`, `await ready()`, `await stop()`."""

    def __init__(self, binary: str, *, port: int, target: str, scrape_interval: str = "2s"):
        self.binary = binary
        self.port = port
        self.target = target
        self.scrape_interval = scrape_interval
        self.rules = sorted(RULES_DIR.glob("*.yml"))
        self._dir = tempfile.TemporaryDirectory(prefix="coffeebuddy-dev-prometheus-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return Path(self._dir.name) / "prometheus.log"

    def graph_url(self, expr: str) -> str:
        query = urllib.parse.urlencode({"g0.expr": expr, "g0.tab": "0", "g0.range_input": "15m"})
        return f"{self.url}/graph?{query}"

    def start(self) -> None:
        base = Path(self._dir.name)
        config = base / "prometheus.yml"
        config.write_text(
            json.dumps(
                {
                    "global": {
                        "scrape_interval": self.scrape_interval,
                        "evaluation_interval": "5s",
                    },
                    "rule_files": [str(p) for p in self.rules],
                    "scrape_configs": [
                        {"job_name": JOB, "static_configs": [{"targets": [self.target]}]}
                    ],
                }
            )
        )
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={base / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,  # before exec: no threads hold locks there
            )

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    async def ready(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Until /-/ready answers; RuntimeError with its log tail if it exits or times out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited ({self._process.returncode}):\n{self.tail()}"
                )
            if await asyncio.to_thread(self._answers):
                return
            if loop.time() > deadline:
                raise RuntimeError(f"prometheus not ready after {timeout:.0f} s:\n{self.tail()}")
            await asyncio.sleep(0.2)  # polling a child process's HTTP port, bounded above

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait, 5)
        self._dir.cleanup()

    def kill(self) -> None:
        """At once (a second Ctrl-C)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
