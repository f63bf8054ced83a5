import coffeebuddy.infra.kafka.models as pkg


def test_models_package_exposes_version() -> None:
    assert pkg.__version__ == "0.1.0"
