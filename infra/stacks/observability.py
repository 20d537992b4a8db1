"""Observability stack: the environment's alarms, their encrypted SNS topic, and one dashboard (ADR 0010).

Every alarm names real metrics of this environment's resources, by the identifiers the other
stacks fix at synth (cluster, database and cache names) or reference (NAT gateways). The load
balancers the controller creates at run time are watched through Metrics Insights queries over the
ones it tagged with the environment's cluster (ADR 0010).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from aws_cdk import CfnOutput, CfnResource
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.config.settings import AlarmThresholds, CacheSettings, DatabaseSettings, NotificationSettings
from infra.constructs.encryption_key import EncryptionKey
from infra.constructs.resource_tags_for_telemetry import LOAD_BALANCER_TAG
from infra.stacks.base import PlatformStack

FIVE_MINUTES = 300  # seconds
GIB = 1024**3
GREATER = "GreaterThanThreshold"
# Metrics per alarm expression: CloudWatch allows 10 metrics in one alarm's metric math.
METRICS_PER_ALARM = 10


@dataclass(frozen=True)
class Metric:
    """One CloudWatch metric, written straight into templates (L1: one call into CDK per alarm, which
    keeps synth fast; ADR 0005)."""

    namespace: str
    name: str
    dimensions: dict[str, Any]
    statistic: str
    period: int = FIVE_MINUTES

    def alarm_properties(self) -> dict[str, Any]:
        return {
            "Namespace": self.namespace,
            "MetricName": self.name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in self.dimensions.items()],
            "Statistic": self.statistic,
            "Period": self.period,
        }

    def query(self, query_id: str) -> dict[str, Any]:
        metric = {k: v for k, v in self.alarm_properties().items() if k in ("Namespace", "MetricName", "Dimensions")}
        return {
            "Id": query_id,
            "MetricStat": {"Metric": metric, "Period": self.period, "Stat": self.statistic},
            "ReturnData": False,
        }

    def widget_lines(self, index: int) -> list[list[Any]]:  # the index names expressions only
        dimensions = [part for item in self.dimensions.items() for part in item]
        return [[self.namespace, self.name, *dimensions, {"stat": self.statistic, "period": self.period}]]


@dataclass(frozen=True)
class Expression:
    """Metric math over ``using``, or a Metrics Insights query (no ``using``)."""

    expression: str
    label: str
    using: dict[str, Metric] = field(default_factory=dict)
    period: int = FIVE_MINUTES

    def alarm_properties(self) -> dict[str, Any]:
        main: dict[str, Any] = {"Id": "e", "Expression": self.expression, "Label": self.label, "ReturnData": True}
        if not self.using:
            main["Period"] = self.period  # a query has no metric to take its period from
        return {"Metrics": [main, *(m.query(i) for i, m in self.using.items())]}

    def widget_lines(self, index: int) -> list[list[Any]]:
        """The expression (id ``e<index>`` in its widget) and the metrics it uses, hidden."""
        lines: list[list[Any]] = [[{"expression": self.expression, "label": self.label, "id": f"e{index}"}]]
        for query_id, metric in self.using.items():
            (line,) = metric.widget_lines(index)
            lines.append([*line[:-1], {**line[-1], "id": query_id, "visible": False}])
        return lines


Signal = Metric | Expression


@dataclass(frozen=True)
class Watched:
    """What the alarms watch, by the names and ids the other stacks give it."""

    cluster_name: str
    node_group_max_size: int
    database_identifier: str | None  # None: no database in this region
    database: DatabaseSettings
    cache_name: str  # the serverless cache's name
    replication_group_id: str | None  # set when cache.kind is replication-group
    cache: CacheSettings
    nat_gateway_ids: Sequence[str]
    # Not the writer of an Aurora global database: its lag behind the writer's region is watched.
    global_secondary: bool = False
    # eks.autoscaling karpenter: the name of its interruption queue.
    karpenter_queue: str | None = None


class ObservabilityStack(PlatformStack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        zones: list[str],
        watched: Watched,
        thresholds: AlarmThresholds,
        notifications: NotificationSettings,
        name_prefix: str,
        dashboard_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        """``dashboard_name``: default ``name_prefix``; dashboard names are unique in the account, not
        per region, so another region of the environment names its own."""
        super().__init__(scope, construct_id, zones=zones, **kwargs)
        self.prefix = name_prefix
        self.dashboard_name = dashboard_name or name_prefix
        self.thresholds = thresholds
        self.topic = self._topic(notifications)
        self.alarms: list[CfnResource] = []
        self._thresholds: dict[str, float] = {}
        self.widgets: list[dict[str, Any]] = []
        self._cluster(watched)
        if watched.database_identifier is not None:
            self._database(watched)
        if watched.replication_group_id:
            self._cache_nodes(watched)
        else:
            self._serverless_cache(watched)
        self._nat(watched)
        self._load_balancers(watched)
        self.dashboard = self._dashboard()
        CfnOutput(self, "AlarmTopicArn", value=self.topic.topic_arn, description="SNS topic every alarm notifies")
        CfnOutput(
            self,
            "DashboardUrl",
            value=f"https://{self.region}.console.aws.amazon.com/cloudwatch/home?region={self.region}"
            f"#dashboards/dashboard/{self.dashboard_name}",
            description="The environment on one screen",
        )

    # --- the topic -------------------------------------------------------------------------------

    def _topic(self, notifications: NotificationSettings) -> sns.Topic:
        key = EncryptionKey(self, "TopicKey", alias_prefix=self.prefix, purpose="alarms-topic", retain=False).key
        # CloudWatch publishes to an encrypted topic only when the key lets it (SNS developer guide,
        # "Enable compatibility between event sources from AWS services and encrypted topics").
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisAccount",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        topic = sns.Topic(
            self,
            "AlarmTopic",
            topic_name=f"{self.prefix}-alarms",
            display_name=f"{self.prefix} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisAccount",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        for address in notifications.emails:
            topic.add_subscription(subscriptions.EmailSubscription(address))
        for url in notifications.https_endpoints:
            topic.add_subscription(subscriptions.UrlSubscription(url, protocol=sns.SubscriptionProtocol.HTTPS))
        return topic

    def _alarm(
        self,
        construct_id: str,
        *,
        metric: Signal,
        threshold: float,
        description: str,
        comparison: str = GREATER,
        periods: int = 3,
        missing: str = "notBreaching",
    ) -> CfnResource:
        alarm = CfnResource(
            self,
            construct_id,
            type="AWS::CloudWatch::Alarm",
            properties={
                "AlarmName": f"{self.prefix}-{construct_id}",
                "AlarmDescription": description,
                **metric.alarm_properties(),
                "Threshold": threshold,
                "ComparisonOperator": comparison,
                "EvaluationPeriods": periods,
                "DatapointsToAlarm": periods,
                "TreatMissingData": missing,
                "AlarmActions": [self.topic.topic_arn],
                "OKActions": [self.topic.topic_arn],
            },
        )
        self.alarms.append(alarm)
        self._thresholds[construct_id] = threshold
        return alarm

    def _graph(self, title: str, signals: Sequence[Signal], alarm: CfnResource | None = None) -> None:
        properties: dict[str, Any] = {
            "view": "timeSeries",
            "title": title,
            "region": self.region,
            "metrics": [line for index, signal in enumerate(signals) for line in signal.widget_lines(index)],
        }
        if alarm is not None:
            threshold = self._thresholds[alarm.node.id]
            properties["annotations"] = {"horizontal": [{"label": "alarm", "value": threshold}]}
        self.widgets.append({"type": "metric", "width": 8, "height": 6, "properties": properties})

    def _dashboard(self) -> CfnResource:
        widgets: list[dict[str, Any]] = [
            {
                "type": "alarm",
                "width": 24,
                "height": 6,
                "x": 0,
                "y": 0,
                "properties": {
                    "title": f"{self.prefix}: alarms",
                    "alarms": [alarm.get_att("Arn").to_string() for alarm in self.alarms],
                },
            }
        ]
        for index, widget in enumerate(self.widgets):
            widgets.append({**widget, "x": (index % 3) * 8, "y": 6 + (index // 3) * 6})
        return CfnResource(
            self,
            "Dashboard",
            type="AWS::CloudWatch::Dashboard",
            properties={
                "DashboardName": self.dashboard_name,
                "DashboardBody": self.to_json_string({"start": "-PT3H", "widgets": widgets}),
            },
        )

    # --- EKS -------------------------------------------------------------------------------------

    def _cluster(self, w: Watched) -> None:
        def insights(name: str) -> Metric:
            return Metric(
                namespace="ContainerInsights",
                name=name,
                dimensions={"ClusterName": w.cluster_name},
                statistic="Maximum",
                period=FIVE_MINUTES,
            )

        def control_plane(name: str, statistic: str) -> Metric:
            return Metric(
                namespace="AWS/EKS",
                name=name,
                dimensions={"ClusterName": w.cluster_name},
                statistic=statistic,
                period=FIVE_MINUTES,
            )

        failed = insights("cluster_failed_node_count")
        not_ready = self._alarm(
            "nodes-not-ready",
            metric=failed,
            threshold=0,
            periods=2,
            description=f"A node of EKS cluster {w.cluster_name} has not been Ready for 10 minutes: its pods are "
            "evicted or cannot start. Look at `kubectl get nodes` and the node's events.",
        )
        nodes = insights("cluster_node_count")
        # The other node alarms treat missing data as fine; this one does not, so a silent agent (add-on
        # failed, permission denied) is noticed instead of leaving them green.
        self._alarm(
            "container-insights-silent",
            metric=nodes,
            threshold=1,
            comparison="LessThanThreshold",
            missing="breaching",
            description=f"Container Insights has reported no node of EKS cluster {w.cluster_name} for 15 minutes: "
            "the CloudWatch agent is not running (see the add-on's status and its pods in amazon-cloudwatch) or "
            "the cluster has no nodes; the node alarms cannot fire meanwhile.",
        )
        pending = control_plane("scheduler_pending_pods_UNSCHEDULABLE", "Maximum")
        if w.karpenter_queue is None:
            at_maximum = self._node_group_full(w, nodes, pending)
        else:
            at_maximum = self._karpenter(w, pending, w.karpenter_queue)
        errors = control_plane("apiserver_request_total_5XX", "Sum")
        api = self._alarm(
            "api-server-errors",
            metric=errors,
            threshold=self.thresholds.api_server_errors_per_5_minutes,
            description=f"The Kubernetes API of {w.cluster_name} answered more than "
            f"{self.thresholds.api_server_errors_per_5_minutes} requests with 5xx in each of 15 minutes: deploys "
            "and controllers fail. Check the AWS Health dashboard and the control-plane logs.",
        )
        self._graph("EKS nodes: total and not Ready", [nodes, failed], not_ready)
        self._graph("EKS: unschedulable pods", [pending], at_maximum)
        self._graph("EKS API: 5xx responses", [errors], api)
        self._graph(
            "EKS nodes: CPU and memory %",
            [insights("node_cpu_utilization"), insights("node_memory_utilization")],
        )

    def _node_group_full(self, w: Watched, nodes: Metric, pending: Metric) -> CfnResource:
        """The cluster autoscaler cannot add nodes: the node group is at its maximum with pods pending."""
        return self._alarm(
            "nodes-at-maximum-with-pods-pending",
            metric=Expression(
                expression=f"IF(nodes >= {w.node_group_max_size} AND pending > 0, 1, 0)",
                using={"nodes": nodes, "pending": pending},
                label="node group full and pods unschedulable",
                period=FIVE_MINUTES,
            ),
            threshold=1,
            comparison="GreaterThanOrEqualToThreshold",
            description=f"EKS cluster {w.cluster_name} is at its node group's maximum ({w.node_group_max_size} "
            "nodes) with pods pending for 15 minutes: the autoscaler cannot add nodes. Raise "
            "eks.node_group.max_size or lower the pods' requests.",
        )

    def _karpenter(self, w: Watched, pending: Metric, queue: str) -> CfnResource:
        """Karpenter cannot launch nodes (pods pending for 15 minutes), or its interruption queue is not read
        (or holds messages it could not handle). Karpenter's own Prometheus metrics are not in Container
        Insights: these watch the control plane's and SQS's metrics."""

        def sqs(name: str, queue_name: str) -> Metric:
            return Metric(
                namespace="AWS/SQS",
                name=name,
                dimensions={"QueueName": queue_name},
                statistic="Maximum",
                period=FIVE_MINUTES,
            )

        stuck = self._alarm(
            "pods-pending-karpenter-cannot-launch",
            metric=pending,
            threshold=0,
            description=f"EKS cluster {w.cluster_name} has had unschedulable pods for 15 minutes: Karpenter "
            "cannot launch a node for them. Its NodePool's limits (eks.karpenter.max_vcpus, max_memory_gib) are "
            "reached, no allowed instance type fits the pods, or EC2 has no capacity of the allowed types: see "
            "`kubectl get nodeclaims`, `kubectl describe nodepool default` and the controller's logs (kube-system, "
            "karpenter).",
        )
        oldest = sqs("ApproximateAgeOfOldestMessage", queue)
        unread = self._alarm(
            "karpenter-interruptions-unread",
            metric=oldest,
            threshold=120,
            description=f"An interruption event has waited over two minutes in {queue}: Karpenter is not reading "
            "its queue, so Spot interruptions and scheduled retirements end nodes without draining them first. "
            "Check the controller's pods (kube-system, karpenter) and its Pod Identity association.",
        )
        dead = sqs("ApproximateNumberOfMessagesVisible", f"{queue}-dead-letters")
        self._alarm(
            "karpenter-interruptions-dead-lettered",
            metric=dead,
            threshold=0,
            periods=1,
            description=f"Karpenter received an interruption event five times without handling it; it is in "
            f"{queue}-dead-letters (kept four days). Read it, and the controller's logs, for why.",
        )
        self._graph("Karpenter: interruption queue, oldest message (s)", [oldest], unread)
        return stuck

    # --- Aurora ----------------------------------------------------------------------------------

    def _database(self, w: Watched) -> None:
        t = self.thresholds
        db = cast(str, w.database_identifier)

        def rds(name: str, statistic: str, extra: dict[str, str] | None = None) -> Metric:
            return _aurora_metric(db, name, statistic, extra)

        cpu = rds("CPUUtilization", "Maximum")
        cpu_alarm = self._alarm(
            "database-cpu",
            metric=cpu,
            threshold=t.database_cpu_percent,
            description=f"Aurora {db} CPU above {t.database_cpu_percent}% for 15 minutes: queries slow down. "
            "Look at Performance Insights' top SQL.",
        )
        memory = rds("FreeableMemory", "Minimum")
        self._alarm(
            "database-memory",
            metric=memory,
            threshold=t.database_freeable_memory_mib * 1024 * 1024,
            comparison="LessThanThreshold",
            description=f"Aurora {db} has less than {t.database_freeable_memory_mib} MiB of freeable memory for 15 "
            "minutes: it may swap or restart. Raise the capacity or find the connection or query that holds it.",
        )
        deadlocks = rds("Deadlocks", "Average")
        self._alarm(
            "database-deadlocks",
            metric=deadlocks,
            threshold=t.database_deadlocks_per_minute / 60,
            description=f"Aurora {db} has more than {t.database_deadlocks_per_minute} deadlocks a minute for 15 "
            "minutes: transactions are being rolled back. The PostgreSQL log names the statements.",
        )
        storage = rds("VolumeBytesUsed", "Maximum")
        self._alarm(
            "database-storage",
            metric=storage,
            threshold=t.database_storage_gib * GIB,
            periods=1,
            description=f"Aurora {db} stores more than {t.database_storage_gib} GiB: storage grows (and is billed) "
            "beyond what was planned. Find the growing tables, or raise observability.alarms.database_storage_gib.",
        )
        if w.database.capacity is None or w.database.capacity.min_acu > 0:
            # A writer that never pauses always reports: no data for 15 minutes is a cluster stopped, deleted
            # or failing, which every alarm above (missing data: not breaching) would leave green. Not where
            # Serverless v2 may pause (a minimum of 0 ACUs): a paused writer reports nothing by design.
            self._alarm(
                "database-silent",
                metric=rds("CPUUtilization", "SampleCount"),
                threshold=1,
                comparison="LessThanThreshold",
                missing="breaching",
                description=f"Aurora {db} has reported no metrics for 15 minutes: the cluster is stopped, deleted, "
                "or its writer is down (see the cluster's events in the RDS console); the database alarms cannot "
                "fire meanwhile.",
            )
        self._database_capacity_and_lag(w, db)
        self._graph("Aurora: CPU %", [cpu], cpu_alarm)
        self._graph("Aurora: freeable memory, storage", [memory, storage, deadlocks])

    def _database_capacity_and_lag(self, w: Watched, db: str) -> None:
        """The alarms and graphs that apply to some clusters only: Serverless v2 capacity, readers' lag,
        a global database member's lag behind the writer's region."""
        t = self.thresholds

        def rds(name: str, statistic: str, extra: dict[str, str] | None = None) -> Metric:
            return _aurora_metric(db, name, statistic, extra)

        if w.database.capacity is not None:
            capacity = rds("ACUUtilization", "Maximum")
            capacity_alarm = self._alarm(
                "database-capacity",
                metric=capacity,
                threshold=t.database_capacity_percent,
                description=f"Aurora {db} uses more than {t.database_capacity_percent}% of its maximum "
                f"{w.database.capacity.max_acu} ACUs for 15 minutes: it cannot scale further. Raise "
                "database.capacity.max_acu.",
            )
            self._graph("Aurora: capacity used % of max ACUs", [capacity], capacity_alarm)
        if w.database.readers:
            lag = rds("AuroraReplicaLag", "Maximum", {"Role": "READER"})
            lag_alarm = self._alarm(
                "database-replica-lag",
                metric=lag,
                threshold=t.database_replica_lag_seconds * 1000,
                description=f"An Aurora {db} reader lags the writer by more than {t.database_replica_lag_seconds} "
                "s for 15 minutes: reads are stale, and a failover to it would wait.",
            )
            self._graph("Aurora: reader lag (ms)", [lag], lag_alarm)
        if w.global_secondary:
            # Published only by the members that are not the writer (Aurora user guide, global database metrics).
            global_lag = rds("AuroraGlobalDBReplicationLag", "Maximum")
            global_lag_alarm = self._alarm(
                "database-global-lag",
                metric=global_lag,
                threshold=t.database_replica_lag_seconds * 1000,
                description=f"Aurora {db} (a global database member that is not the writer) lags the writer's "
                f"region by more than {t.database_replica_lag_seconds} s for 15 minutes: a failover now would "
                "lose that much.",
            )
            self._graph("Aurora: lag behind the writer's region (ms)", [global_lag], global_lag_alarm)

    # --- ElastiCache -----------------------------------------------------------------------------

    def _serverless_cache(self, w: Watched) -> None:
        t, cache = self.thresholds, w.cache
        assert cache.max_data_storage_gb is not None
        assert cache.max_ecpu_per_second is not None

        def metric(name: str, statistic: str, period: int = FIVE_MINUTES) -> Metric:
            return Metric(
                namespace="AWS/ElastiCache",
                name=name,
                dimensions={"clusterId": w.cache_name},
                statistic=statistic,
                period=period,
            )

        throttled = metric("ThrottledCmds", "Sum")
        throttled_alarm = self._alarm(
            "cache-throttling",
            metric=throttled,
            threshold=0,
            periods=2,
            description=f"ElastiCache {w.cache_name} is throttling commands: it is at its ECPU limit. Raise "
            "cache.max_ecpu_per_second.",
        )
        data = metric("BytesUsedForCache", "Maximum")
        self._alarm(
            "cache-data",
            metric=data,
            threshold=cache.max_data_storage_gb * 1e9 * t.cache_usage_percent / 100,
            description=f"ElastiCache {w.cache_name} holds more than {t.cache_usage_percent}% of its "
            f"{cache.max_data_storage_gb} GB limit for 15 minutes: at the limit it evicts keys. Raise "
            "cache.max_data_storage_gb.",
        )
        ecpu = metric("ElastiCacheProcessingUnits", "Sum", 60)
        self._alarm(
            "cache-ecpu",
            metric=ecpu,
            threshold=cache.max_ecpu_per_second * 60 * t.cache_usage_percent / 100,
            periods=15,
            description=f"ElastiCache {w.cache_name} uses more than {t.cache_usage_percent}% of its "
            f"{cache.max_ecpu_per_second:,} ECPU/s limit for 15 minutes: throttling comes next. Raise "
            "cache.max_ecpu_per_second.",
        )
        self._graph("Cache: throttled commands", [throttled], throttled_alarm)
        self._graph("Cache: data (bytes), ECPU per minute", [data, ecpu])

    def _cache_nodes(self, w: Watched) -> None:
        t, cache = self.thresholds, w.cache
        assert w.replication_group_id is not None
        members = member_clusters(w.replication_group_id, cache)

        def across(name: str, statistic: str, reduce: str) -> list[Expression]:
            """One expression per group of 10 nodes: their maximum (or sum)."""
            expressions = []
            for start in range(0, len(members), METRICS_PER_ALARM):
                group = members[start : start + METRICS_PER_ALARM]
                using = {
                    f"n{start + i}": Metric(
                        namespace="AWS/ElastiCache",
                        name=name,
                        dimensions={"CacheClusterId": member, "CacheNodeId": "0001"},
                        statistic=statistic,
                        period=FIVE_MINUTES,
                    )
                    for i, member in enumerate(group)
                }
                expressions.append(
                    Expression(
                        expression=f"{reduce}([{','.join(using)}])",
                        using=using,
                        label=f"{name} {reduce.lower()} of {group[0]}..{group[-1]}",
                        period=FIVE_MINUTES,
                    )
                )
            return expressions

        checks = [
            (
                "cache-cpu",
                across("EngineCPUUtilization", "Maximum", "MAX"),
                t.cache_cpu_percent,
                f"A node of ElastiCache {w.replication_group_id} runs its engine thread above {t.cache_cpu_percent}% "
                "for 15 minutes: commands queue. Use a larger node type or more shards.",
            ),
            (
                "cache-memory",
                across("DatabaseMemoryUsagePercentage", "Maximum", "MAX"),
                t.cache_usage_percent,
                f"A node of ElastiCache {w.replication_group_id} uses more than {t.cache_usage_percent}% of its "
                "memory for 15 minutes: it will evict keys. Use a larger node type or more shards.",
            ),
            (
                "cache-evictions",
                across("Evictions", "Sum", "SUM"),
                t.cache_evictions_per_5_minutes,
                f"ElastiCache {w.replication_group_id} evicts more than {t.cache_evictions_per_5_minutes} keys in "
                "each of 15 minutes: it is full and services lose cached data.",
            ),
        ]
        if cache.replicas_per_shard:
            checks.append(
                (
                    "cache-replication-lag",
                    across("ReplicationLag", "Maximum", "MAX"),
                    t.cache_replication_lag_seconds,
                    f"A replica of ElastiCache {w.replication_group_id} lags its primary by more than "
                    f"{t.cache_replication_lag_seconds} s for 15 minutes: reads from it are stale, and a failover "
                    "would lose the difference.",
                )
            )
        for name, expressions, threshold, description in checks:
            alarms = [
                self._alarm(
                    name if len(expressions) == 1 else f"{name}-{i + 1}",
                    metric=expression,
                    threshold=threshold,
                    description=description,
                )
                for i, expression in enumerate(expressions)
            ]
            self._graph(f"Cache: {name.removeprefix('cache-')}", expressions, alarms[0])

    # --- NAT and load balancers ------------------------------------------------------------------

    def _nat(self, w: Watched) -> None:
        t = self.thresholds
        dropped_metrics: list[Signal] = []
        for index, gateway in enumerate(w.nat_gateway_ids):

            def nat(name: str, gateway: str = gateway) -> Metric:
                return Metric(
                    namespace="AWS/NATGateway",
                    name=name,
                    dimensions={"NatGatewayId": gateway},
                    statistic="Sum",
                    period=FIVE_MINUTES,
                )

            self._alarm(
                f"nat-{index + 1}-port-allocation",
                metric=nat("ErrorPortAllocation"),
                threshold=0,
                periods=1,
                description=f"NAT gateway {index + 1} ran out of source ports: new outbound connections from the "
                "private subnets fail. Spread traffic over more NAT gateways or destinations.",
            )
            dropped = nat("PacketsDropCount")
            self._alarm(
                f"nat-{index + 1}-dropped-packets",
                metric=dropped,
                threshold=t.nat_dropped_packets_per_5_minutes,
                description=f"NAT gateway {index + 1} drops more than {t.nat_dropped_packets_per_5_minutes} packets "
                "in each of 15 minutes: outbound traffic from the private subnets is being lost.",
            )
            dropped_metrics.append(dropped)
        self._graph("NAT gateways: dropped packets", dropped_metrics)

    def _load_balancers(self, watched: Watched) -> None:
        t = self.thresholds
        # Only the load balancers this environment's controller created: it tags each with the cluster's
        # name (EksStack, LOAD_BALANCER_TAG), and the EKS stack turns on resource tags for telemetry.
        mine = f"WHERE tag.{LOAD_BALANCER_TAG} = '{watched.cluster_name}'"

        def query(select: str, label: str) -> Expression:
            return Expression(expression=f"{select} {mine}", label=label)

        elb_5xx = query(
            'SELECT SUM(HTTPCode_ELB_5XX_Count) FROM SCHEMA("AWS/ApplicationELB", LoadBalancer)',
            "load balancer 5xx",
        )
        target_5xx = query(
            'SELECT SUM(HTTPCode_Target_5XX_Count) FROM SCHEMA("AWS/ApplicationELB", LoadBalancer)',
            "service 5xx",
        )
        unhealthy = query(
            'SELECT MAX(UnHealthyHostCount) FROM SCHEMA("AWS/ApplicationELB", LoadBalancer, TargetGroup)',
            "unhealthy targets",
        )
        where = f"the load balancers of cluster {watched.cluster_name} (the load balancer controller creates them)"
        first = self._alarm(
            "load-balancer-5xx",
            metric=elb_5xx,
            threshold=t.load_balancer_5xx_per_5_minutes,
            description=f"The load balancers of cluster {watched.cluster_name} answered more than "
            f"{t.load_balancer_5xx_per_5_minutes} requests with their own 5xx in each of 15 minutes: no healthy "
            "target, or targets refusing connections.",
        )
        self._alarm(
            "service-5xx",
            metric=target_5xx,
            threshold=t.load_balancer_5xx_per_5_minutes,
            description=f"Services behind {where} returned more than {t.load_balancer_5xx_per_5_minutes} 5xx "
            "responses in each of 15 minutes. The service's logs are in Container Insights' application group.",
        )
        self._alarm(
            "unhealthy-targets",
            metric=unhealthy,
            threshold=0,
            description=f"A target of {where} has failed its health checks for 15 minutes: a service's pods are "
            "not answering their readiness path.",
        )
        self._graph("Load balancers: 5xx, unhealthy targets", [elb_5xx, target_5xx, unhealthy], first)


def _aurora_metric(db: str, name: str, statistic: str, extra: dict[str, str] | None = None) -> Metric:
    """A metric of the Aurora cluster ``db`` (dimensions ``extra`` besides its identifier), over five minutes."""
    return Metric(
        namespace="AWS/RDS",
        name=name,
        dimensions={"DBClusterIdentifier": db, **(extra or {})},
        statistic=statistic,
        period=FIVE_MINUTES,
    )


def member_clusters(replication_group_id: str, cache: CacheSettings) -> list[str]:
    """The node (cache cluster) ids ElastiCache gives a replication group's members."""
    nodes = 1 + cache.replicas_per_shard
    if cache.cluster_mode:
        return [
            f"{replication_group_id}-{s:04d}-{n:03d}" for s in range(1, cache.shards + 1) for n in range(1, nodes + 1)
        ]
    return [f"{replication_group_id}-{n:03d}" for n in range(1, nodes + 1)]


def nat_gateway_ids(vpc: ec2.Vpc) -> list[str]:
    """The NAT gateways of the network stack's VPC (one per public subnet that has one)."""
    ids = []
    for subnet in vpc.public_subnets:
        gateway = subnet.node.try_find_child("NATGateway")
        if isinstance(gateway, ec2.CfnNatGateway):
            ids.append(gateway.attr_nat_gateway_id)
    return ids
