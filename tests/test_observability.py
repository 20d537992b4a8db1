"""Observability (ADR 0010): Container Insights add-on, alarms, their topic, the dashboard, per environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.assembly import load_templates, stack_dependencies
from infra.config.settings import LOG_RETENTION_DAYS, PRODUCTION_LOG_RETENTION_DAYS, VALKEY_VERSIONS, SettingsError
from infra.constructs.resource_tags_for_telemetry import LOAD_BALANCER_TAG
from infra.reports.architecture import mermaid
from infra.reports.cost import estimate, load_prices
from infra.stacks.observability import member_clusters
from tests.identity import identity_of, irsa_condition
from tests.projects import example_settings
from tests.subjects import two_regions
from tests.synth import Synthesized, deleted, kept, only, resources, text


def _alarms(env: Synthesized) -> dict[str, dict[str, Any]]:
    """Alarm name without the environment prefix -> properties."""
    prefix = env.settings.stack_prefix + "-"
    return {
        a["Properties"]["AlarmName"].removeprefix(prefix): a["Properties"]
        for a in resources(env.template("observability"), "AWS::CloudWatch::Alarm").values()
    }


def _metrics(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics an alarm evaluates: its own, or those of its metric math."""
    if "MetricName" in alarm:
        return [{k: alarm[k] for k in ("Namespace", "MetricName", "Dimensions")}]
    return [q["MetricStat"]["Metric"] for q in alarm["Metrics"] if "MetricStat" in q]


def _dimensions(metric: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}


# --- Container Insights --------------------------------------------------------------------------


def _addon(env: Synthesized) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (k, a)
        for k, a in resources(env.template("eks"), "AWS::EKS::Addon").items()
        if a["Properties"]["AddonName"] == "amazon-cloudwatch-observability"
    ]
    return found


def test_the_cloudwatch_add_on_runs_with_its_own_role(env: Synthesized) -> None:
    """Its own role, through IRSA or (the add-on's PodIdentityAssociations) EKS Pod Identity."""
    template = env.template("eks")
    _, addon = _addon(env)
    props = addon["Properties"]
    assert "AddonVersion" not in props  # EKS's default: no published per-version table to pin from
    if env.settings.eks.workload_identity == "pod-identity":
        assert "ServiceAccountRoleArn" not in props
        assert identity_of(template, "CloudWatchAgentRole") == ("pod-identity", "amazon-cloudwatch:cloudwatch-agent")
    else:
        assert props["ServiceAccountRoleArn"]["Fn::GetAtt"][0].startswith("CloudWatchAgentRole")
        assert identity_of(template, "CloudWatchAgentRole") == (
            "irsa",
            irsa_condition("amazon-cloudwatch:cloudwatch-agent"),
        )
    config = json.loads(props["ConfigurationValues"])
    enhanced = env.settings.observability.enhanced_container_insights
    assert config["containerLogs"] == {"enabled": True}
    assert config["agent"]["config"] == {
        "logs": {"metrics_collected": {"kubernetes": {"enhanced_container_insights": enhanced}}}
    }


def test_the_agent_may_write_only_its_clusters_log_groups_and_metrics(env: Synthesized) -> None:
    template = env.template("eks")
    (policy,) = [
        p for k, p in resources(template, "AWS::IAM::ManagedPolicy").items() if k.startswith("CloudWatchAgent")
    ]
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert set(statements) == {
        "ContainerInsightsLogGroups",
        "DescribeLogGroups",
        "ContainerInsightsMetrics",
        "NodeMetadata",
    }
    prefix = env.settings.stack_prefix
    groups = [template["Resources"][r["Fn::GetAtt"][0]] for r in statements["ContainerInsightsLogGroups"]["Resource"]]
    assert [g["Properties"]["LogGroupName"] for g in groups] == [
        f"/aws/containerinsights/{prefix}/{k}" for k in ("application", "dataplane", "host", "performance")
    ]
    assert statements["ContainerInsightsMetrics"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "ContainerInsights"}
    }
    assert "xray" not in json.dumps(statements)


