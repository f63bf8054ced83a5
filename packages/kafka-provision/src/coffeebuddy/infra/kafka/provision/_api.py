"""Public Python API: plan, apply, drift, ensure topics, render manifests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from coffeebuddy.infra.kafka.config import KafkaSettings, check_connection
from coffeebuddy.infra.kafka.provision._admin import AiokafkaAdmin, ClusterAdmin
from coffeebuddy.infra.kafka.provision._apply import (
    ApplyReport,
    ProgressCallback,
    execute_plan,
)
from coffeebuddy.infra.kafka.provision._catalog import ENVIRONMENTS, check, desired_state
from coffeebuddy.infra.kafka.provision._diff import diff
from coffeebuddy.infra.kafka.provision._observe import missing_acl_api, observe
from coffeebuddy.infra.kafka.provision._plan import Plan, Scope
from coffeebuddy.infra.kafka.provision._render import render_files, stale_files, write_files
from coffeebuddy.infra.kafka.topics import Catalog, CatalogProblem, TopicConfig


@asynccontextmanager
async def _admin_for(
    settings: KafkaSettings | None, admin: ClusterAdmin | None
) -> AsyncIterator[ClusterAdmin]:
    if admin is not None:
        yield admin
        return
    resolved = settings if settings is not None else KafkaSettings.from_env()
    try:
        own = await AiokafkaAdmin.connect(resolved.admin_kwargs())
    except Exception:
        # check_connection turns aiokafka's bare "Unable to bootstrap" into a reason.
        await check_connection(resolved)
        raise
    try:
        yield own
    finally:
        await own.close()


def validate(catalog: Catalog | None = None, env: str = "dev") -> list[CatalogProblem]:
    """Offline catalog validation for `env` (no cluster needed); empty list when valid."""
    return check(catalog, env)


async def build_plan(
    settings: KafkaSettings | None = None,
    catalog: Catalog | None = None,
    env: str = "dev",
    *,
    allow_delete: bool = False,
    allow_destructive: bool = False,
    managed_prefixes: Sequence[str] | None = None,
    topics: Sequence[TopicConfig | str] | None = None,
    acls: bool = True,
    admin: ClusterAdmin | None = None,
) -> Plan:
    """Read the cluster (default settings: `KafkaSettings.from_env()`), diff it with the catalog."""
    desired = desired_state(
        catalog, env, managed_prefixes=managed_prefixes, topics=topics, include_acls=acls
    )
    async with _admin_for(settings, admin) as client:
        observed = await observe(client, Scope.of(desired, include_acls=acls))
    return diff(
        desired,
        observed,
        allow_delete=allow_delete,
        allow_destructive=allow_destructive,
        include_acls=acls,
    )


async def plan_skipping_missing_acls(
    settings: KafkaSettings | None = None,
    env: str = "dev",
    *,
    allow_delete: bool = False,
    allow_destructive: bool = False,
    managed_prefixes: Sequence[str] | None = None,
    admin: ClusterAdmin | None = None,
) -> Plan:
    """`build_plan` with ACLs, unless the broker has no ACL API (the embedded one): then the
    plan leaves ACLs out, as `--no-acls` does, and a note in the plan says so and why."""
    async with _admin_for(settings, admin) as client:
        missing = await missing_acl_api(client)
        plan = await build_plan(
            None,
            None,
            env,
            allow_delete=allow_delete,
            allow_destructive=allow_destructive,
            managed_prefixes=managed_prefixes,
            acls=missing is None,
            admin=client,
        )
    if missing is None:
        return plan
    # the first clause is the finding ("broker does not support CreateAcls (API key 30)")
    note = f"ACLs skipped, as with --no-acls: {missing.split(': ', 1)[0]}"
    return replace(plan, notes=(note, *plan.notes))


async def apply_plan(
    settings: KafkaSettings | None,
    plan: Plan,
    *,
    acls: bool = True,
    admin: ClusterAdmin | None = None,
    progress: ProgressCallback | None = None,
) -> ApplyReport:
    """Apply exactly `plan`; `PlanRefusedError` when the cluster changed since it was made."""
    async with _admin_for(settings, admin) as client:
        return await execute_plan(client, plan, acls=acls, progress=progress)


async def detect_drift(
    settings: KafkaSettings | None = None,
    catalog: Catalog | None = None,
    env: str = "dev",
    *,
    managed_prefixes: Sequence[str] | None = None,
    acls: bool = True,
    admin: ClusterAdmin | None = None,
) -> Plan:
    """Every difference between cluster and catalog (managed extras included); empty = in sync."""
    return await build_plan(
        settings,
        catalog,
        env,
        allow_delete=True,
        allow_destructive=True,
        managed_prefixes=managed_prefixes,
        acls=acls,
        admin=admin,
    )


async def ensure_topics(
    settings: KafkaSettings | None = None,
    env: str = "dev",
    *,
    topics: Sequence[TopicConfig | str] | None = None,
    acls: bool = False,
    catalog: Catalog | None = None,
    admin: ClusterAdmin | None = None,
) -> ApplyReport:
    """Create/align the catalog topics (or just `topics`) now: plan + apply, never deletes.

    With `acls=False` (default) ACL steps are not planned at all; check `report.ok`.
    """
    async with _admin_for(settings, admin) as client:
        plan = await build_plan(
            None, catalog, env, topics=topics, acls=acls, admin=client, managed_prefixes=()
        )
        return await execute_plan(client, plan, acls=acls)


def render_manifests(
    catalog: Catalog | None = None,
    envs: Sequence[str] = ENVIRONMENTS,
    *,
    out: Path | None = None,
    strimzi_cluster: str | None = None,
) -> dict[str, dict[str, str]]:
    """env -> {file name: content}; also written to `out/<env>/` when `out` is given."""
    rendered: dict[str, dict[str, str]] = {}
    for env in envs:
        files = render_files(desired_state(catalog, env), strimzi_cluster=strimzi_cluster)
        rendered[env] = files
        if out is not None:
            write_files(files, out / env)
    return rendered


def stale_manifests(
    out: Path, catalog: Catalog | None = None, envs: Sequence[str] = ENVIRONMENTS
) -> Mapping[str, list[str]]:
    """env -> files under `out/<env>/` that differ from what the catalog renders (CI check)."""
    result: dict[str, list[str]] = {}
    for env, files in render_manifests(catalog, envs).items():
        stale = stale_files(files, out / env)
        if stale:
            result[env] = stale
    return result
