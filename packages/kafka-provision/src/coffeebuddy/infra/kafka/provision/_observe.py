"""Read the part of the cluster a plan covers: topics in scope, their configs, owned ACLs."""

from __future__ import annotations

from collections.abc import Mapping

from coffeebuddy.infra.kafka.provision._admin import (
    API_CREATE_ACLS,
    API_DESCRIBE_ACLS,
    API_DESCRIBE_CONFIGS,
    ClusterAdmin,
    unsupported_api,
)
from coffeebuddy.infra.kafka.provision._plan import Scope
from coffeebuddy.infra.kafka.provision._types import AclSpec, ObservedState, ObservedTopic


async def missing_acl_api(
    admin: ClusterAdmin, versions: Mapping[int, tuple[int, int]] | None = None
) -> str | None:
    """None when the broker serves the ACL APIs; else why not, from its ApiVersions answer or,
    when it advertises CreateAcls, from an empty CreateAcls request (the embedded broker
    advertises the API without implementing it)."""
    if versions is None:
        versions = await admin.api_versions()
    if API_CREATE_ACLS not in versions:
        return unsupported_api(API_CREATE_ACLS)
    if API_DESCRIBE_ACLS not in versions:
        return unsupported_api(API_DESCRIBE_ACLS)
    return await admin.probe_create_acls()


async def observe(admin: ClusterAdmin, scope: Scope) -> ObservedState:
    """Snapshot of what `scope` covers; other topics and principals are not even recorded."""
    versions = await admin.api_versions()
    cluster_id = await admin.cluster_id()
    shapes = {n: s for n, s in (await admin.list_topics()).items() if scope.owns_topic(n)}
    names = sorted(shapes)
    if API_DESCRIBE_CONFIGS in versions:
        configs = await admin.describe_topic_configs(names)
    else:
        configs = dict.fromkeys(names)
    topics = {
        n: ObservedTopic(n, shapes[n].partitions, shapes[n].replication_factor, configs.get(n))
        for n in names
    }
    acls: tuple[AclSpec, ...] | None = None
    problem: str | None = None
    if scope.include_acls:
        problem = await missing_acl_api(admin, versions)
        if problem is None:
            try:
                principals = set(scope.principals)
                acls = tuple(a for a in await admin.describe_acls() if a.principal in principals)
            except Exception as exc:
                problem = f"ACLs cannot be read: {exc}"
    return ObservedState(
        cluster_id=cluster_id,
        topics=topics,
        acls=acls,
        api_versions=dict(versions),
        acl_problem=problem,
    )
