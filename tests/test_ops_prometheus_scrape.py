"""A real Prometheus scrapes the reminder worker (a separate process) while it delivers reminders.

Checks that the series the alerts and the dashboard use exist and move, that the rule files load
in a real Prometheus, and that every dashboard query runs there.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.models import ReminderScheduled, ReminderScheduledData
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.provision import ensure_topics
from coffeebuddy.infra.kafka.testing import (
    BrokerHandle,
    free_port,
    local_broker_kind,
    start_broker,
    wait_until_sync,
)
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_TOPIC
from coffeebuddy.services.fake_slack import FakeSlackServer

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="prometheus (Debian prometheus) is not installed"
)

REPO = Path(__file__).resolve().parent.parent
RULES = sorted((REPO / "infra" / "prometheus" / "rules").glob("*.yml"))
DASHBOARD = REPO / "infra" / "grafana" / "coffeebuddy-kafka.dashboard.json"
WAIT = 30.0
TOPIC = REMINDER_EVENTS_TOPIC.name


class Prom:
    """Prometheus's HTTP API on a local port."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> dict[str, Any]:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - local http URL
            body: dict[str, Any] = json.loads(response.read())
        return body

    def query(self, promql: str) -> list[dict[str, Any]]:
        body = self.get("/api/v1/query", query=promql)
        assert body["status"] == "success", f"{promql}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, promql: str) -> float | None:
        """The single value `promql` returns now (None when it returns nothing)."""
        result = self.query(promql)
        assert len(result) <= 1, f"{promql} returned {len(result)} series"
        return float(result[0]["value"][1]) if result else None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError):
            return False


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerHandle]:
    """A dedicated broker: the worker uses the catalog's fixed topic and group names."""
    handle = start_broker(kind=local_broker_kind())
    try:
        yield handle
    finally:
        handle.close()


