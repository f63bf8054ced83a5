"""The service in-process in dev mode: the bundled Slack stand-in, readiness and its gauges."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.provision import ensure_topics
from coffeebuddy.infra.kafka.testing import wait_until
from coffeebuddy.services.reminder_worker import ReminderWorkerService, ServiceSettings

READY = "coffeebuddy_reminder_worker_ready"
AUTH_OK = "coffeebuddy_slack_auth_ok"


async def test_dev_mode_runs_on_the_bundled_slack_stand_in_and_gauges_follow_readyz(
    kafka_settings: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    assert (await ensure_topics(kafka_settings, "dev")).ok
    settings = ServiceSettings.from_env(
        {
            "COFFEEBUDDY_DEV_FAKE_SLACK": "1",  # and no SLACK_BOT_TOKEN
            "WORKER_HTTP_HOST": "127.0.0.1",
            "WORKER_HTTP_PORT": "0",
            "WORKER_DRAIN_TIMEOUT_S": "10",
        }
    )
    registry = CollectorRegistry()
    service = ReminderWorkerService(settings, kafka_settings, registry=registry)
    assert (registry.get_sample_value(READY), registry.get_sample_value(AUTH_OK)) == (0, 0)
    caplog.set_level(logging.INFO, logger="coffeebuddy.reminder_worker")
    run = asyncio.create_task(service.run())
    try:
        await wait_until(lambda: service.ready().ok, timeout=60, message="dev-mode worker ready")

        async def scraped_ready() -> bool:
            # readiness may dip during a rebalance: wait for the scrape to say ready, too
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{service.http_port}/metrics") as response,
            ):
                exposition = await response.text()
            return f"{READY} 1.0" in exposition and f"{AUTH_OK} 1.0" in exposition

        await wait_until(scraped_ready, timeout=30, message="/metrics says ready and auth ok")
        assert service.ready().checks["slack_auth"]
    finally:
        service.request_stop()
        code = await asyncio.wait_for(run, 30)
    assert code == 0
    assert registry.get_sample_value(READY) == 0  # stopped: not ready
    assert "using the in-process fake Slack" in caplog.text
    assert "slack auth.test ok" in caplog.text
