"""Monthly cost estimate of one environment, read from its synthesized templates.

Two columns: **idle** (minimum capacity: node groups at their desired size, Aurora at its minimum
ACUs, the cache at its minimum billed storage, little traffic) and **busy** (maximum capacity: node
groups at their maximum, Aurora at its maximum ACUs on every instance, the cache at its usage
limits). Prices come from ``prices.yaml`` (dated, with sources); volumes the templates cannot know
(GB through NAT, log GB, database storage) are the explicit assumptions in the same file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infra.assembly import Resource, Template, resources_of
from infra.config.settings import EKS_STANDARD_SUPPORT, parse_yaml

PRICES_FILE = Path(__file__).resolve().parent / "prices.yaml"


def load_prices(path: Path = PRICES_FILE) -> dict[str, Any]:
    return dict(parse_yaml(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Line:
    item: str
    idle: float
    busy: float
    basis: str


@dataclass(frozen=True)
class Assumption:
    """One volume the templates cannot know (``assumptions`` in prices.yaml), as the report states it."""

    name: str  # its key in prices.yaml
    description: str
    value: Any  # as in prices.yaml: a number, or {idle, busy} ("max": the limit the template sets)
    unit: str
    note: str


# What each assumption of prices.yaml means, for the report: description, unit, and where the figure
# comes from or what it feeds. A "fraction" is shown as a percentage.
ASSUMPTION_NOTES: dict[str, tuple[str, str, str]] = {
    "nat_gb_per_month": (
        "Data processed by each NAT gateway",
        "GB a month",
        "Assumed: traffic from the private subnets to the internet.",
    ),
    "endpoint_gb_per_month": (
        "Data processed by each interface endpoint",
        "GB a month",
        "Assumed: traffic to AWS services through the VPC's interface endpoints.",
    ),
    "log_gb_per_group_month": (
        "Logs ingested into each log group",
        "GB a month",
        "Assumed; grows with traffic and log level. Storage is priced on the same volume.",
    ),
    "aurora_storage_gb": ("Database size (Aurora)", "GB", "Assumed; Aurora bills the storage used."),
    "aurora_io_millions_per_month": (
        "Database I/O requests (Aurora)",
        "million a month",
        "Assumed: the writer's I/Os; with a global database, also its replicated writes in each other region.",
    ),
    "aurora_daily_change_fraction": (
        "Share of the database that changes each day",
        "fraction",
        "Assumed; backup storage = database size x daily change x retention days.",
    ),
    "cache_data_gb": ("Data held in the cache", "GB", "Assumed; busy: the usage limit the template sets."),
    "cache_ecpu_per_second": (
        "Cache compute, sustained",
        "ECPU per second",
        "Assumed; busy: the usage limit the template sets, all month.",
    ),
    "image_gb": ("Size of one container image", "GB", "Assumed; for ECR storage and cross-region replication."),
    "images_per_repository": (
        "Images kept in each image repository",
        "",
        "Assumed; busy: every tagged image the repository's lifecycle rules keep.",
    ),
    "image_pushes_per_month": (
        "Image pushes replicated to each other region",
        "pushes a month",
        "Assumed; environments in several regions only.",
    ),
    "aurora_global_transfer_gb_per_month": (
        "Database changes replicated to each other region (global database)",
        "GB a month",
        "Assumed; environments in several regions only, beyond the replicated write I/Os.",
    ),
    "spot_price_fraction": (
        "Spot price, as a share of the on-demand price",
        "fraction",
        "Assumed (Spot nodes only); Spot prices move with supply. The EC2 Spot Instance Advisor "
        "(https://aws.amazon.com/ec2/spot/instance-advisor/) shows the current savings per type and region.",
    ),
}


def assumptions_of(prices: Mapping[str, Any]) -> list[Assumption]:
    """The assumptions of ``prices``, in their order there, each with what it means."""
    out = []
    for name, value in prices["assumptions"].items():
        description, unit, note = ASSUMPTION_NOTES.get(name, (name, "", ""))
        out.append(Assumption(name, description, value, unit, note))
    return out


@dataclass
class CostEstimate:
    environment: str
    region: str
    prices_date: str
    lines: list[Line] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    assumptions: list[Assumption] = field(default_factory=list)
    not_included: list[str] = field(default_factory=list)

    @property
    def idle(self) -> float:
        return round(sum(line.idle for line in self.lines), 2)

    @property
    def busy(self) -> float:
        return round(sum(line.busy for line in self.lines), 2)


class _Prices:
    def __init__(self, prices: Mapping[str, Any], region: str) -> None:
        self.region = prices["regions"][region]
        self.hours = float(prices["hours_per_month"])
        self.assume = prices["assumptions"]

    def __getitem__(self, key: str) -> Any:
        return self.region[key]


NOT_INCLUDED = [
    "Application Load Balancers: created at run time by the AWS Load Balancer Controller for each ingress "
    "group (about $16-18 a month each plus LCUs), not in the templates.",
    "Data transfer out to the internet and between zones.",
    "The RDS-managed master secret in Secrets Manager ($0.40 a month) and AWS Backup snapshot storage.",
    "Lambda invocations of the kubectl and custom-resource providers (deploy time only).",
    "Container Insights metrics: standard mode bills the cluster, node and namespace metrics as custom "
    "metrics, enhanced mode bills per observation; both grow with nodes, pods and containers, which the "
    "templates cannot know (CloudWatch pricing page, Container Insights example). The container log groups "
    "are in the CloudWatch Logs line.",
    "Metrics Insights alarms (the load balancer alarms) beyond the alarm itself, and SNS email and HTTPS "
    "deliveries (the first 1,000 emails a month are free).",
]


def estimate(
    templates: Mapping[str, Template], *, environment: str, region: str, prices: Mapping[str, Any]
) -> CostEstimate:
    result = CostEstimate(environment, region, str(prices["date"]), assumptions=assumptions_of(prices))
    result.not_included = list(NOT_INCLUDED)
    if region not in prices["regions"]:
        known = ", ".join(sorted(prices["regions"]))
        result.unknown.append(
            f"No prices for region {region} in {PRICES_FILE.name} (known: {known}); add them from the source "
            "pages listed there. Nothing is estimated rather than guessed."
        )
        return result
    p = _Prices(prices, region)
    for add in (_eks, _nat, _endpoints, _nodes, _karpenter_nodes, _aurora, _cache, _kms, _logs, _ecr, _alarms):
        add(templates, p, result)
    return result


def _month(p: _Prices, hourly: float) -> float:
    return round(hourly * p.hours, 2)


def _eks(templates: Mapping[str, Template], p: _Prices, out: CostEstimate) -> None:
    for cluster in resources_of(templates, "AWS::EKS::Cluster"):
        version = str(cluster.props.get("Version"))
        support = "standard" if version in EKS_STANDARD_SUPPORT else "extended"
        rates = p["eks_cluster_hour"]
        cost = _month(p, rates[support])
        out.lines.append(
            Line(
                f"EKS control plane ({version}, {support} support)",
                cost,
                cost,
                f"${rates[support]}/h; extended support would be ${_month(p, rates['extended'])}/month",
            )
        )


def _nat(templates: Mapping[str, Template], p: _Prices, out: CostEstimate) -> None:
    count = sum(1 for _ in resources_of(templates, "AWS::EC2::NatGateway"))
    if not count:
        return
    gb = p.assume["nat_gb_per_month"]
    hourly = p["nat_gateway_hour"] + p["public_ipv4_hour"]  # each NAT gateway holds an Elastic IP
    fixed = count * _month(p, hourly)
    out.lines.append(
        Line(
            f"NAT gateways x{count}",
            round(fixed + count * gb["idle"] * p["nat_gateway_gb"], 2),
            round(fixed + count * gb["busy"] * p["nat_gateway_gb"], 2),
            f"${p['nat_gateway_hour']}/h + public IPv4 ${p['public_ipv4_hour']}/h each, "
            f"${p['nat_gateway_gb']}/GB at {gb['idle']} / {gb['busy']} GB each (assumed)",
        )
    )


def _endpoints(templates: Mapping[str, Template], p: _Prices, out: CostEstimate) -> None:
    endpoints = [
        e for e in resources_of(templates, "AWS::EC2::VPCEndpoint") if e.props.get("VpcEndpointType") == "Interface"
    ]
    if not endpoints:
        return
    zones = sum(len(e.props.get("SubnetIds", [])) for e in endpoints)
    gb = p.assume["endpoint_gb_per_month"]
    fixed = _month(p, p["interface_endpoint_az_hour"] * zones)
    out.lines.append(
        Line(
            f"Interface endpoints x{len(endpoints)} ({zones} endpoint-zones)",
            round(fixed + len(endpoints) * gb["idle"] * p["interface_endpoint_gb"], 2),
            round(fixed + len(endpoints) * gb["busy"] * p["interface_endpoint_gb"], 2),
            f"${p['interface_endpoint_az_hour']}/h per zone, ${p['interface_endpoint_gb']}/GB at "
            f"{gb['idle']} / {gb['busy']} GB each (assumed)",
        )
    )


def _nodes(templates: Mapping[str, Template], p: _Prices, out: CostEstimate) -> None:
    for group in resources_of(templates, "AWS::EKS::Nodegroup"):
        scaling = group.props.get("ScalingConfig", {})
        instance = (group.props.get("InstanceTypes") or ["?"])[0]
        price = p["ec2_hour"].get(instance)
        if price is None:
            out.unknown.append(f"No EC2 price for {instance} in prices.yaml: node group {group.logical_id}")
            continue
        disk = _root_volume_gb(group)
        spot = group.props.get("CapacityType") == "SPOT"
        hourly = price * float(p.assume["spot_price_fraction"]) if spot else price
        per_node = _month(p, hourly) + disk * p["ebs_gp3_gb_month"]
        desired, maximum = int(scaling.get("DesiredSize", 0)), int(scaling.get("MaxSize", 0))
        capacity = (
            f"Spot, assumed at {p.assume['spot_price_fraction']:.0%} of the ${price}/h on-demand price"
            if spot
            else f"on-demand ${price}/h"
        )
        out.lines.append(
            Line(
                f"EKS nodes {instance} ({'Spot' if spot else 'on-demand'}, {desired} desired, {maximum} max) "
                f"+ {disk} GB gp3 each",
                round(desired * per_node, 2),
                round(maximum * per_node, 2),
                f"{capacity} + ${p['ebs_gp3_gb_month']}/GB-month; idle at the desired size, busy at the maximum; "
                "priced at the first instance type listed",
            )
        )


def _karpenter_nodes(templates: Mapping[str, Template], p: _Prices, out: CostEstimate) -> None:
    """Karpenter's nodes (eks.autoscaling karpenter): none while idle (consolidation leaves the pods on the
    managed node group), the NodePool's vCPU limit when busy, at the cheapest allowed type's price per vCPU."""
    for pool in _node_pools(templates):
        spec = pool["spec"]
        requirements = {r["key"]: r["values"] for r in spec["template"]["spec"]["requirements"]}
        families = requirements.get("karpenter.k8s.aws/instance-family", [])
        sizes = requirements.get("karpenter.k8s.aws/instance-size", [])
        capacity = requirements.get("karpenter.sh/capacity-type", ["on-demand"])
        limit = int(spec["limits"]["cpu"])
        priced = sorted(
            (p["ec2_hour"][f"{family}.{size}"] / vcpus, f"{family}.{size}", vcpus)
            for family in families
            for size in sizes
            if f"{family}.{size}" in p["ec2_hour"] and (vcpus := vcpus_of(size))
        )
        what = (
            f"Karpenter nodes ({'/'.join(families)} x {'/'.join(sizes)}, {' and '.join(capacity)}, up to {limit} vCPUs)"
        )
        if not priced:
            out.unknown.append(f"No EC2 price in {PRICES_FILE.name} for any type Karpenter may launch: {what}")
            continue
        per_vcpu, instance, vcpus = priced[0]
        # With Spot allowed, Karpenter launches Spot first; on-demand when no Spot capacity fits.
        spot = "spot" in capacity
        hourly = per_vcpu * (float(p.assume["spot_price_fraction"]) if spot else 1)
        nodes = -(-limit // vcpus)
        disk = _node_class_volume_gb(templates)
        busy = _month(p, hourly * limit) + nodes * disk * p["ebs_gp3_gb_month"]
        basis = (
            f"Spot, assumed at {p.assume['spot_price_fraction']:.0%} of on-demand" if spot else "on-demand"
        ) + f", at {instance}'s ${p['ec2_hour'][instance]}/h ({vcpus} vCPUs), the cheapest allowed type priced"
        out.lines.append(
            Line(
                what,
                0.0,
                round(busy, 2),
                f"{basis}; idle: no Karpenter node (consolidation leaves the pods on the managed node group); busy: "
                f"the NodePool's limit, {nodes} such nodes with {disk} GB gp3 each",
            )
        )


def vcpus_of(size: str) -> int | None:
    """vCPUs of an instance size of the general-purpose, compute and memory families (large: 2, xlarge: 4,
    Nxlarge: 4N); None where the size alone does not say (metal, and the smaller burstable sizes)."""
    if size == "large":
        return 2
    if size.endswith("xlarge"):
        return 4 * int(size.removesuffix("xlarge") or 1)
    return None


def _node_pools(templates: Mapping[str, Template]) -> list[dict[str, Any]]:
    return node_pools_in(
        m.props.get("Manifest") for m in resources_of(templates, "Custom::AWSCDK-EKS-KubernetesResource")
    )


def manifest_documents(manifest: object) -> list[dict[str, Any]]:
    """The documents of a KubernetesManifest's manifest: JSON text, or its ``Fn::Join`` of text and
    deploy-time values (each read as the string "<deploy-time>")."""
    if isinstance(manifest, dict) and "Fn::Join" in manifest:
        text = "".join(p if isinstance(p, str) else "<deploy-time>" for p in manifest["Fn::Join"][1])
    elif isinstance(manifest, str):
        text = manifest
    else:
        return []
    return [d for d in json.loads(text) if isinstance(d, dict)]


def node_pools_in(manifests: Iterable[object]) -> list[dict[str, Any]]:
    """The NodePools among KubernetesManifests' manifests."""
    return [d for manifest in manifests for d in manifest_documents(manifest) if d.get("kind") == "NodePool"]