def test_container_logs_go_to_encrypted_groups_created_first_with_retention(env: Synthesized) -> None:
    template = env.template("eks")
    _, addon = _addon(env)
    prefix = env.settings.stack_prefix
    groups = {
        k: g
        for k, g in resources(template, "AWS::Logs::LogGroup").items()
        if str(g["Properties"].get("LogGroupName", "")).startswith(f"/aws/containerinsights/{prefix}/")
    }
    assert sorted(g["Properties"]["LogGroupName"].rsplit("/", 1)[1] for g in groups.values()) == [
        "application",
        "dataplane",
        "host",
        "performance",
    ]
    keys = {json.dumps(g["Properties"]["KmsKeyId"]) for g in groups.values()}
    assert len(keys) == 1  # one key for the cluster's four groups
    for logical_id, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == env.settings.observability.container_log_retention_days
        assert (kept if env.settings.retain_data else deleted)(group)
        assert logical_id in addon["DependsOn"]  # created before the agent could create them unencrypted
    # Nodes, DNS and the load balancer controller (its webhook admits the add-on's Services) first.
    depends = " ".join(addon["DependsOn"])
    assert "ClusterNodegroupNodes" in depends
    assert "CoreDnsAddon" in depends
    assert "AlbController" in depends


# --- The topic -----------------------------------------------------------------------------------


def test_the_alarm_topic_is_encrypted_and_only_cloudwatch_of_this_account_publishes(env: Synthesized) -> None:
    template = env.template("observability")
    topic = only(template, "AWS::SNS::Topic")["Properties"]
    key = template["Resources"][topic["KmsMasterKeyId"]["Fn::GetAtt"][0]]["Properties"]
    assert key["EnableKeyRotation"] is True
    (cloudwatch,) = [
        s for s in key["KeyPolicy"]["Statement"] if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]
    account = env.settings.account or {"Ref": "AWS::AccountId"}
    assert cloudwatch["Condition"] == {"StringEquals": {"aws:SourceAccount": account}}
    policy = only(template, "AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"]["Statement"]
    by_sid = {s["Sid"]: s for s in policy}
    assert by_sid["AllowPublishThroughSSLOnly"]["Effect"] == "Deny"
    assert by_sid["CloudWatchAlarmsOfThisAccount"]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}


def test_subscriptions_follow_settings_and_production_has_one(env: Synthesized) -> None:
    notifications = env.settings.observability.notifications
    subscriptions = resources(env.template("observability"), "AWS::SNS::Subscription").values()
    found = sorted((s["Properties"]["Protocol"], s["Properties"]["Endpoint"]) for s in subscriptions)
    assert found == sorted(
        [("email", e) for e in notifications.emails] + [("https", u) for u in notifications.https_endpoints]
    )
    if env.settings.production:
        assert found


# --- Alarms --------------------------------------------------------------------------------------


def test_every_alarm_notifies_the_topic_and_says_what_broke(env: Synthesized) -> None:
    topic_id = next(iter(resources(env.template("observability"), "AWS::SNS::Topic")))
    for name, alarm in _alarms(env).items():
        assert alarm["AlarmActions"] == [{"Ref": topic_id}], name
        assert alarm["OKActions"] == [{"Ref": topic_id}], name
        description = alarm["AlarmDescription"]
        assert description[0].isupper(), name
        assert description.endswith("."), name
        assert 40 < len(description) < 400, name


