"""A Mermaid diagram of one environment, generated from its cloud assembly.

Stacks (as boxes) with their main resources, which stack waits for which (from ``manifest.json``),
and who may connect to what on which port (from the security-group rules in the templates). Being
generated on every ``make synth``, it cannot drift from the code.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from infra.assembly import Resource, Template, resources_of
from infra.reports.cost import cache_nodes, node_pools_in

CLOUDWATCH_ADDON = "amazon-cloudwatch-observability"


def _id(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", "_".join(parts))


def _label(text: str) -> str:
    return text.replace('"', "'")


def _summary(stack: str, template: Template, templates: Mapping[str, Template]) -> list[tuple[str, str]]:
    """(node id, label) of the resources worth drawing in one stack."""
    resources = [Resource(stack, k, v, templates) for k, v in template.get("Resources", {}).items()]
    kinds = Counter(str(r.body.get("Type")) for r in resources)
    nodes: list[tuple[str, str]] = []

    def add(key: str, text: str) -> None:
        nodes.append((_id(stack, key), text))

    for r in resources:
        describe = _DESCRIBE.get(str(r.body.get("Type")))
        if describe is not None:
            add(r.logical_id, describe(r.props, kinds))
        if r.body.get("Type") == "AWS::EKS::Addon" and r.props.get("AddonName") == CLOUDWATCH_ADDON:
            add(r.logical_id, "CloudWatch observability add-on: Container Insights metrics, container logs")
    if kinds.get("AWS::CloudWatch::Alarm"):
        add("alarms", f"CloudWatch alarms x{kinds['AWS::CloudWatch::Alarm']}")
    repositories = sorted(
        str(r.props["RepositoryName"])
        for r in resources
        if r.body.get("Type") == "AWS::ECR::Repository" and isinstance(r.props.get("RepositoryName"), str)
    )
    if repositories:
        add("AWS::ECR::Repository", "ECR " + ", ".join(repositories))
    counted = {
        "AWS::EC2::NatGateway": "NAT gateways",
        "AWS::EC2::VPCEndpoint": "VPC endpoints",
        "AWS::EC2::Subnet": "subnets",
        "AWS::KMS::Key": "KMS keys",
        "AWS::EKS::Addon": "EKS managed add-ons",
        "AWS::ElastiCache::User": "cache users",
        "AWS::EKS::PodIdentityAssociation": "EKS Pod Identity associations",
        "AWS::Events::Rule": "EventBridge rules",
    }
    for kind, text in counted.items():
        if kinds.get(kind):
            add(kind, f"{text} x{kinds[kind]}")
    charts = sorted(
        str(r.props.get("Release")) for r in resources if r.body.get("Type") == "Custom::AWSCDK-EKS-HelmChart"
    )
    if charts:
        add("charts", "Helm: " + ", ".join(charts))
    namespaces = sorted(
        name
        for r in resources
        if r.body.get("Type") == "Custom::AWSCDK-EKS-KubernetesResource"
        for name in _namespaces(r.props.get("Manifest"))
    )
    if namespaces and "-services-" in stack:
        identity = "Pod Identity" if kinds.get("AWS::EKS::PodIdentityAssociation") else "IRSA"
        add("namespaces", f"namespaces + {identity} service accounts: " + ", ".join(namespaces))
    for pool in node_pools_in(r.props.get("Manifest") for r in resources):
        requirements = {r["key"]: r["values"] for r in pool["spec"]["template"]["spec"]["requirements"]}
        add(
            "nodepool",
            f"Karpenter NodePool {pool['metadata']['name']}: "
            f"{'/'.join(requirements.get('karpenter.k8s.aws/instance-family', []))} x "
            f"{'/'.join(requirements.get('karpenter.k8s.aws/instance-size', []))}, "
            f"{' and '.join(requirements.get('karpenter.sh/capacity-type', []))}, "
            f"up to {pool['spec']['limits']['cpu']} vCPUs",
        )
    return nodes


def _namespaces(manifest: object) -> list[str]:
    """Names of the Namespace objects in a KubernetesManifest's (JSON, possibly tokenized) manifest."""
    text = (
        manifest
        if isinstance(manifest, str)
        else "".join(part for part in manifest.get("Fn::Join", ["", []])[1] if isinstance(part, str))
        if isinstance(manifest, dict)
        else ""
    )
    return re.findall(r'"kind":"Namespace","metadata":\{"name":"([a-z0-9-]+)"', text)


def _nodegroup(props: Mapping[str, Any], _: Counter[str]) -> str:
    scaling = props.get("ScalingConfig", {})
    return (
        f"managed nodes {', '.join(props.get('InstanceTypes', []))} ({scaling.get('MinSize')}-{scaling.get('MaxSize')})"
    )


