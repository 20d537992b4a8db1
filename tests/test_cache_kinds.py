"""cache.kind: ElastiCache Serverless or a provisioned replication group, same users and grants either way.

The tests' examples (tests/subjects.py): in two regions, the production one has a Serverless cache and
the non-production one a cluster-mode replication group; the production one with a Multi-AZ
replication group of two replicas is synthesized as its data tier (network, cache, observability)
through the gate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.assembly import load_templates, stack_dependencies, stack_regions
from infra.config.settings import SettingsError
from infra.reports.architecture import mermaid
from infra.reports.cost import estimate, load_prices
from scripts.forms import cfn_lint_problems, describe
from tests.projects import example_settings
from tests.subjects import REPLICATION_GROUPS, replication_group, two_regions
from tests.synth import DataTier, Synthesized, kept, only, resources, text

# Synthesized by the second process: run after the tests that need nothing from it.
pytestmark = pytest.mark.needs_synth(
    "examples-sandbox-two-regions", "examples-live-two-regions", "examples-live-replication-group"
)

PROD_REPLICATION_GROUP = {k: v for k, v in REPLICATION_GROUPS["live"].items() if v is not None}


@pytest.fixture(scope="module")
def sandbox_cluster_mode() -> Synthesized:
    return two_regions("sandbox").synthesized


@pytest.fixture(scope="module")
def live_replication_group() -> DataTier:
    return replication_group("live").tier


@pytest.fixture(scope="module")
def live_serverless() -> Synthesized:
    return two_regions("live").synthesized


def _primary_templates(env: Synthesized) -> dict[str, dict[str, Any]]:
    regions = stack_regions(env.outdir)
    return {k: v for k, v in load_templates(env.outdir).items() if regions[k] == env.settings.region}


def _same_prefix(value: Any, env: Synthesized) -> Any:
    """``value`` with the environment's name prefix written <prefix>, to compare two environments."""
    return json.loads(json.dumps(value).replace(env.settings.name_prefix, "<prefix>"))


def _group(template: dict[str, Any]) -> dict[str, Any]:
    return dict(only(template, "AWS::ElastiCache::ReplicationGroup")["Properties"])


def test_a_cluster_mode_replication_group_is_made_from_its_settings(
    sandbox_cluster_mode: Synthesized,
) -> None:
    template = sandbox_cluster_mode.template("cache")
    settings = sandbox_cluster_mode.settings.cache
    props = _group(template)
    assert not resources(template, "AWS::ElastiCache::ServerlessCache")
    prefix = sandbox_cluster_mode.settings.stack_prefix
    assert props["ReplicationGroupId"] == f"{prefix}-cache-cm"  # cluster mode: its own name
    assert (props["Engine"], props["EngineVersion"], props["CacheNodeType"]) == ("valkey", "8.2", "cache.t4g.small")
    assert (props["ClusterMode"], props["NumNodeGroups"], props["ReplicasPerNodeGroup"]) == ("enabled", 2, 1)
    assert "NumCacheClusters" not in props
    assert props["AutomaticFailoverEnabled"] is True
    assert props["MultiAZEnabled"] is True
    assert props["SnapshotRetentionLimit"] == settings.snapshot_retention_days
    assert props["SnapshotWindow"] == "03:00-04:00"
    assert props["PreferredMaintenanceWindow"] == "sun:05:00-sun:06:00"
    parameters = template["Resources"][props["CacheParameterGroupName"]["Ref"]]["Properties"]
    assert parameters["CacheParameterGroupFamily"] == "valkey8"
    assert parameters["Properties"] == {"maxmemory-policy": "allkeys-lru", "cluster-enabled": "yes"}
    # Endpoint output: the configuration endpoint in cluster mode.
    assert template["Outputs"]["Endpoint"]["Value"] == {
        "Fn::GetAtt": [
            next(iter(resources(template, "AWS::ElastiCache::ReplicationGroup"))),
            "ConfigurationEndPoint.Address",
        ]
    }