def test_alarms_watch_this_environments_resources_at_the_configured_thresholds(env: Synthesized) -> None:
    s = env.settings
    t = s.observability.alarms
    alarms = _alarms(env)
    prefix = s.stack_prefix
    expected = {
        "database-cpu": ("AWS/RDS", "CPUUtilization", {"DBClusterIdentifier": f"{prefix}-db"}, t.database_cpu_percent),
        "database-memory": (
            "AWS/RDS",
            "FreeableMemory",
            {"DBClusterIdentifier": f"{prefix}-db"},
            t.database_freeable_memory_mib * 1024 * 1024,
        ),
        "database-capacity": (
            "AWS/RDS",
            "ACUUtilization",
            {"DBClusterIdentifier": f"{prefix}-db"},
            t.database_capacity_percent,
        ),
        "database-storage": (
            "AWS/RDS",
            "VolumeBytesUsed",
            {"DBClusterIdentifier": f"{prefix}-db"},
            t.database_storage_gib * 1024**3,
        ),
        "nodes-not-ready": ("ContainerInsights", "cluster_failed_node_count", {"ClusterName": prefix}, 0),
        "api-server-errors": (
            "AWS/EKS",
            "apiserver_request_total_5XX",
            {"ClusterName": prefix},
            t.api_server_errors_per_5_minutes,
        ),
    }
    if s.cache.kind == "serverless":
        expected["cache-throttling"] = ("AWS/ElastiCache", "ThrottledCmds", {"clusterId": f"{prefix}-cache"}, 0)
    if s.database.capacity is None:
        # Provisioned instances have no ACUs to run out of.
        del expected["database-capacity"]
    for name, (namespace, metric, dimensions, threshold) in expected.items():
        (found,) = _metrics(alarms[name])
        assert (found["Namespace"], found["MetricName"], _dimensions(found)) == (namespace, metric, dimensions), name
        assert alarms[name]["Threshold"] == threshold, name
    assert alarms["database-memory"]["ComparisonOperator"] == "LessThanThreshold"
    # A reader's lag only where there are readers.
    assert ("database-replica-lag" in alarms) == bool(s.database.readers)
    if s.database.readers:
        (lag,) = _metrics(alarms["database-replica-lag"])
        assert _dimensions(lag) == {"DBClusterIdentifier": f"{prefix}-db", "Role": "READER"}


def test_the_node_group_alarm_fires_only_at_its_maximum_with_pods_pending(env: Synthesized) -> None:
    if env.settings.eks.autoscaling == "karpenter":  # Karpenter's own: the test below
        assert "nodes-at-maximum-with-pods-pending" not in _alarms(env)
        return
    alarm = _alarms(env)["nodes-at-maximum-with-pods-pending"]
    (expression,) = [q["Expression"] for q in alarm["Metrics"] if "Expression" in q]
    assert expression == f"IF(nodes >= {env.settings.eks.node_group.max_size} AND pending > 0, 1, 0)"
    names = {m["MetricName"]: _dimensions(m) for m in _metrics(alarm)}
    assert names == {
        "cluster_node_count": {"ClusterName": env.settings.stack_prefix},
        "scheduler_pending_pods_UNSCHEDULABLE": {"ClusterName": env.settings.stack_prefix},
    }


def test_karpenter_alarms_watch_its_queue_and_unschedulable_pods(env: Synthesized) -> None:
    """With Karpenter: pods unschedulable for 15 minutes (it cannot launch), an interruption event older
    than two minutes (it is not reading its queue), any dead-lettered event; by the queues' real names."""
    alarms = _alarms(env)
    if env.settings.eks.autoscaling != "karpenter":
        assert not [name for name in alarms if "karpenter" in name]
        return
    queues = {r["Properties"]["QueueName"]: r for r in resources(env.template("eks"), "AWS::SQS::Queue").values()}
    (queue,) = [name for name, q in queues.items() if "RedrivePolicy" in q["Properties"]]
    assert f"{queue}-dead-letters" in queues
    watched = {
        name: {m["MetricName"]: _dimensions(m) for m in _metrics(alarms[name])}
        for name in (
            "pods-pending-karpenter-cannot-launch",
            "karpenter-interruptions-unread",
            "karpenter-interruptions-dead-lettered",
        )
    }
    assert watched == {
        "pods-pending-karpenter-cannot-launch": {
            "scheduler_pending_pods_UNSCHEDULABLE": {"ClusterName": env.settings.stack_prefix}
        },
        "karpenter-interruptions-unread": {"ApproximateAgeOfOldestMessage": {"QueueName": queue}},
        "karpenter-interruptions-dead-lettered": {
            "ApproximateNumberOfMessagesVisible": {"QueueName": f"{queue}-dead-letters"}
        },
    }


