import coffeebuddy.infra.kafka.reminder_worker as pkg


def test_reminder_worker_package_exposes_version() -> None:
    assert pkg.__version__ == "0.1.0"