def _node_class_volume_gb(templates: Mapping[str, Template]) -> int:
    """The volumes of a Karpenter node (its EC2NodeClass's block devices), in GB."""
    for manifest in resources_of(templates, "Custom::AWSCDK-EKS-KubernetesResource"):
        for document in manifest_documents(manifest.props.get("Manifest")):
            if document.get("kind") == "EC2NodeClass":
                volumes = document["spec"].get("blockDeviceMappings", [])
                return sum(int(str(v["ebs"]["volumeSize"]).removesuffix("Gi")) for v in volumes) or 20
    return 20


def _root_volume_gb(group: Resource) -> int:
    template = group.target(group.props.get("LaunchTemplate", {}).get("Id"))
    if template is None:
        return 20  # EKS's default root volume
    mappings = template.props.get("LaunchTemplateData", {}).get("BlockDeviceMappings", [])
    return sum(int(m.get("Ebs", {}).get("VolumeSize", 0)) for m in mappings) or 20


def _aurora(templates: Mapping[str, Template], p: _Prices, out: CostEstimate) -> None:
    for cluster in resources_of(templates, "AWS::RDS::DBCluster"):
        instances = [
            i
            for i in resources_of(templates, "AWS::RDS::DBInstance")
            if i.props.get("DBClusterIdentifier") == {"Ref": cluster.logical_id} and i.stack == cluster.stack
        ]
        scaling = cluster.props.get("ServerlessV2ScalingConfiguration", {})
        serverless = [i for i in instances if i.props.get("DBInstanceClass") == "db.serverless"]
        if serverless:
            low, high = float(scaling.get("MinCapacity", 0.5)), float(scaling.get("MaxCapacity", 1))
            n = len(serverless)
            acu = p["aurora_acu_hour"]
            paused = (
                " (min 0 ACU: the writer pauses when no client holds a connection, compute $0; a service "
                "that keeps one open, as the reference services do, keeps it at 0.5 ACU or more)"
                if low == 0
                else ""
            )
            out.lines.append(
                Line(
                    f"Aurora Serverless v2 x{n} instances ({low}-{high} ACU){paused}",
                    round(n * low * _month(p, acu), 2),
                    round(n * high * _month(p, acu), 2),
                    f"${acu}/ACU-hour; idle at the minimum ACUs, busy at the maximum on every instance",
                )
            )
        for instance in instances:
            if instance in serverless:
                continue
            klass = str(instance.props.get("DBInstanceClass"))
            price = p["aurora_instance_hour"].get(klass)
            if price is None:
                out.unknown.append(f"No Aurora price for {klass} in prices.yaml: instance {instance.logical_id}")
                continue
            out.lines.append(Line(f"Aurora instance {klass}", _month(p, price), _month(p, price), f"${price}/h"))
        retention = int(cluster.props.get("BackupRetentionPeriod", 1))
        storage, io = p.assume["aurora_storage_gb"], p.assume["aurora_io_millions_per_month"]
        change = float(p.assume["aurora_daily_change_fraction"])
        out.lines.append(
            Line(
                f"Aurora storage, I/O and backups ({retention}-day retention)",
                round(_aurora_data(p, "idle", retention), 2),
                round(_aurora_data(p, "busy", retention), 2),
                f"{storage['idle']} / {storage['busy']} GB and {io['idle']} / {io['busy']} million I/Os (assumed); "
                f"backup beyond the free amount (the cluster's size) at {change:.0%} daily change",
            )
        )


