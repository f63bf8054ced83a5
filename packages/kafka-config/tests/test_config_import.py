import coffeebuddy.infra.kafka.config as pkg


def test_config_package_exposes_version() -> None:
    assert pkg.__version__ == "0.1.0"
