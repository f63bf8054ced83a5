import coffeebuddy.infra.kafka.consumer as pkg


def test_consumer_package_exposes_version() -> None:
    assert pkg.__version__ == "0.1.0"
