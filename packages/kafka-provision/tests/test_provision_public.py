"""The public surface: each name has one home, one root exception over every subpackage's."""

from __future__ import annotations

from types import ModuleType

import pytest

import coffeebuddy.infra.kafka.provision as provision
import coffeebuddy.infra.kafka.provision.dlq as dlq
import coffeebuddy.infra.kafka.provision.events as events
import coffeebuddy.infra.kafka.provision.reminders as reminders

PACKAGES = (provision, dlq, events, reminders)


def test_each_public_name_is_exported_from_one_package_only() -> None:
    homes: dict[str, list[str]] = {}
    for package in PACKAGES:
        for name in package.__all__:
            if name != "__version__":
                homes.setdefault(name, []).append(package.__name__)
    assert {name: where for name, where in homes.items() if len(where) > 1} == {}


@pytest.mark.parametrize(
    ("package", "root"),
    [(dlq, dlq.DlqError), (events, events.EventsError), (reminders, reminders.RemindersError)],
    ids=["dlq", "events", "reminders"],
)
def test_subpackage_public_exceptions_share_one_root(package: ModuleType, root: type) -> None:
    public = [getattr(package, name) for name in package.__all__]
    errors = {e for e in public if isinstance(e, type) and issubclass(e, BaseException)}
    assert root in errors
    assert [e.__name__ for e in errors if not issubclass(e, root)] == []
    # the builtin base existing `except ValueError` clauses rely on stays
    assert issubclass(root, ValueError)


def test_every_public_exception_of_the_package_family_is_a_provision_error() -> None:
    errors = {
        getattr(package, name)
        for package in PACKAGES
        for name in package.__all__
        if isinstance(getattr(package, name), type)
        and issubclass(getattr(package, name), BaseException)
    }
    assert errors >= {provision.PlanFileError, provision.PlanRefusedError, dlq.DlqError}
    assert [e.__name__ for e in errors if not issubclass(e, provision.ProvisionError)] == []
    # the builtin bases existing `except` clauses rely on stay
    assert issubclass(provision.PlanFileError, ValueError)
    assert issubclass(provision.PlanRefusedError, RuntimeError)
