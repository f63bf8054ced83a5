"""Turn the typed topics catalog into this tool's desired state for one environment."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from coffeebuddy.infra.kafka.provision._normalize import ConfigValueError, normalize_config_value
from coffeebuddy.infra.kafka.provision._types import AclSpec, DesiredState, DesiredTopic
from coffeebuddy.infra.kafka.topics import (
    CATALOG,
    Catalog,
    CatalogError,
    CatalogProblem,
    TopicConfig,
    validate_catalog,
)

ENVIRONMENTS = ("dev", "staging", "prod")


def default_managed_prefixes(names: Iterable[str]) -> tuple[str, ...]:
    """The dotted prefix every catalog topic shares (e.g. `coffeebuddy.`), if any."""
    split = [name.split(".") for name in names]
    if not split:
        return ()
    common: list[str] = []
    for parts in zip(*(s[:-1] for s in split), strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return (".".join(common) + ".",) if common else ()


def desired_topic(topic: TopicConfig) -> DesiredTopic:
    """A catalog topic with config values normalised to what Kafka stores."""
    configs: dict[str, str] = {}
    for key, value in sorted(topic.configs.items()):
        try:
            configs[key] = normalize_config_value(key, value)
        except ConfigValueError as exc:
            raise CatalogError(
                [CatalogProblem(where=f"topic {topic.name}", rule="config-value", message=str(exc))]
            ) from exc
    return DesiredTopic(
        name=topic.name,
        partitions=topic.partitions,
        replication_factor=topic.replication_factor,
        configs=configs,
        key_field=topic.key_field,
        kind=topic.kind,
        owner=topic.owner,
        description=topic.description,
    )


def _rendered(catalog: Catalog, environment: str) -> Catalog:
    if catalog.environment is None:
        return catalog.for_environment(environment)
    if catalog.environment != environment:
        raise ValueError(
            f"catalog is rendered for {catalog.environment!r}, not for {environment!r}"
        )
    return catalog


def check(catalog: Catalog | None, environment: str) -> list[CatalogProblem]:
    """Offline validation of the catalog for `environment` (empty list: valid)."""
    if environment not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {environment!r}; expected one of {ENVIRONMENTS}")
    return list(validate_catalog(catalog or CATALOG, environment))


def desired_state(
    catalog: Catalog | None,
    environment: str,
    *,
    managed_prefixes: Sequence[str] | None = None,
    topics: Sequence[TopicConfig | str] | None = None,
    include_acls: bool = True,
) -> DesiredState:
    """The desired state of `environment`; `topics` narrows it to some topics (no prefixes then).

    A catalog topic in `topics` (its name or its definition) is taken in `environment`'s version
    (replication, min.insync.replicas); any other `TopicConfig` exactly as given.

    `managed_prefixes` defaults to the dotted prefix all catalog topics share (`coffeebuddy.`).
    """
    if environment not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {environment!r}; expected one of {ENVIRONMENTS}")
    definition = catalog or CATALOG
    rendered = _rendered(definition, environment)
    chosen: list[TopicConfig]
    if topics is None:
        chosen = list(rendered.topics)
    else:
        chosen = []
        for item in topics:
            if isinstance(item, str):
                try:
                    chosen.append(rendered.topic(item))
                except (KeyError, ValueError) as exc:
                    raise ValueError(f"topic {item!r} is not in the catalog") from exc
            elif item in definition.topics:  # a catalog topic: this environment's version
                chosen.append(rendered.topic(item.name))
            else:
                chosen.append(item)
    names = {t.name for t in chosen}
    acls: tuple[AclSpec, ...] = ()
    if include_acls:
        acls = tuple(
            sorted(
                AclSpec.from_binding(b)
                for b in rendered.acl_bindings()
                if topics is None or b.resource_type != "TOPIC" or b.resource_name in names
            )
        )
    prefixes: tuple[str, ...]
    if managed_prefixes is not None:
        prefixes = tuple(managed_prefixes)
    elif topics is not None:
        prefixes = ()
    else:
        prefixes = default_managed_prefixes(t.name for t in rendered.topics)
    return DesiredState(
        environment=environment,
        topics=tuple(sorted((desired_topic(t) for t in chosen), key=lambda t: t.name)),
        acls=acls,
        managed_prefixes=prefixes,
    )