@pytest.mark.parametrize("environment", ["sandbox", "live"])
def test_a_replication_group_is_encrypted_tls_only_and_in_the_data_subnets(environment: str) -> None:
    tier = two_regions("sandbox").synthesized if environment == "sandbox" else replication_group("live").tier
    template = tier.template("cache")
    props = _group(template)
    assert props["AtRestEncryptionEnabled"] is True
    key = template["Resources"][props["KmsKeyId"]["Fn::GetAtt"][0]]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    assert (props["TransitEncryptionEnabled"], props["TransitEncryptionMode"]) == (True, "required")
    assert props["Port"] == 6379
    (group_ref,) = props["SecurityGroupIds"]
    assert template["Resources"][group_ref["Fn::GetAtt"][0]]["Type"] == "AWS::EC2::SecurityGroup"
    subnets = template["Resources"][props["CacheSubnetGroupName"]["Ref"]]["Properties"]["SubnetIds"]
    assert subnets
    assert all("dataSubnet" in s["Fn::GetStackOutput"]["OutputName"] for s in subnets)
    # Slow log and engine log, JSON, each to its own log group under a customer key, with retention.
    deliveries = {d["LogType"]: d for d in props["LogDeliveryConfigurations"]}
    assert set(deliveries) == {"slow-log", "engine-log"}
    for delivery in deliveries.values():
        assert delivery["DestinationType"] == "cloudwatch-logs"
        assert delivery["LogFormat"] == "json"
        group = template["Resources"][delivery["DestinationDetails"]["CloudWatchLogsDetails"]["LogGroup"]["Ref"]]
        assert group["Properties"]["RetentionInDays"] == tier.settings.cache.log_retention_days
        assert "KmsKeyId" in group["Properties"]
    (policy,) = resources(template, "AWS::Logs::ResourcePolicy").values()
    (statement,) = _policy_statements(policy)
    assert statement["Principal"] == {"Service": "delivery.logs.amazonaws.com"}
    assert statement["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]


def _policy_statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements of a resource policy whose JSON CloudFormation joins from tokens."""
    document = policy["Properties"]["PolicyDocument"]
    if isinstance(document, str):
        return list(json.loads(document)["Statement"])
    # Each token sits inside a JSON string: a placeholder keeps the text valid JSON.
    text = "".join(part if isinstance(part, str) else "TOKEN" for part in document["Fn::Join"][1])
    return list(json.loads(text)["Statement"])


def test_a_production_replication_group_is_multi_az_retained_and_passes_the_gate(
    live_replication_group: DataTier,
) -> None:
    template = live_replication_group.template("cache")
    props = _group(template)
    assert (props["ClusterMode"], props["NumCacheClusters"]) == ("disabled", 3)  # a primary and 2 replicas
    assert props["AutomaticFailoverEnabled"] is True
    assert props["MultiAZEnabled"] is True
    assert props["SnapshotRetentionLimit"] >= 15
    assert props["PreferredMaintenanceWindow"] == "sat:22:00-sat:23:00"
    kept_kinds = (
        "AWS::ElastiCache::User",
        "AWS::ElastiCache::UserGroup",
        "AWS::Logs::LogGroup",
        "AWS::KMS::Key",
        "AWS::EC2::SecurityGroup",
    )
    for kind in kept_kinds:
        for logical_id, resource in resources(template, kind).items():
            assert kept(resource), logical_id
    # The group itself is kept as a final snapshot: a group the template stops holding (a switch of
    # cluster mode or kind, a deleted stack) is snapshotted and deleted, not left running and billing.
    (group,) = resources(template, "AWS::ElastiCache::ReplicationGroup").values()
    assert group["DeletionPolicy"] == group["UpdateReplacePolicy"] == "Snapshot"
    for kind in ("AWS::ElastiCache::SubnetGroup", "AWS::ElastiCache::ParameterGroup"):
        for logical_id, resource in resources(template, kind).items():
            assert resource.get("DeletionPolicy", "Delete") == "Delete", logical_id
    assert "ReaderEndpoint" in template["Outputs"]
    report = live_replication_group.validation_report()
    violations = [v for plugin in report.get("pluginReports", []) for v in plugin.get("violations", [])]
    assert violations == []


def test_a_cluster_mode_switch_makes_a_new_group_with_its_own_subnet_and_parameter_groups(
    live_replication_group: DataTier, sandbox_cluster_mode: Synthesized
) -> None:
    """Turning cluster mode on or off replaces the group (its id names the mode) and gives the new one a
    parameter group and a subnet group of its own: the old group keeps its own until it is deleted."""
    off, on = live_replication_group.template("cache"), sandbox_cluster_mode.template("cache")

    def named(template: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
        return {k: r["Properties"].get(name) for k, r in resources(template, kind).items()}

    groups = [named(t, "AWS::ElastiCache::ReplicationGroup", "ReplicationGroupId") for t in (off, on)]
    assert set(groups[0]) == set(groups[1])  # one logical id: a replacement, under its UpdateReplacePolicy
    assert [next(iter(g.values())).rsplit("-", 1)[1] for g in groups] == ["rg", "cm"]
    subnets = [named(t, "AWS::ElastiCache::SubnetGroup", "CacheSubnetGroupName") for t in (off, on)]
    assert [next(iter(s.values())).rsplit("-", 1)[1] for s in subnets] == ["rg", "cm"]  # a new name: a new group
    parameters = [set(resources(t, "AWS::ElastiCache::ParameterGroup")) for t in (off, on)]
    assert not parameters[0] & parameters[1]


def test_users_are_the_same_resources_whatever_the_kind(
    live_serverless: Synthesized, sandbox_cluster_mode: Synthesized
) -> None:
    """Same logical ids and properties (but for the environment's name): switching the kind replaces the
    cache, never the users."""
    kinds = ("AWS::ElastiCache::User", "AWS::ElastiCache::UserGroup")

    def comparable(env: Synthesized, kind: str) -> Any:
        # What differs between the two environments aside: tags, and retention (production retains).
        found = {
            k: {"Type": r["Type"], "Properties": {p: v for p, v in r["Properties"].items() if p != "Tags"}}
            for k, r in resources(env.template("cache"), kind).items()
        }
        return _same_prefix(found, env)

    for kind in kinds:
        assert comparable(live_serverless, kind) == comparable(sandbox_cluster_mode, kind)
    (group,) = resources(sandbox_cluster_mode.template("cache"), "AWS::ElastiCache::UserGroup").values()
    assert _group(sandbox_cluster_mode.template("cache"))["UserGroupIds"] == [group["Properties"]["UserGroupId"]]
    # Engine "redis": the user group that may hold both IAM users and the switched-off default user.
    assert group["Properties"]["Engine"] == "redis"


def test_services_and_their_grants_do_not_change_with_the_kind(
    live_serverless: Synthesized, sandbox_cluster_mode: Synthesized
) -> None:
    """The statement the services stacks attach is the same for both kinds: the same action and user;
    only the cache's own ARN follows the kind."""

    def cache_statements(env: Synthesized) -> dict[str, dict[str, Any]]:
        found = {}
        for template in env.shards("services").values():
            for policy in resources(template, "AWS::IAM::ManagedPolicy").values():
                for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                    if statement["Sid"] == "ConnectAsItsOwnCacheUser":
                        found[policy["Properties"]["Roles"][0]["Ref"]] = statement
        return found

    serverless, nodes = cache_statements(live_serverless), cache_statements(sandbox_cluster_mode)
    clients = [s.name for s in live_serverless.settings.services if "cache" in s.uses]
    assert sorted(serverless) == sorted(nodes) == sorted(f"Role{c}" for c in clients)
    prefix = sandbox_cluster_mode.settings.name_prefix
    for role, statement in serverless.items():
        other = nodes[role]
        assert statement["Action"] == other["Action"] == "elasticache:Connect"
        # The same user (its id names the environment).
        assert _same_prefix(statement["Resource"][1], live_serverless) == _same_prefix(
            other["Resource"][1], sandbox_cluster_mode
        )
        assert "Valkey" in statement["Resource"][0]["Fn::GetStackOutput"]["OutputName"]
        assert text(other["Resource"][0]) == (
            f"arn:aws:elasticache:{sandbox_cluster_mode.settings.region}:<AWS::AccountId>:replicationgroup:{prefix}-cache-cm"
        )


@pytest.mark.background
@pytest.mark.parametrize("environment", sorted(REPLICATION_GROUPS))
def test_replication_group_tiers_have_no_cfn_lint_errors(environment: str) -> None:
    for lint in replication_group(environment).lints.values():
        assert [describe(p) for p in cfn_lint_problems(lint.stdout())] == []


def test_the_cost_report_prices_nodes_and_reports_unknown_types(sandbox_cluster_mode: Synthesized) -> None:
    templates = _primary_templates(sandbox_cluster_mode)
    prices = load_prices()
    cost = estimate(templates, environment="sandbox", region="us-east-1", prices=prices)
    (line,) = [line for line in cost.lines if "replication group" in line.item]
    hourly = prices["regions"]["us-east-1"]["valkey_node_hour"]["cache.t4g.small"]
    assert line.item == "ElastiCache Valkey replication group 4 x cache.t4g.small"
    assert line.idle == line.busy == round(4 * round(hourly * 730, 2), 2)
    # eu-west-1 has no confirmed node prices: reported, not guessed.
    elsewhere = estimate(templates, environment="sandbox", region="eu-west-1", prices=prices)
    assert not [line for line in elsewhere.lines if "replication group" in line.item]
    assert any("No Valkey node price for cache.t4g.small" in u for u in elsewhere.unknown)


def test_the_architecture_report_names_the_kind(
    live_serverless: Synthesized, sandbox_cluster_mode: Synthesized
) -> None:
    def report(env: Synthesized) -> str:
        return mermaid(load_templates(env.outdir), stack_dependencies(env.outdir))

    assert "(cache.kind serverless)" in report(live_serverless)
    text = report(sandbox_cluster_mode)
    assert "replication group (cache.kind replication-group): 4 x cache.t4g.small" in text


@pytest.mark.parametrize(
    ("environment", "cache", "message"),
    [
        ("sandbox", {"kind": "nodes"}, r"'cache.kind' = 'nodes' .*'serverless' or 'replication-group'"),
        (
            "sandbox",
            {"kind": "replication-group", "node_type": "cache.r7g.large", "snapshot_retention_days": 1},
            r"cache.kind = 'replication-group' requires cache.engine_version",
        ),
        (
            "sandbox",
            {**PROD_REPLICATION_GROUP, "engine_version": 8.1},
            r"'cache.engine_version' = 8.1 .*write \"8.1\"",
        ),
        (
            "sandbox",
            {**PROD_REPLICATION_GROUP, "engine_version": "6.2"},
            r"'cache.engine_version' = '6.2' is not an accepted Valkey version; allowed: 7.2, 8.0, 8.1, 8.2",
        ),
        (
            "sandbox",
            {**PROD_REPLICATION_GROUP, "node_type": "cache.m3.medium"},
            r"'cache.node_type' = 'cache.m3.medium' must be a current-generation ElastiCache node type",
        ),
        (
            "sandbox",
            {**PROD_REPLICATION_GROUP, "replicas_per_shard": 0, "multi_az": True},
            r"automatic failover needs a replica to promote",
        ),
        ("sandbox", {**PROD_REPLICATION_GROUP, "shards": 3}, r"cache.shards = 3 needs cache.cluster_mode: true"),
        (
            "sandbox",
            {**PROD_REPLICATION_GROUP, "cluster_mode": True, "parameters": {"cluster-enabled": "no"}},
            r"cache.parameters.cluster-enabled = 'no' contradicts cache.cluster_mode = true",
        ),
        (
            "sandbox",
            {**PROD_REPLICATION_GROUP, "maintenance_window": "sun:03:30-sun:04:30"},
            r"cache.daily_snapshot_time = '03:00' .* overlaps cache.maintenance_window",
        ),
        ("sandbox", {**PROD_REPLICATION_GROUP, "maintenance_window": "sunday 3am"}, r"must be a weekly UTC window"),
        (
            "sandbox",
            {**PROD_REPLICATION_GROUP, "max_ecpu_per_second": 5000},
            r"cache.max_ecpu_per_second is a setting of the other kind; with kind replication-group allowed:",
        ),
        (
            "sandbox",
            {
                "max_data_storage_gb": 1,
                "max_ecpu_per_second": 5000,
                "snapshot_retention_days": 1,
                "node_type": "cache.r7g.large",
            },
            r"cache.node_type is a setting of the other kind; with kind serverless allowed:",
        ),
        (
            "live",
            {**PROD_REPLICATION_GROUP, "replicas_per_shard": 0},
            r"cache.multi_az = none with cache.replicas_per_shard = 0 is not allowed in production",
        ),
        (
            "live",
            {**PROD_REPLICATION_GROUP, "snapshot_retention_days": 7},
            r"snapshot_retention_days = 7 is below the production minimum for a replication group",
        ),
    ],
)
def test_invalid_cache_settings_are_one_clear_error(
    tmp_path: Path, environment: str, cache: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        example_settings(tmp_path, environment, replace={"cache": cache})