def test_every_nat_gateway_has_its_two_alarms(env: Synthesized) -> None:
    alarms = _alarms(env)
    gateways = resources(env.template("network"), "AWS::EC2::NatGateway")
    assert len(gateways) == env.settings.network.nat_gateways
    watched = set()
    for index in range(1, len(gateways) + 1):
        for kind, metric in (("port-allocation", "ErrorPortAllocation"), ("dropped-packets", "PacketsDropCount")):
            (found,) = _metrics(alarms[f"nat-{index}-{kind}"])
            assert found["MetricName"] == metric
            output = _dimensions(found)["NatGatewayId"]["Fn::GetStackOutput"]
            assert output["StackName"] == f"{env.settings.stack_prefix}-network"
            watched.add(output["OutputName"])
    assert len(watched) == len(gateways)


def test_load_balancers_are_watched_only_where_this_environment_tagged_them(env: Synthesized) -> None:
    """Metrics Insights over the ALBs whose controller-given tag names this environment's cluster, with
    the tag on every load balancer the controller creates and CloudWatch's tag enrichment turned on."""
    cluster = only(env.template("eks"), "AWS::EKS::Cluster")["Properties"]["Name"]
    mine = f" WHERE tag.{LOAD_BALANCER_TAG} = '{cluster}'"
    alarms = _alarms(env)
    queries = {
        name: [q["Expression"] for q in alarms[name]["Metrics"]]
        for name in ("load-balancer-5xx", "service-5xx", "unhealthy-targets")
    }
    assert queries == {
        "load-balancer-5xx": [
            f'SELECT SUM(HTTPCode_ELB_5XX_Count) FROM SCHEMA("AWS/ApplicationELB", LoadBalancer){mine}'
        ],
        "service-5xx": [f'SELECT SUM(HTTPCode_Target_5XX_Count) FROM SCHEMA("AWS/ApplicationELB", LoadBalancer){mine}'],
        "unhealthy-targets": [
            f'SELECT MAX(UnHealthyHostCount) FROM SCHEMA("AWS/ApplicationELB", LoadBalancer, TargetGroup){mine}'
        ],
    }
    (controller,) = [
        c
        for c in resources(env.template("eks"), "Custom::AWSCDK-EKS-HelmChart").values()
        if c["Properties"]["Release"] == "aws-load-balancer-controller"
    ]
    assert json.dumps({LOAD_BALANCER_TAG: cluster}, separators=(",", ":")) in text(controller["Properties"]["Values"])
    (start,) = [
        r["Properties"]
        for r in resources(env.template("eks"), "Custom::AWS").values()
        if "startTelemetryEnrichment" in str(r["Properties"].get("Create"))
    ]
    call = json.loads(start["Create"])
    assert (call["service"], call["ignoreErrorCodesMatching"]) == ("ObservabilityAdmin", "ConflictException")
    assert start["Update"] == start["Create"]
    assert "Delete" not in start  # other environments of the account may filter by tags too


@pytest.mark.needs_synth("examples-sandbox-two-regions")
def test_a_replication_group_is_watched_node_by_node() -> None:
    sandbox = two_regions("sandbox").synthesized  # a cluster-mode replication group
    alarms = _alarms(sandbox)
    cache = sandbox.settings.cache
    prefix = sandbox.settings.stack_prefix
    members = member_clusters(f"{prefix}-cache-cm", cache)
    assert members[:2] == [f"{prefix}-cache-cm-0001-001", f"{prefix}-cache-cm-0001-002"]
    assert len(members) == cache.shards * (1 + cache.replicas_per_shard)
    for name, metric in (
        ("cache-cpu", "EngineCPUUtilization"),
        ("cache-memory", "DatabaseMemoryUsagePercentage"),
        ("cache-evictions", "Evictions"),
        ("cache-replication-lag", "ReplicationLag"),
    ):
        watched = [_dimensions(m) for m in _metrics(alarms[name])]
        assert {m["MetricName"] for m in _metrics(alarms[name])} == {metric}
        assert watched == [{"CacheClusterId": m, "CacheNodeId": "0001"} for m in members], name
    assert not {"cache-throttling", "cache-data", "cache-ecpu"} & set(alarms)


