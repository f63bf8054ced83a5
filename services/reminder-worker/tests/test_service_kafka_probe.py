"""KafkaProbe: readiness says the truth about the cluster (a metadata round trip on a timer)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.testing import free_port, wait_until
from coffeebuddy.services.reminder_worker._kafka_probe import KafkaProbe


async def test_no_broker_answering_is_not_ready_naming_why(
    kafka_settings: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """(A live cluster keeping the probe ok is covered by the dev-mode readiness test.)"""
    dead = kafka_settings.with_overrides(bootstrap_servers=[f"127.0.0.1:{free_port()}"])
    probe = KafkaProbe(dead, interval=0.05, timeout=1.0)
    assert probe.ok  # start-up's check_connection just passed
    stop = asyncio.Event()
    task = asyncio.create_task(probe.run(stop))
    try:
        with caplog.at_level(logging.ERROR, logger="coffeebuddy.reminder_worker.service"):
            await wait_until(lambda: not probe.ok, timeout=30, message="dead cluster seen")
        assert probe.problem.startswith("no Kafka broker answered a metadata request within 1 s")
        assert caplog.text.count("not ready until a broker answers") == 1  # logged once
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
