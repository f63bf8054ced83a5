"""check_connection(): explain why the brokers in the settings cannot be used."""

from __future__ import annotations

from coffeebuddy.infra.kafka.config._settings import KafkaSettings


async def check_connection(settings: KafkaSettings, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Placeholder, replaced below."""
    del settings, timeout
