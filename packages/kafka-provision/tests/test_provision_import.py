import coffeebuddy.infra.kafka.provision as pkg


def test_provision_package_exposes_version() -> None:
    assert pkg.__version__ == "0.1.0"
