"""Client settings every test broker hands out: fast rebalances, a recognisable client id."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["TEST_CLIENT_DEFAULTS"]

#: Client settings for tests: rebalances in about a second instead of 10-15 s.
TEST_CLIENT_DEFAULTS: Mapping[str, str] = {
    "KAFKA_CLIENT_ID": "coffeebuddy-tests",
    "KAFKA_SESSION_TIMEOUT_MS": "6000",
    "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
    "KAFKA_REQUEST_TIMEOUT_MS": "10000",
}
