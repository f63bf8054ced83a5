import coffeebuddy.infra.kafka.testing as pkg


def test_testing_package_exposes_version() -> None:
    assert pkg.__version__ == "0.1.0"
