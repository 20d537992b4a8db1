"""cache.kind: ElastiCache Serverless or a provisioned replication group, same users and grants either way.

The tests' examples as replication groups (tests/subjects.py REPLICATION_GROUPS): the non-production
one in cluster mode, the production one Multi-AZ with two replicas; each synthesized as its data tier
(network, cache, observability) through the gate. The examples in two regions are Serverless.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.assembly import load_templates, stack_dependencies
from infra.config.settings import SettingsError
from infra.reports.architecture import mermaid
from infra.reports.cost import estimate, load_prices
from scripts.forms import cfn_lint_problems, describe
from tests.projects import example_settings
from tests.subjects import REPLICATION_GROUPS, replication_group, two_regions
from tests.synth import DataTier, Synthesized, only, resources

PROD_REPLICATION_GROUP = {k: v for k, v in REPLICATION_GROUPS["live"].items() if v is not None}


@pytest.fixture(scope="module")
def sandbox_cluster_mode() -> DataTier:
    return replication_group("sandbox").tier


@pytest.fixture(scope="module")
def live_replication_group() -> DataTier:
    return replication_group("live").tier


@pytest.fixture(scope="module")
def sandbox_serverless() -> Synthesized:
    return two_regions("sandbox").synthesized


def _group(template: dict[str, Any]) -> dict[str, Any]:
    return dict(only(template, "AWS::ElastiCache::ReplicationGroup")["Properties"])


def test_a_cluster_mode_replication_group_is_made_from_its_settings(
    sandbox_cluster_mode: DataTier,
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
    tier = replication_group(environment).tier
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
    kept = (
        "AWS::ElastiCache::ReplicationGroup",
        "AWS::ElastiCache::User",
        "AWS::ElastiCache::UserGroup",
        "AWS::Logs::LogGroup",
        "AWS::KMS::Key",
        "AWS::EC2::SecurityGroup",
    )
    for kind in kept:
        for logical_id, resource in resources(template, kind).items():
            assert resource["DeletionPolicy"] == "Retain", logical_id
    assert "ReaderEndpoint" in template["Outputs"]
    report = live_replication_group.validation_report()
    violations = [v for plugin in report.get("pluginReports", []) for v in plugin.get("violations", [])]
    assert violations == []


def test_users_are_the_same_resources_whatever_the_kind(
    sandbox_serverless: Synthesized, sandbox_cluster_mode: DataTier
) -> None:
    """Same logical ids and properties: switching the kind replaces the cache, never the users."""
    kinds = ("AWS::ElastiCache::User", "AWS::ElastiCache::UserGroup")

    def comparable(template: dict[str, Any], kind: str) -> dict[str, Any]:
        # Tags aside: the data tier is synthesized without the platform's tags.
        return {
            k: {**r, "Properties": {p: v for p, v in r["Properties"].items() if p != "Tags"}, "Metadata": None}
            for k, r in resources(template, kind).items()
        }

    for kind in kinds:
        assert comparable(sandbox_serverless.template("cache"), kind) == comparable(
            sandbox_cluster_mode.template("cache"), kind
        )
    (group,) = resources(sandbox_serverless.template("cache"), "AWS::ElastiCache::UserGroup").values()
    assert _group(sandbox_cluster_mode.template("cache"))["UserGroupIds"] == [group["Properties"]["UserGroupId"]]
    # Engine "redis": the user group that may hold both IAM users and the switched-off default user.
    assert group["Properties"]["Engine"] == "redis"


def test_services_and_their_grants_do_not_change_with_the_kind(
    sandbox_serverless: Synthesized, sandbox_cluster_mode: DataTier
) -> None:
    """The statement the services stacks attach (DataStoreArns) is the same for both kinds: the same
    action and user; only the cache's own ARN follows the kind."""
    from aws_cdk import Stack

    from infra.stacks.services import DataStoreArns

    def cache_statement(cache: Any, service: Any) -> dict[str, Any]:
        arns = DataStoreArns(db_user_prefix="", cache_arn=cache.valkey.arn, cache_user_prefix=cache.valkey.user_arn(""))
        (statement,) = [s for s in arns.grants(service) if s["Sid"] == "ConnectAsItsOwnCacheUser"]
        return dict(Stack.of(cache).resolve(statement))

    prefix = sandbox_serverless.settings.stack_prefix
    for service in [s for s in sandbox_serverless.settings.services if "cache" in s.uses]:
        serverless = cache_statement(sandbox_serverless.platform.cache, service)
        nodes = cache_statement(sandbox_cluster_mode.cache, service)
        assert serverless["Action"] == nodes["Action"] == "elasticache:Connect"
        assert serverless["Resource"][1] == nodes["Resource"][1]  # the same user
        assert serverless["Resource"][0] == {"Fn::GetAtt": ["Valkey26DD46EF", "ARN"]}
        assert nodes["Resource"][0]["Fn::Join"][1] == [
            f"arn:aws:elasticache:{sandbox_serverless.settings.region}:",
            {"Ref": "AWS::AccountId"},
            f":replicationgroup:{prefix}-cache-cm",
        ]


@pytest.mark.background
@pytest.mark.parametrize("environment", sorted(REPLICATION_GROUPS))
def test_replication_groups_have_no_cfn_lint_errors(environment: str) -> None:
    for lint in replication_group(environment).lints.values():
        assert [describe(p) for p in cfn_lint_problems(lint.stdout())] == []


def test_the_cost_report_prices_nodes_and_reports_unknown_types(sandbox_cluster_mode: DataTier) -> None:
    templates = load_templates(sandbox_cluster_mode.outdir)
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
    sandbox_serverless: Synthesized, sandbox_cluster_mode: DataTier
) -> None:
    def report(env: Synthesized | DataTier) -> str:
        return mermaid(load_templates(env.outdir), stack_dependencies(env.outdir))

    assert "(cache.kind serverless)" in report(sandbox_serverless)
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
