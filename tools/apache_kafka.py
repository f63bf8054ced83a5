"""Resolve the pinned Apache Kafka jars (once per machine) and say where they came from.

    hatch run python tools/apache_kafka.py

CI runs it before the tests so the first resolution's time shows on its own line.
"""

from __future__ import annotations

import sys
import time

from coffeebuddy.infra.kafka.testing import (
    KAFKA_VERSION,
    ApacheKafkaUnavailableError,
    resolve_kafka_runtime,
)


def main() -> int:
    begun = time.monotonic()
    try:
        runtime = resolve_kafka_runtime()
    except ApacheKafkaUnavailableError as exc:
        print(f"Apache Kafka {KAFKA_VERSION} unavailable: {exc}", file=sys.stderr)
        return 1
    took = time.monotonic() - begun
    print(f"Apache Kafka {KAFKA_VERSION}: jars from {runtime.source} in {took:.1f} s")
    print(f"java: {runtime.java}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