_DESCRIBE: dict[str, Callable[[Mapping[str, Any], Counter[str]], str]] = {
    "AWS::EC2::VPC": lambda props, _: f"VPC {props.get('CidrBlock', '')}",
    "AWS::EKS::Cluster": lambda props, _: f"EKS cluster {props.get('Name', '')} (Kubernetes {props.get('Version')})",
    "AWS::EKS::Nodegroup": _nodegroup,
    "AWS::RDS::DBCluster": lambda props, kinds: (
        f"Aurora PostgreSQL {props.get('EngineVersion')}, {kinds.get('AWS::RDS::DBInstance', 0)} instance(s)"
        + (", read-only secondary of the global database" if "GlobalClusterIdentifier" in props else "")
    ),
    "AWS::RDS::GlobalCluster": lambda props, _: f"Aurora global database {props.get('GlobalClusterIdentifier')}",
    "AWS::ECR::ReplicationConfiguration": lambda props, _: (
        "ECR replication: "
        + "; ".join(
            f"{', '.join(f['Filter'] for f in rule.get('RepositoryFilters', []))} to "
            + ", ".join(d["Region"] for d in rule["Destinations"])
            for rule in props["ReplicationConfiguration"]["Rules"]
        )
    ),
    "AWS::ECR::RepositoryCreationTemplate": lambda props, _: (
        f"ECR creation template {props.get('Prefix')} ({', '.join(props.get('AppliedFor', []))}): "
        f"{props.get('ImageTagMutability')}, KMS, lifecycle"
    ),
    "AWS::ElastiCache::ServerlessCache": lambda props, _: (
        f"ElastiCache Serverless {props.get('Engine')} {props.get('MajorEngineVersion')} (cache.kind serverless)"
    ),
    "AWS::ElastiCache::ReplicationGroup": lambda props, _: (
        f"ElastiCache {props.get('Engine')} {props.get('EngineVersion')} replication group (cache.kind "
        f"replication-group): {cache_nodes(props)} x {props.get('CacheNodeType')}, "
        f"cluster mode {props.get('ClusterMode')}, Multi-AZ {'on' if props.get('MultiAZEnabled') else 'off'}"
    ),
    "AWS::Backup::BackupPlan": lambda props, _: "AWS Backup daily plan",
    "AWS::SNS::Topic": lambda props, kinds: (
        f"SNS topic {props.get('TopicName')} (KMS), {kinds.get('AWS::SNS::Subscription', 0)} subscription(s)"
    ),
    "AWS::CloudWatch::Dashboard": lambda props, _: f"dashboard {props.get('DashboardName')}",
    "AWS::IAM::OIDCProvider": lambda props, _: (
        f"OIDC provider {props['Url']}" if isinstance(props.get("Url"), str) else "OIDC provider of the cluster (IRSA)"
    ),
    "AWS::EKS::AccessEntry": lambda props, _: (
        "access entry" + (" (Karpenter's nodes, EC2_LINUX)" if props.get("Type") == "EC2_LINUX" else "")
    ),
    "AWS::SQS::Queue": lambda props, _: f"SQS queue {props.get('QueueName')} (KMS)",
}

_SG_USERS = {
    "AWS::RDS::DBCluster": "VpcSecurityGroupIds",
    "AWS::ElastiCache::ServerlessCache": "SecurityGroupIds",
    "AWS::ElastiCache::ReplicationGroup": "SecurityGroupIds",
    "AWS::EC2::VPCEndpoint": "SecurityGroupIds",
    "AWS::EC2::LaunchTemplate": "LaunchTemplateData.SecurityGroupIds",
}


def _users_of_groups(templates: Mapping[str, Template]) -> dict[tuple[str, str], list[str]]:
    """Security group -> diagram nodes of what carries it (the node group stands for its launch template)."""
    users: dict[tuple[str, str], list[str]] = {}
    for kind, path in _SG_USERS.items():
        for r in resources_of(templates, kind):
            value: object = r.props
            for part in path.split("."):
                value = value.get(part, []) if isinstance(value, dict) else []
            node = _id(r.stack, r.logical_id)
            if kind == "AWS::EC2::LaunchTemplate":
                node = next(
                    (
                        _id(g.stack, g.logical_id)
                        for g in resources_of(templates, "AWS::EKS::Nodegroup")
                        if g.target(g.props.get("LaunchTemplate", {}).get("Id")) == r
                    ),
                    node,
                )
            elif kind == "AWS::EC2::VPCEndpoint":
                node = _id(r.stack, "AWS::EC2::VPCEndpoint")
            for ref in value if isinstance(value, list) else []:
                group = r.target(ref)
                if group is not None:
                    users.setdefault((group.stack, group.logical_id), []).append(node)
    return users