def test_the_dashboard_shows_every_alarm_and_this_environments_metrics(env: Synthesized) -> None:
    template = env.template("observability")
    body = only(template, "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"]["Fn::Join"][1]
    alarm_ids = {p["Fn::GetAtt"][0] for p in body if isinstance(p, dict) and "Fn::GetAtt" in p}
    assert alarm_ids == set(resources(template, "AWS::CloudWatch::Alarm"))
    text = "".join(p for p in body if isinstance(p, str))
    prefix = env.settings.stack_prefix
    cache = f'"clusterId","{prefix}-cache"' if env.settings.cache.kind == "serverless" else '"CacheClusterId"'
    for fragment in (
        f'"ClusterName","{prefix}"',
        f'"DBClusterIdentifier","{prefix}-db"',
        cache,
        "node_cpu_utilization",
        "PacketsDropCount",
        "HTTPCode_ELB_5XX_Count",
    ):
        assert fragment in text, fragment


def test_alarms_are_created_after_what_they_watch(env: Synthesized) -> None:
    prefix = env.settings.stack_prefix
    depends = set(env.manifest()["artifacts"][f"{prefix}-observability"]["dependencies"])
    assert {f"{prefix}-{s}" for s in ("network", "eks", "database", "cache")} <= depends


# --- Reports -------------------------------------------------------------------------------------


def test_the_cost_report_prices_alarms_and_the_dashboard(env: Synthesized) -> None:
    prices = load_prices()
    if env.settings.region not in prices["regions"]:
        return  # no prices there: the report says so (tests/test_reports.py)
    templates = load_templates(env.outdir)
    cost = estimate(templates, environment="e", region=env.settings.region, prices=prices)
    (line,) = [line for line in cost.lines if line.item.startswith("CloudWatch alarms")]
    alarms = sum(
        1 for t in templates.values() for r in t.get("Resources", {}).values() if r["Type"] == "AWS::CloudWatch::Alarm"
    )
    assert line.item.startswith(f"CloudWatch alarms x{alarms} (")
    assert f"dashboards x{len(env.settings.all_regions)}" in line.item
    assert any("Container Insights metrics" in n for n in cost.not_included)


def test_the_architecture_report_shows_where_signals_flow(env: Synthesized) -> None:
    text = mermaid(load_templates(env.outdir), stack_dependencies(env.outdir))
    assert "==>|metrics|" in text
    assert "==>|notify|" in text
    assert "CloudWatch observability add-on" in text