def _aurora_data(p: _Prices, level: str, retention: int) -> float:
    gb = float(p.assume["aurora_storage_gb"][level])
    change = float(p.assume["aurora_daily_change_fraction"])
    backup_beyond_free = max(0.0, gb * change * retention - gb)  # backup up to the cluster's size is free
    return float(
        gb * p["aurora_storage_gb_month"]
        + float(p.assume["aurora_io_millions_per_month"][level]) * p["aurora_io_million"]
        + backup_beyond_free * p["aurora_backup_gb_month"]
    )


def _cache(templates: Mapping[str, Template], p: _Prices, out: CostEstimate) -> None:
    for cache in resources_of(templates, "AWS::ElastiCache::ServerlessCache"):
        limits = cache.props.get("CacheUsageLimits", {})
        max_gb = float(limits.get("DataStorage", {}).get("Maximum", 0))
        max_ecpu = float(limits.get("ECPUPerSecond", {}).get("Maximum", 0))
        minimum = float(p["valkey_serverless_minimum_gb"])
        idle_gb = max(minimum, float(p.assume["cache_data_gb"]["idle"]))
        idle_ecpu = float(p.assume["cache_ecpu_per_second"]["idle"])
        ecpu = p["valkey_serverless_million_ecpu"]
        out.lines.append(
            Line(
                f"ElastiCache Serverless (Valkey), limits {max_gb:g} GB, {max_ecpu:,.0f} ECPU/s",
                round(_cache_month(p, idle_gb, idle_ecpu), 2),
                round(_cache_month(p, max_gb, max_ecpu), 2),
                f"${p['valkey_serverless_gb_hour']}/GB-hour (minimum {minimum} GB), ${ecpu}/million ECPU; "
                "busy: both usage limits used all month",
            )
        )

    for group in resources_of(templates, "AWS::ElastiCache::ReplicationGroup"):
        node_type = str(group.props.get("CacheNodeType"))
        nodes = cache_nodes(group.props)
        price = p.region.get("valkey_node_hour", {}).get(node_type)
        if price is None:
            out.unknown.append(
                f"No Valkey node price for {node_type} in prices.yaml: replication group {group.logical_id} "
                f"({nodes} nodes)"
            )
            continue
        cost = round(nodes * _month(p, price), 2)
        retention = int(group.props.get("SnapshotRetentionLimit", 0))
        out.lines.append(
            Line(
                f"ElastiCache Valkey replication group {nodes} x {node_type}",
                cost,
                cost,
                f"on-demand ${price}/node-hour, every node all month; snapshot storage free up to one copy of the "
                f"data, beyond it per GB-month ({retention}-day retention, not included)",
            )
        )