def _env(broker: BrokerHandle, slack: FakeSlackServer, http_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLACK_"))}
    env.update({k: v for k, v in broker.env.items() if k.startswith("KAFKA_")})
    env.update(
        SLACK_BOT_TOKEN=slack.token,
        SLACK_API_BASE_URL=slack.base_url,
        WORKER_HTTP_HOST="127.0.0.1",
        WORKER_HTTP_PORT=str(http_port),
        WORKER_DRAIN_TIMEOUT_S="10",
        LOG_LEVEL="INFO",
    )
    return env


def _reminders(count: int, offset: int) -> list[ReminderScheduled]:
    due = datetime.now(UTC) + timedelta(milliseconds=300)
    return [
        ReminderScheduled.create(
            data=ReminderScheduledData(
                run_id=f"run-scrape-{offset + i}",
                reminder_id=f"rem-scrape-{offset + i}",
                kind="runner",
                team_id="T0SCRAPE",
                channel_id="C0SCRAPE",
                recipient_user_id=f"U0SCRAPE{offset + i}",
                due_at=due,
                place="Cafe Scrape",
            )
        )
        for i in range(count)
    ]


async def _publish(settings: KafkaSettings, events: list[ReminderScheduled]) -> None:
    async with KafkaEventProducer(settings) as producer:
        await producer.publish_many(REMINDER_EVENTS_TOPIC, events)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs: list[str] = []
    stack = list(dashboard["panels"])
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        exprs.extend(t["expr"] for t in panel.get("targets", []))
    return [e.replace("$__rate_interval", "1m").replace("$job", "reminder-worker") for e in exprs]


def test_prometheus_scrapes_a_delivering_worker(
    broker: BrokerHandle, fake_slack: FakeSlackServer, tmp_path: Path
) -> None:
    settings = broker.settings()
    report = asyncio.run(ensure_topics(settings, "dev"))
    assert report.ok, report

    http_port, prom_port = free_port(), free_port()
    worker_log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "coffeebuddy.services.reminder_worker"],
        env=_env(broker, fake_slack, http_port),
        stdout=worker_log,
        stderr=subprocess.STDOUT,
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(p) for p in RULES],
                "scrape_configs": [
                    {
                        "job_name": "reminder-worker",
                        "static_configs": [{"targets": [f"127.0.0.1:{http_port}"]}],
                    }
                ],
            }
        )
    )
    prom_log = (tmp_path / "prometheus.log").open("wb")
    prometheus = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=prom_log,
        stderr=subprocess.STDOUT,
    )
    prom = Prom(prom_port)

    def logs() -> str:
        worker_log.flush()
        prom_log.flush()
        return (
            f"\n--- worker (exit {worker.poll()}):\n"
            + (tmp_path / "worker.log").read_text()[-3000:]
            + f"\n--- prometheus (exit {prometheus.poll()}):\n"
            + (tmp_path / "prometheus.log").read_text()[-1500:]
        )

    def eventually(promql: str, check: Any, what: str) -> None:
        def ok() -> bool:
            assert worker.poll() is None, f"worker exited{logs()}"
            value = prom.value(promql)
            return value is not None and bool(check(value))

        try:
            wait_until_sync(ok, timeout=WAIT, message=f"{what}: {promql}")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}{logs()}") from exc

    try:
        wait_until_sync(prom.ready, timeout=WAIT, message=f"prometheus ready{logs()}")
        eventually('up{job="reminder-worker"}', lambda v: v == 1, "target up")
        eventually("coffeebuddy_reminder_worker_ready", lambda v: v == 1, "worker ready")
        eventually("coffeebuddy_slack_auth_ok", lambda v: v == 1, "slack auth ok")

        asyncio.run(_publish(settings, _reminders(3, 0)))
        fake_slack.wait_for_messages_sync(3, timeout=WAIT)
        eventually("sum(coffeebuddy_reminders_sent_total)", lambda v: v == 3, "sent counter")
        eventually(
            f'sum(coffeebuddy_kafka_messages_consumed_total{{topic="{TOPIC}"}})',
            lambda v: v >= 3,
            "consumed counter",
        )

        asyncio.run(_publish(settings, _reminders(2, 3)))
        fake_slack.wait_for_messages_sync(5, timeout=WAIT)
        eventually("sum(coffeebuddy_reminders_sent_total)", lambda v: v == 5, "sent counter moved")
        eventually(
            f'sum(coffeebuddy_kafka_messages_consumed_total{{topic="{TOPIC}"}})',
            lambda v: v >= 5,
            "consumed counter moved",
        )
        eventually(
            "sum(increase(coffeebuddy_reminders_sent_total[1m]))", lambda v: v > 0, "sent increase"
        )
        eventually(
            "sum(coffeebuddy_reminder_delivery_lateness_seconds_count)",
            lambda v: v >= 5,
            "lateness histogram count",
        )
        eventually(
            "histogram_quantile(0.99, sum by (le)"
            " (rate(coffeebuddy_reminder_delivery_lateness_seconds_bucket[1m])))",
            lambda v: 0 <= v < 60,
            "lateness p99 computable and small",
        )
        eventually(
            f'count(coffeebuddy_kafka_consumer_lag{{topic="{TOPIC}"}})',
            lambda v: v >= 1,
            "lag series per partition",
        )
        eventually(
            f'count(coffeebuddy_kafka_committed_offset{{topic="{TOPIC}"}})',
            lambda v: v >= 1,
            "committed offset series",
        )
        eventually("sum(coffeebuddy_slack_api_duration_seconds_count)", lambda v: v >= 5, "slack")

        # Every dashboard query runs in a real Prometheus; the rule files loaded.
        for expr in _dashboard_queries():
            prom.query(expr)
        groups = prom.get("/api/v1/rules")["data"]["groups"]
        alerts = {r["name"] for g in groups for r in g["rules"] if r["type"] == "alerting"}
        assert "ReminderWorkerDown" in alerts
        assert len(alerts) >= 8
        assert prom.value('ALERTS{alertname="ReminderWorkerDown"}') is None
    finally:
        _stop(worker)
        _stop(prometheus)
        worker_log.close()
        prom_log.close()
    assert worker.returncode == 0, f"worker did not drain cleanly{logs()}"