def _traffic(templates: Mapping[str, Template]) -> list[tuple[str, str, str]]:
    users = _users_of_groups(templates)
    edges: set[tuple[str, str, str]] = set()
    rules: list[tuple[Resource, dict[str, object]]] = []
    for ingress in resources_of(templates, "AWS::EC2::SecurityGroupIngress"):
        group = ingress.target(ingress.props.get("GroupId"))
        if group is not None:
            rules.append((group, dict(ingress.props)))
    for group in resources_of(templates, "AWS::EC2::SecurityGroup"):
        rules += [(group, dict(rule)) for rule in group.props.get("SecurityGroupIngress", [])]
    for group, rule in rules:
        port = f"{rule.get('IpProtocol')} {rule.get('FromPort')}"
        if "SourceSecurityGroupId" in rule:
            source = group.target(rule["SourceSecurityGroupId"])
            sources = users.get((source.stack, source.logical_id), []) if source else []
        else:
            sources = [f"cidr:{rule.get('CidrIp')}"]
        for target in users.get((group.stack, group.logical_id), []):
            edges.update((s, target, port) for s in sources)
    return sorted(edges)


def _signals(templates: Mapping[str, Template]) -> list[tuple[str, str, str]]:
    """Where metrics and alarms flow: the add-on and the AWS services into the alarms, alarms to topics."""
    edges = []
    alarm_stacks = sorted({a.stack for a in resources_of(templates, "AWS::CloudWatch::Alarm")})
    for stack in alarm_stacks:
        alarms = _id(stack, "alarms")
        for addon in resources_of(templates, "AWS::EKS::Addon"):
            if addon.props.get("AddonName") == CLOUDWATCH_ADDON:
                edges.append((_id(addon.stack, addon.logical_id), alarms, "metrics"))
        for topic in resources_of(templates, "AWS::SNS::Topic"):
            if topic.stack == stack:
                edges.append((alarms, _id(topic.stack, topic.logical_id), "notify"))
    return edges


def mermaid(
    templates: Mapping[str, Template], dependencies: Mapping[str, list[str]], regions: Mapping[str, str] | None = None
) -> str:
    """``regions``: stack -> region, for an environment of several regions (each drawn as a box)."""
    lines = ["flowchart LR"]
    by_region: dict[str, list[str]] = {}
    for stack in dependencies:
        by_region.setdefault((regions or {}).get(stack, ""), []).append(stack)
    for region, stacks in by_region.items():
        indent = "    " if region else "  "
        if region:
            lines.append(f'  subgraph {_id("region", region)}["{region}"]')
        for stack in stacks:
            lines.append(f'{indent}subgraph {_id(stack)}["{stack}"]')
            for node, text in _summary(stack, templates.get(stack, {}), templates):
                lines.append(f'{indent}  {node}["{_label(text)}"]')
            lines.append(f"{indent}end")
        if region:
            lines.append("  end")
    for stack, deps in dependencies.items():
        lines += [f"  {_id(stack)} -. waits for .-> {_id(dep)}" for dep in deps]
    for source, target, port in _traffic(templates):
        node = source
        if source.startswith("cidr:"):
            cidr = source.removeprefix("cidr:")
            node = _id("cidr", cidr)
            lines.append(f'  {node}(["{cidr}"])')
        lines.append(f"  {node} -->|{port}| {target}")
    lines += [f"  {source} ==>|{what}| {target}" for source, target, what in _signals(templates)]
    lines += [f"  {_id(source)} ==>|{what}| {_id(target)}" for source, target, what in _across_regions(templates)]
    return "\n".join(lines)


def _across_regions(templates: Mapping[str, Template]) -> list[tuple[str, str, str]]:
    """Stack -> stack arrows for what crosses regions: image replication, the global database."""
    arrows = []
    rules = list(resources_of(templates, "AWS::ECR::ReplicationConfiguration"))
    replicas = list(resources_of(templates, "AWS::ECR::RepositoryCreationTemplate"))
    for rule in rules:
        arrows += [(rule.stack, t.stack, "replicates images to") for t in replicas]
    for secondary in resources_of(templates, "AWS::RDS::DBCluster"):
        source = secondary.target(secondary.props.get("GlobalClusterIdentifier"))
        if source is not None:
            arrows.append((source.stack, secondary.stack, "global database replication"))
    return arrows


def write_architecture(
    templates: Mapping[str, Template],
    dependencies: Mapping[str, list[str]],
    environment: str,
    directory: Path,
    *,
    regions: Mapping[str, str] | None = None,
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    text = "\n".join(
        [
            f"# Architecture: {environment}",
            "",
            "Generated by `make synth` from the cloud assembly: the stacks and their main resources, dotted "
            "arrows for which stack waits for which at deploy, solid arrows for who may connect to what on "
            "which port (security-group rules), thick arrows for where metrics and alarms go.",
            "",
            "```mermaid",
            mermaid(templates, dependencies, regions),
            "```",
            "",
        ]
    )
    (directory / "architecture.md").write_text(text, encoding="utf-8")