def cache_nodes(props: Mapping[str, Any]) -> int:
    """Nodes of a replication group: shards x (primary + replicas), or its cache clusters."""
    if props.get("ClusterMode") == "enabled":
        return int(props.get("NumNodeGroups", 1)) * (1 + int(props.get("ReplicasPerNodeGroup", 0)))
    return int(props.get("NumCacheClusters", 1))


def _cache_month(p: _Prices, gb: float, ecpu_per_second: float) -> float:
    seconds = p.hours * 3600
    return float(
        gb * _month(p, p["valkey_serverless_gb_hour"])
        + ecpu_per_second * seconds / 1e6 * p["valkey_serverless_million_ecpu"]
    )


def _kms(templates: Mapping[str, Template], p: _Prices, out: CostEstimate) -> None:
    count = sum(1 for _ in resources_of(templates, "AWS::KMS::Key"))
    cost = round(count * p["kms_key_month"], 2)
    out.lines.append(Line(f"KMS keys x{count}", cost, cost, f"${p['kms_key_month']}/key-month (requests not included)"))


def _logs(templates: Mapping[str, Template], p: _Prices, out: CostEstimate) -> None:
    # Log groups of the stacks, and those a custom resource creates for a service (EKS, RDS).
    created_by_api = sum(
        1 for r in resources_of(templates, "Custom::AWS") if "createLogGroup" in json.dumps(r.props.get("Create"))
    )
    count = sum(1 for _ in resources_of(templates, "AWS::Logs::LogGroup")) + created_by_api
    gb = p.assume["log_gb_per_group_month"]
    per_gb = p["logs_ingest_gb"] + p["logs_store_gb_month"]
    out.lines.append(
        Line(
            f"CloudWatch Logs, {count} log groups",
            round(count * gb["idle"] * per_gb, 2),
            round(count * gb["busy"] * per_gb, 2),
            f"${p['logs_ingest_gb']}/GB ingested + ${p['logs_store_gb_month']}/GB-month at {gb['idle']} / "
            f"{gb['busy']} GB per group (assumed)",
        )
    )


