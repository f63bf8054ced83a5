"""pytest plugin: session-scoped real Kafka broker fixtures for any package's tests."""
