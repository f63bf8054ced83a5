import coffeebuddy.services.reminder_worker as pkg


def test_service_package_exposes_version() -> None:
    assert pkg.__version__ == "0.1.0"