def _alarms(templates: Mapping[str, Template], p: _Prices, out: CostEstimate) -> None:
    alarms = list(resources_of(templates, "AWS::CloudWatch::Alarm"))
    dashboards = sum(1 for _ in resources_of(templates, "AWS::CloudWatch::Dashboard"))
    if not alarms and not dashboards:
        return
    # An alarm is billed per metric it evaluates: a metric-math alarm for each metric in it.
    metrics = sum(
        max(1, sum(1 for q in a.props.get("Metrics", []) if "MetricStat" in q or "Expression" not in q)) for a in alarms
    )
    cost = round(metrics * p["cloudwatch_alarm_metric_month"] + dashboards * p["cloudwatch_dashboard_month"], 2)
    out.lines.append(
        Line(
            f"CloudWatch alarms x{len(alarms)} ({metrics} alarm metrics), dashboards x{dashboards}",
            cost,
            cost,
            f"${p['cloudwatch_alarm_metric_month']}/alarm metric-month (standard resolution), "
            f"${p['cloudwatch_dashboard_month']}/dashboard-month; free tier not deducted",
        )
    )


def _ecr(
    templates: Mapping[str, Template], p: _Prices, out: CostEstimate, item: str = "ECR storage, {n} repositories"
) -> None:
    """``item``: the line's name ({n}: the repository count); the replicas of these repositories in
    another region are priced alike."""
    repositories = list(resources_of(templates, "AWS::ECR::Repository"))
    if not repositories:
        return
    image_gb = float(p.assume["image_gb"])
    kept = [_tagged_images_kept(r) for r in repositories]
    idle = len(repositories) * image_gb * p["ecr_gb_month"]
    busy = sum(kept) * image_gb * p["ecr_gb_month"]
    out.lines.append(
        Line(
            item.format(n=len(repositories)),
            round(idle, 2),
            round(busy, 2),
            f"${p['ecr_gb_month']}/GB-month, {image_gb} GB per image (assumed); idle one image each, busy every "
            "tagged image the lifecycle rules keep (deployed and never-deployed counted apart)",
        )
    )