# --- Settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environment", "observability", "message"),
    [
        (
            "sandbox",
            {"alarms": {"database_cpu_percent": 120}},
            r"'observability.alarms.database_cpu_percent' = 120 .*100",
        ),
        ("sandbox", {"alarms": {"cache_usage_percent": 10}}, r"'observability.alarms.cache_usage_percent' = 10 .*50"),
        (
            "sandbox",
            {"alarms": {"cpu": 90}},
            r"'observability.alarms.cpu' is not a known setting; allowed here: api_server",
        ),
        (
            "sandbox",
            {"notifications": {"emails": ["oncall-at-example.com"]}},
            r"'observability.notifications.emails' .*'oncall-at-example.com' is not an email address",
        ),
        (
            "sandbox",
            {"notifications": {"https_endpoints": ["http://hooks.example.com/x"]}},
            r"'http://hooks.example.com/x' is not an HTTPS URL",
        ),
        (
            "sandbox",
            {"container_log_retention_days": 10},
            r"'observability.container_log_retention_days' = 10 must be one of",
        ),
        ("live", {"notifications": {"emails": []}}, r"observability.notifications: production needs someone who hears"),
    ],
)
def test_bad_observability_settings_are_one_clear_error(
    tmp_path: Path, environment: str, observability: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        example_settings(tmp_path, environment, replace={"observability": observability})


@pytest.mark.parametrize("kind", ["serverless", "replication-group"])
def test_production_refuses_each_log_retention_below_a_year(tmp_path: Path, kind: str) -> None:
    """Every retention the settings decide (the cache's once it has log groups), one at a time."""
    cache: dict[str, Any] = {"kind": kind}
    if kind == "replication-group":
        cache |= {
            "max_data_storage_gb": None,
            "max_ecpu_per_second": None,
            "engine_version": VALKEY_VERSIONS[-1],
            "node_type": "cache.r7g.large",
            "snapshot_retention_days": 15,
            "log_retention_days": PRODUCTION_LOG_RETENTION_DAYS,
        }
    live = example_settings(tmp_path / "base", "live", {"cache": cache})
    assert ("cache.log_retention_days" in live.log_retentions) == (kind == "replication-group")
    shorter = max(d for d in LOG_RETENTION_DAYS if d < PRODUCTION_LOG_RETENTION_DAYS)
    for setting in live.log_retentions:
        section, key = setting.split(".")
        edits: dict[str, Any] = {"cache": dict(cache)}
        edits.setdefault(section, {})[key] = shorter
        with pytest.raises(SettingsError, match=rf"{setting} = {shorter} is below the production minimum of 365 days"):
            example_settings(tmp_path / setting, "live", edits)
    sandbox = example_settings(tmp_path / "sandbox", "sandbox", {"observability": {"function_log_retention_days": 1}})
    assert sandbox.observability.function_log_retention_days == 1  # not production: the user's choice


def test_every_log_group_is_encrypted_with_a_key_of_its_own_stack(env: Synthesized) -> None:
    """aws-cdk-lib's own (the kubectl provider's functions') included: none is left to CloudWatch's key."""
    seen = 0
    for name, template in env.templates().items():
        for logical_id, resource in template.get("Resources", {}).items():
            if resource["Type"] != "AWS::Logs::LogGroup":
                continue
            seen += 1
            key = resource["Properties"].get("KmsKeyId")
            assert isinstance(key, dict), (name, logical_id, key)
            assert "Fn::GetAtt" in key, (name, logical_id, key)
            assert template["Resources"][key["Fn::GetAtt"][0]]["Type"] == "AWS::KMS::Key", (name, logical_id)
    assert seen


def test_every_log_group_of_production_keeps_a_year(env: Synthesized) -> None:
    """Plain log groups and those created or adopted at deploy time, in every stack of the environment."""
    if not env.settings.production:
        pytest.skip("production only")
    seen = 0
    for name, template in env.templates().items():
        for logical_id, resource in template.get("Resources", {}).items():
            properties = resource.get("Properties", {})
            if resource["Type"] == "AWS::Logs::LogGroup":
                days = properties.get("RetentionInDays")
            elif resource["Type"] == "Custom::AWS" and "putRetentionPolicy" in str(properties.get("Create")):
                days = json.loads(properties["Create"])["parameters"]["retentionInDays"]
            else:
                continue
            seen += 1
            assert days is None or days >= PRODUCTION_LOG_RETENTION_DAYS, (name, logical_id, days)
    assert seen


def test_a_silent_agent_is_an_alarm_not_a_green_board(env: Synthesized) -> None:
    alarms = _alarms(env)
    silent = alarms["container-insights-silent"]
    assert (silent["MetricName"], silent["ComparisonOperator"], silent["Threshold"]) == (
        "cluster_node_count",
        "LessThanThreshold",
        1,
    )
    assert silent["TreatMissingData"] == "breaching"
    # Every other alarm but the database's own heartbeat: no data is no problem (no load balancer yet, no
    # throttling, a quiet NAT).
    heartbeats = {"container-insights-silent", "database-silent"}
    assert {a["TreatMissingData"] for n, a in alarms.items() if n not in heartbeats} == {"notBreaching"}


def test_a_database_that_never_pauses_alarms_when_it_goes_silent(env: Synthesized) -> None:
    """Where the writer always runs (provisioned, or a Serverless v2 minimum above 0 ACUs), no metric for 15
    minutes is an alarm; where it may pause, silence is what pausing looks like, and no such alarm exists."""
    s = env.settings
    alarms = _alarms(env)
    capacity = s.database.capacity
    if capacity is not None and capacity.min_acu == 0:
        assert "database-silent" not in alarms
        return
    silent = alarms["database-silent"]
    assert (silent["Namespace"], silent["MetricName"], silent["Statistic"]) == (
        "AWS/RDS",
        "CPUUtilization",
        "SampleCount",
    )
    assert _dimensions(silent) == {"DBClusterIdentifier": f"{s.stack_prefix}-db"}
    assert (silent["ComparisonOperator"], silent["Threshold"], silent["TreatMissingData"]) == (
        "LessThanThreshold",
        1,
        "breaching",
    )


def test_every_alarm_of_the_environment_and_its_threshold(env: Synthesized) -> None:
    """The whole set, each threshold computed here from the settings."""
    s = env.settings
    t = s.observability.alarms
    cache = s.cache
    expected: dict[str, float] = {
        "container-insights-silent": 1,
        "nodes-not-ready": 0,
        "api-server-errors": t.api_server_errors_per_5_minutes,
        "database-cpu": t.database_cpu_percent,
        "database-memory": t.database_freeable_memory_mib * 1024 * 1024,
        "database-deadlocks": t.database_deadlocks_per_minute / 60,
        "database-storage": t.database_storage_gib * 1024**3,
        "load-balancer-5xx": t.load_balancer_5xx_per_5_minutes,
        "service-5xx": t.load_balancer_5xx_per_5_minutes,
        "unhealthy-targets": 0,
    }
    if s.eks.autoscaling == "karpenter":
        expected |= {
            "pods-pending-karpenter-cannot-launch": 0,
            "karpenter-interruptions-unread": 120,
            "karpenter-interruptions-dead-lettered": 0,
        }
    else:
        expected["nodes-at-maximum-with-pods-pending"] = 1
    if s.database.capacity is not None:
        expected["database-capacity"] = t.database_capacity_percent
    if s.database.capacity is None or s.database.capacity.min_acu > 0:
        expected["database-silent"] = 1
    if s.database.readers:
        expected["database-replica-lag"] = t.database_replica_lag_seconds * 1000
    if s.other_regions and s.database.other_regions == "global" and s.writer_region != s.region:
        expected["database-global-lag"] = t.database_replica_lag_seconds * 1000  # not the writer
    if cache.kind == "serverless":
        assert cache.max_data_storage_gb is not None
        assert cache.max_ecpu_per_second is not None
        expected["cache-throttling"] = 0
        expected["cache-data"] = cache.max_data_storage_gb * 1e9 * t.cache_usage_percent / 100
        expected["cache-ecpu"] = cache.max_ecpu_per_second * 60 * t.cache_usage_percent / 100
    else:
        members = member_clusters(f"{s.stack_prefix}-cache-{'cm' if cache.cluster_mode else 'rg'}", cache)
        groups = range(1, -(-len(members) // 10) + 1)
        per_node: dict[str, float] = {
            "cache-cpu": t.cache_cpu_percent,
            "cache-memory": t.cache_usage_percent,
            "cache-evictions": t.cache_evictions_per_5_minutes,
        }
        if cache.replicas_per_shard:
            per_node["cache-replication-lag"] = t.cache_replication_lag_seconds
        for name, threshold in per_node.items():
            expected.update({name if len(groups) == 1 else f"{name}-{i}": threshold for i in groups})
    for index in range(1, s.network.nat_gateways + 1):
        expected[f"nat-{index}-port-allocation"] = 0
        expected[f"nat-{index}-dropped-packets"] = t.nat_dropped_packets_per_5_minutes
    alarms = _alarms(env)
    assert sorted(alarms) == sorted(expected)
    for name, threshold in expected.items():
        assert alarms[name]["Threshold"] == pytest.approx(threshold), name
