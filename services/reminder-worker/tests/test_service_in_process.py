"""The service in-process against the Slack stand-in: readiness and its gauges."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.provision import ensure_topics
from coffeebuddy.infra.kafka.testing import wait_until
from coffeebuddy.services.fake_slack import FakeSlackServer
from coffeebuddy.services.reminder_worker import ReminderWorkerService, ServiceSettings

READY = "coffeebuddy_reminder_worker_ready"
AUTH_OK = "coffeebuddy_slack_auth_ok"


async def test_the_service_in_process_on_the_slack_stand_in_and_gauges_follow_readyz(
    kafka_settings: KafkaSettings, fake_slack: FakeSlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    assert (await ensure_topics(kafka_settings, "dev")).ok
    settings = ServiceSettings.from_env(
        {
            "SLACK_BOT_TOKEN": fake_slack.token,
            "SLACK_API_BASE_URL": fake_slack.base_url,
            "WORKER_HTTP_HOST": "127.0.0.1",
            "WORKER_HTTP_PORT": "0",
            "WORKER_DRAIN_TIMEOUT_S": "10",
        }
    )
    registry = CollectorRegistry()
    service = ReminderWorkerService(settings, kafka_settings, registry=registry)
    assert (registry.get_sample_value(READY), registry.get_sample_value(AUTH_OK)) == (0, 0)
    caplog.set_level(logging.INFO, logger="coffeebuddy")
    run = asyncio.create_task(service.run())
    try:
        await wait_until(lambda: service.ready().ok, timeout=60, message="worker ready")

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
    assert "sender credentials checked: ok" in caplog.text