def estimate_regions(
    templates: Mapping[str, Mapping[str, Template]],
    *,
    environment: str,
    prices: Mapping[str, Any],
    global_database: bool,
) -> list[CostEstimate]:
    """One estimate per region (``templates``: region -> its stacks' templates, the primary first), and
    for several regions a last one, ``cross-region``: the replicas' storage and what crossing regions
    costs (image replication, the global database's replicated writes), from the assumptions."""
    regions = list(templates)
    out = [estimate(templates[r], environment=environment, region=r, prices=prices) for r in regions]
    if len(regions) < 2:
        return out
    primary = regions[0]
    cross = CostEstimate(environment, "cross-region", str(prices["date"]), assumptions=assumptions_of(prices))
    if primary not in prices["regions"]:
        cross.unknown.append(f"No prices for the primary region {primary}: nothing crossing regions is estimated.")
        return [*out, cross]
    source = _Prices(prices, primary)
    transfer = float(source["cross_region_transfer_gb"])
    pushes = source.assume["image_pushes_per_month"]
    image_gb = float(source.assume["image_gb"])
    for region in regions[1:]:
        if region not in prices["regions"]:
            cross.unknown.append(f"No prices for {region}: its replicas' storage is not estimated.")
        else:
            _ecr(templates[primary], _Prices(prices, region), cross, f"ECR replicas, {{n}} repositories in {region}")
        cross.lines.append(
            Line(
                f"ECR replication {primary} -> {region}",
                round(float(pushes["idle"]) * image_gb * transfer, 2),
                round(float(pushes["busy"]) * image_gb * transfer, 2),
                f"${transfer}/GB between regions; {pushes['idle']} / {pushes['busy']} image pushes a month of "
                f"{image_gb} GB each (assumed; layers already there are not sent again, so this is an upper bound)",
            )
        )
        if global_database and "aurora_replicated_write_io_million" not in source.region:
            cross.unknown.append(f"No replicated write I/O price for {primary}: the global database is not estimated.")
        elif global_database:
            io = source.assume["aurora_io_millions_per_month"]
            gb = source.assume["aurora_global_transfer_gb_per_month"]
            rate = float(source["aurora_replicated_write_io_million"])
            cross.lines.append(
                Line(
                    f"Aurora global database {primary} -> {region}",
                    round(float(io["idle"]) * rate + float(gb["idle"]) * transfer, 2),
                    round(float(io["busy"]) * rate + float(gb["busy"]) * transfer, 2),
                    f"${rate} per million replicated write I/Os (the writer's I/Os, assumed as above) plus "
                    f"${transfer}/GB for {gb['idle']} / {gb['busy']} GB of replicated changes a month (assumed)",
                )
            )
    return [*out, cross]


