"""Per-service stacks: namespaces, IRSA service accounts, grants; sharded by a stable hash."""

from __future__ import annotations

import json
from typing import Any

from infra.constructs.valkey_cache import VALKEY_PORT
from infra.stacks.sharding import SHARDS, by_shard, shard_of
from tests.identity import associations, irsa_condition, pod_identity_trusts, trust_conditions
from tests.synth import Synthesized, resources


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, dict) and "Fn::Join" in value:
        return [x for part in value["Fn::Join"][1] for x in _flatten(part)]
    if isinstance(value, dict) and "Fn::GetStackOutput" in value:
        # A value of another stack: named by its stack and output, resolved by _output_value.
        reference = value["Fn::GetStackOutput"]
        return [f"<{reference['StackName']}.{reference['OutputName']}>"]
    return [value] if isinstance(value, str) else ["<ref>"]


def _manifests(template: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for resource in resources(template, "Custom::AWSCDK-EKS-KubernetesResource").values():
        manifest = resource["Properties"]["Manifest"]
        text = manifest if isinstance(manifest, str) else "".join(_flatten(manifest))
        # One manifest per service: its namespace first, then its service account and the platform's
        # ConfigMap in that namespace.
        namespace, account, config = json.loads(text)
        assert (namespace["kind"], account["kind"], config["kind"]) == ("Namespace", "ServiceAccount", "ConfigMap")
        assert account["metadata"]["namespace"] == config["metadata"]["namespace"] == namespace["metadata"]["name"]
        out += [namespace, account, config]
    return out


def _output_value(env: Synthesized, reference: str) -> Any:
    """The value of ``<stack.output>`` in the producer's template (a weak reference's target)."""
    stack, output = reference.strip("<>").split(".")
    return env.template_named(stack)["Outputs"][output]["Value"]


def test_services_are_sharded_by_a_stable_hash_of_their_name(env: Synthesized) -> None:
    prefix = env.settings.stack_prefix
    shards = env.shards("services")
    expected = {shard_of(s.name) for s in env.settings.services}
    assert set(shards) == {f"{prefix}-services-{n}" for n in expected}
    assert set(env.shards("registry")) == {f"{prefix}-registry-{n}" for n in expected}
    for service in env.settings.services:
        outputs = shards[f"{prefix}-services-{shard_of(service.name)}"]["Outputs"]
        assert f"ServiceRoleArn{service.name}" in outputs


def test_sharding_never_moves_a_service_when_another_is_added_or_removed() -> None:
    names = [f"svc-{i}" for i in range(200)]
    before = {n: shard_of(n) for n in names}
    after = {n: shard_of(n) for n in [*names[:50], *names[51:], "new-service"] if n != "new-service"}
    assert all(after[n] == before[n] for n in after)
    groups = by_shard(names, names)
    assert sorted(groups) == list(range(SHARDS))
    assert max(len(g) for g in groups.values()) < 50


def test_a_namespace_and_service_account_per_service(env: Synthesized) -> None:
    env_name = env.settings.environment
    documents = [d for t in env.shards("services").values() for d in _manifests(t)]
    namespaces = {d["metadata"]["name"] for d in documents if d["kind"] == "Namespace"}
    accounts = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in documents if d["kind"] == "ServiceAccount"}
    assert namespaces == {f"{s.name}-{env_name}" for s in env.settings.services}
    assert accounts == {(f"{s.name}-{env_name}", s.name) for s in env.settings.services}
    # IRSA: the role's annotation; Pod Identity: none (the association names the role).
    irsa = env.settings.eks.workload_identity == "irsa"
    for document in documents:
        if document["kind"] == "ServiceAccount":
            annotations = document["metadata"].get("annotations")
            assert annotations == ({"eks.amazonaws.com/role-arn": "<ref>"} if irsa else None)
        elif document["kind"] == "Namespace":
            assert document["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
            # The load balancer controller's readiness gate: a rollout waits for the new pod's target.
            assert document["metadata"]["labels"]["elbv2.k8s.aws/pod-readiness-gate-inject"] == "enabled"


def test_each_namespace_gets_the_platform_config_of_exactly_the_data_stores_its_service_uses(
    env: Synthesized,
) -> None:
    """The ConfigMap ``platform`` (the chart's pods read it with envFrom): the region, and for each
    store the catalogue entry uses, the endpoint (the data stack's own, by weak reference), port and
    the service's own user; nothing about a store it does not use."""
    configs = {
        d["metadata"]["namespace"]: d["data"]
        for t in env.shards("services").values()
        for d in _manifests(t)
        if d["kind"] == "ConfigMap"
    }
    has_database = (env.outdir / f"{env.settings.stack_prefix}-database.template.json").exists()
    database = env.template("database") if has_database else None
    cache = env.template("cache")
    (cache_resource,) = [r for r in cache["Resources"].values() if r["Type"] in _CACHE_TYPES]
    for service in env.settings.services:
        data = configs[f"{service.name}-{env.settings.environment}"]
        assert data.pop("AWS_REGION") in (env.settings.region, "<ref>")
        keys = set(data)
        if "database" in service.uses and database is not None:
            (cluster,) = resources(database, "AWS::RDS::DBCluster").values()
            host = _output_value(env, data["DATABASE_HOST"])
            # The writer's cluster endpoint in its region; elsewhere (a global database's secondary, whose
            # cluster endpoint is inactive) the reader endpoint, which forwards writes.
            endpoint = (
                "Endpoint.Address" if env.settings.writer_region == env.settings.region else "ReadEndpoint.Address"
            )
            assert host == {"Fn::GetAtt": [_logical_id(database, cluster), endpoint]}
            assert data["DATABASE_PORT"] == str(cluster["Properties"]["Port"])
            assert data["DATABASE_NAME"] == env.settings.database.database_name
            assert data["DATABASE_USER"] == service.name
            keys -= {"DATABASE_HOST", "DATABASE_PORT", "DATABASE_NAME", "DATABASE_USER"}
        if "cache" in service.uses:
            users = {
                u["Properties"]["UserId"]: u["Properties"] for u in resources(cache, "AWS::ElastiCache::User").values()
            }
            user = users[data["CACHE_USER"]]
            # Its own IAM user, whose keys the service prefixes with its name.
            assert user["UserName"] == data["CACHE_USER"]
            assert user["AuthenticationMode"] == {"Type": "iam"}
            assert f"~{service.name}:*" in user["AccessString"].split()
            properties = cache_resource["Properties"]
            serverless = cache_resource["Type"] == "AWS::ElastiCache::ServerlessCache"
            name = properties["ServerlessCacheName"] if serverless else properties["ReplicationGroupId"]
            assert data["CACHE_NAME"] == name
            assert data["CACHE_KIND"] == ("serverless" if serverless else "replication-group")
            cluster_mode = not serverless and properties.get("ClusterMode") == "enabled"
            assert data["CACHE_CLUSTER_MODE"] == str(cluster_mode).lower()
            attribute = (
                "Endpoint.Address"
                if serverless
                else ("ConfigurationEndPoint.Address" if cluster_mode else "PrimaryEndPoint.Address")
            )
            assert _output_value(env, data["CACHE_HOST"]) == {
                "Fn::GetAtt": [_logical_id(cache, cache_resource), attribute]
            }
            assert data["CACHE_PORT"] == str(VALKEY_PORT)
            keys -= {"CACHE_HOST", "CACHE_PORT", "CACHE_NAME", "CACHE_USER", "CACHE_KIND", "CACHE_CLUSTER_MODE"}
        assert keys == set(), f"{service.name}: {sorted(keys)} for a data store it does not use"


_CACHE_TYPES = ("AWS::ElastiCache::ServerlessCache", "AWS::ElastiCache::ReplicationGroup")


def _logical_id(template: dict[str, Any], resource: dict[str, Any]) -> str:
    (logical_id,) = [str(k) for k, v in template["Resources"].items() if v is resource]
    return logical_id


def test_each_service_role_trusts_exactly_its_own_service_account(env: Synthesized) -> None:
    """Through IRSA, or through Pod Identity: then a trust on its session tags and an association, both of
    the service's own namespace and service account, and no IRSA trust at all."""
    shards = env.shards("services").values()
    expected = {f"{s.name}-{env.settings.environment}:{s.name}" for s in env.settings.services}
    if env.settings.eks.workload_identity == "pod-identity":
        assert not [c for t in shards for c in trust_conditions(t)]
        trusts = {role: sa for t in shards for role, sa in pod_identity_trusts(t).items()}
        assert sorted(trusts.values()) == sorted(expected)
        named = {role: sa for t in shards for role, sa in associations(t).items()}
        assert named == trusts
        return
    conditions = {k: v for t in shards for k, v in trust_conditions(t).items()}
    assert sorted(conditions.values()) == sorted(irsa_condition(sa) for sa in expected)


def test_service_roles_have_no_permissions_but_their_declared_grants(env: Synthesized) -> None:
    for template in env.shards("services").values():
        roles = {**trust_conditions(template), **pod_identity_trusts(template)}
        assert len(roles) == len([d for d in _manifests(template) if d["kind"] == "Namespace"])
        for role_id in roles:
            role = template["Resources"][role_id]["Properties"]
            assert "ManagedPolicyArns" not in role
            assert "Policies" not in role
            assert not [
                p
                for p in resources(template, "AWS::IAM::Policy").values()
                if {"Ref": role_id} in p["Properties"]["Roles"]
            ]
            attached = [
                p
                for p in resources(template, "AWS::IAM::ManagedPolicy").values()
                if {"Ref": role_id} in p["Properties"]["Roles"]
            ]
            assert len(attached) <= 1


def test_services_stacks_wait_for_the_cluster_and_data_stores_only(env: Synthesized) -> None:
    prefix = env.settings.stack_prefix
    artifacts = env.manifest()["artifacts"]
    for name in env.shards("services"):
        deps = {d for d in artifacts[name].get("dependencies", []) if not d.endswith(".assets")}
        assert f"{prefix}-eks" in deps
        assert deps <= {f"{prefix}-eks", f"{prefix}-database", f"{prefix}-cache"}
