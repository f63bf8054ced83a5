import coffeebuddy.infra.kafka.producer as pkg


def test_producer_package_exposes_version() -> None:
    assert pkg.__version__ == "0.1.0"