def _tagged_images_kept(repository: Resource) -> int:
    """The most tagged images the lifecycle keeps: each count rule keeps its own images apart."""
    text = repository.props.get("LifecyclePolicy", {}).get("LifecyclePolicyText", '{"rules": []}')
    counts = [
        int(rule["selection"]["countNumber"])
        for rule in json.loads(text)["rules"]
        if rule["selection"].get("tagStatus") == "tagged" and rule["selection"].get("countType") == "imageCountMoreThan"
    ]
    return sum(counts) or 1


IDLE_AND_BUSY = (
    "Idle: minimum capacity (node groups at their desired size, Aurora at its minimum ACUs, the cache at its "
    "minimum billed storage, little traffic). Busy: maximum capacity (node groups at their maximum, Aurora at its "
    "maximum ACUs on every instance, the cache at its usage limits)."
)


def write_cost_report(estimates: list[CostEstimate], directory: Path) -> None:
    """One region: the estimate as it is. Several: each region's, the cross-region one, and the total."""
    directory.mkdir(parents=True, exist_ok=True)
    if len(estimates) == 1:
        (e,) = estimates
        data: dict[str, Any] = {**asdict(e), "total": {"idle": e.idle, "busy": e.busy}}
        text = render_markdown(e)
    else:
        idle, busy = round(sum(e.idle for e in estimates), 2), round(sum(e.busy for e in estimates), 2)
        data = {
            "environment": estimates[0].environment,
            "regions": [{**asdict(e), "total": {"idle": e.idle, "busy": e.busy}} for e in estimates],
            "total": {"idle": idle, "busy": busy},
        }
        text = render_regions(estimates, idle, busy)
    (directory / "cost.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    (directory / "cost.md").write_text(text, encoding="utf-8")


def render_regions(estimates: list[CostEstimate], idle: float, busy: float) -> str:
    first = estimates[0]
    regions = [e.region for e in estimates if e.region != "cross-region"]
    missing = [e.region for e in estimates if e.unknown and not e.lines]
    lines = [
        f"# Monthly cost estimate: {first.environment} ({', '.join(regions)})",
        "",
        f"Read from the synthesized templates by `make synth`; on-demand list prices of {first.prices_date} "
        "from [infra/reports/prices.yaml](../../infra/reports/prices.yaml), which names its sources. An estimate, "
        "not a quote.",
        "",
        f"**Total: {idle:,.2f} idle, {busy:,.2f} busy (USD/month)**: each region's stacks, then what crossing "
        "regions costs" + (f"; not included: {', '.join(missing)} (no prices, see below)." if missing else "."),
        "",
    ]
    for e in estimates:
        section = render_markdown(e).split("\n## Assumptions")[0].splitlines()
        # The section without the title, the sources paragraph and the idle/busy note (given once).
        body = [line for line in section[1:] if not line.startswith(("Read from the synthesized", "Idle: minimum"))]
        while body and not body[0]:
            body.pop(0)
        while body and not body[-1]:
            body.pop()
        lines += [f"## {'Across regions' if e.region == 'cross-region' else e.region}", "", *body, ""]
    lines += [
        IDLE_AND_BUSY,
        "",
    ]
    lines += _assumptions_table(first.assumptions)
    lines += ["", "## Not included", ""] + [f"- {n}" for n in first.not_included]
    return "\n".join(lines) + "\n"


def render_markdown(e: CostEstimate) -> str:
    lines = [
        f"# Monthly cost estimate: {e.environment} ({e.region})",
        "",
        f"Read from the synthesized templates by `make synth`; on-demand list prices of {e.prices_date} "
        "from [infra/reports/prices.yaml](../../infra/reports/prices.yaml), which names its sources. An estimate, "
        "not a quote.",
        "",
    ]
    if e.unknown:
        lines += ["**Not estimated:**", ""] + [f"- {u}" for u in e.unknown] + [""]
    if e.lines:
        lines += ["| item | idle (USD/month) | busy (USD/month) | basis |", "|---|---:|---:|---|"]
        lines += [
            f"| {_cell(line.item)} | {line.idle:,.2f} | {line.busy:,.2f} | {_cell(line.basis)} |" for line in e.lines
        ]
        lines.append(f"| **total** | **{e.idle:,.2f}** | **{e.busy:,.2f}** | |")
        lines += [
            "",
            IDLE_AND_BUSY,
        ]
    lines += ["", *_assumptions_table(e.assumptions)]
    lines += ["", "## Not included", ""] + [f"- {n}" for n in e.not_included]
    return "\n".join(lines) + "\n"


def _assumptions_table(assumptions: list[Assumption]) -> list[str]:
    lines = [
        "## Assumptions",
        "",
        "What the templates cannot say: traffic and data volumes. The idle values feed the idle column, the busy "
        "values the busy one; the names in parentheses are those in "
        "[infra/reports/prices.yaml](../../infra/reports/prices.yaml).",
        "",
        "| assumption | value | source / note |",
        "|---|---|---|",
    ]
    for a in assumptions:
        note = f"{a.note} (`{a.name}`)" if a.note else f"(`{a.name}`)"
        lines.append(f"| {_cell(a.description)} | {_cell(_value(a.value, a.unit))} | {_cell(note)} |")
    return lines


def _value(value: Any, unit: str) -> str:
    """``{idle: 10, busy: 1000}`` in ``GB a month`` as ``idle 10 GB a month; busy 1,000 GB a month``."""
    if isinstance(value, Mapping):
        return "; ".join(f"{level} {_value(v, unit)}" for level, v in value.items())
    if value == "max":
        return "the limit in the template"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{value} {unit}".strip()
    if unit == "fraction":
        return f"{value * 100:g}%"
    return f"{value:,g} {unit}".strip()


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
