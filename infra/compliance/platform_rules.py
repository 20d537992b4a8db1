"""Our own rules for what cdk-nag 3.0.2 cannot see (ADR 0004), run on every synth.

cdk-nag's EKS rules do not match ``aws_eks_v2`` clusters, it has no rule for ElastiCache Serverless,
and for ECR it only checks public access. These rules read the synthesized CloudFormation templates
(the thing that gets deployed, whichever construct produced it), follow references between stacks
(``Fn::GetStackOutput``) and report through CDK's validation-plugin interface, so a violation fails
synth and shows up in ``validation-report.json`` and in the compliance report like any other pack.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import (
    IPolicyValidationContext,
    IPolicyValidationPlugin,
    PolicyValidationPluginReport,
    PolicyViolatingResource,
    PolicyViolation,
)

from infra.assembly import Resource, Template, resources_of
from infra.config.settings import AURORA_POSTGRES_VERSIONS, PRODUCTION_LOG_RETENTION_DAYS

PLUGIN_NAME = "CloudOps"
CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")

Check = Callable[[Resource], str | None]


@dataclass(frozen=True)
class Rule:
    id: str
    resource_type: str | tuple[str, ...]
    requirement: str
    reason: str
    link: str
    check: Check
    production_only: bool = False


def _literal_text(value: Any) -> str:
    """The literal strings inside a value (``Fn::Join`` parts included), joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_literal_text(v) for v in value)
    if isinstance(value, dict):
        if "Fn::Join" in value:
            return _literal_text(value["Fn::Join"][1])
        return ""
    return ""


def _customer_key(resource: Resource, value: Any) -> bool:
    """A KMS key this app manages, or a key ARN (not an alias, not absent)."""
    if isinstance(value, str):
        return ":key/" in value
    target = resource.target(value)
    return target is not None and target.body.get("Type") == "AWS::KMS::Key"


# --- EKS cluster ---------------------------------------------------------------------------------


def _all_logs(r: Resource) -> str | None:
    enabled = {t.get("Type") for t in r.props.get("Logging", {}).get("ClusterLogging", {}).get("EnabledTypes", [])}
    missing = [t for t in CONTROL_PLANE_LOG_TYPES if t not in enabled]
    return f"control-plane log types off: {', '.join(missing)}" if missing else None


def _secrets_cmk(r: Resource) -> str | None:
    for config in r.props.get("EncryptionConfig", []):
        if "secrets" in config.get("Resources", []) and _customer_key(r, config.get("Provider", {}).get("KeyArn")):
            return None
    return "Kubernetes secrets are not envelope-encrypted with a customer-managed KMS key"


def _endpoint(r: Resource) -> str | None:
    vpc = r.props.get("ResourcesVpcConfig", {})
    if vpc.get("EndpointPublicAccess", True) is False:
        return None
    cidrs = vpc.get("PublicAccessCidrs")
    if not cidrs:
        return "the public API endpoint is open to 0.0.0.0/0 (no PublicAccessCidrs)"
    if "0.0.0.0/0" in cidrs:
        return "the public API endpoint allows 0.0.0.0/0"
    return None


def _api_auth(r: Resource) -> str | None:
    mode = r.props.get("AccessConfig", {}).get("AuthenticationMode", "CONFIG_MAP")
    return None if mode == "API" else f"authentication mode is {mode}, not API (access entries only)"


# --- EKS node groups -----------------------------------------------------------------------------


def _launch_template(r: Resource) -> Resource | None:
    spec = r.props.get("LaunchTemplate", {})
    return r.target(spec.get("Id")) or r.target(spec.get("Name"))


def _imdsv2(r: Resource) -> str | None:
    template = _launch_template(r)
    if template is None:
        return "no launch template of this app: IMDSv2 and the hop limit cannot be enforced"
    options = template.props.get("LaunchTemplateData", {}).get("MetadataOptions", {})
    if options.get("HttpTokens") != "required" or options.get("HttpPutResponseHopLimit") != 1:
        return f"launch template {template.logical_id} does not require IMDSv2 with hop limit 1"
    return None


def _encrypted_root(r: Resource) -> str | None:
    template = _launch_template(r)
    if template is None:
        return "no launch template of this app: root volume encryption cannot be enforced"
    mappings = template.props.get("LaunchTemplateData", {}).get("BlockDeviceMappings", [])
    if not mappings or not all(m.get("Ebs", {}).get("Encrypted") is True for m in mappings):
        return f"launch template {template.logical_id} has an unencrypted (or default) root volume"
    return None


def _private_subnets(r: Resource) -> str | None:
    for value in r.props.get("Subnets", []):
        subnet = r.target(value)
        if subnet is None or subnet.body.get("Type") != "AWS::EC2::Subnet":
            return "a node group subnet is not a subnet of this app, so it cannot be shown to be private"
        if subnet.props.get("MapPublicIpOnLaunch") is True or _routes_to_internet_gateway(subnet):
            return f"node group subnet {subnet.logical_id} is public (route to an internet gateway)"
    return None


def _routes_to_internet_gateway(subnet: Resource) -> bool:
    tables = {
        json.dumps(a.props.get("RouteTableId"))
        for a in subnet.resources_of_type("AWS::EC2::SubnetRouteTableAssociation")
        if a.props.get("SubnetId") == {"Ref": subnet.logical_id}
    }
    for route in subnet.resources_of_type("AWS::EC2::Route"):
        if json.dumps(route.props.get("RouteTableId")) in tables:
            gateway = route.target(route.props.get("GatewayId"))
            if gateway is not None and gateway.body.get("Type") == "AWS::EC2::InternetGateway":
                return True
    return False


# --- ElastiCache: Serverless and replication groups ------------------------------------------------

_CACHES = ("AWS::ElastiCache::ServerlessCache", "AWS::ElastiCache::ReplicationGroup")
_REPLICATION_GROUP = "AWS::ElastiCache::ReplicationGroup"


def _cache_cmk(r: Resource) -> str | None:
    if r.body.get("Type") == _REPLICATION_GROUP and r.props.get("AtRestEncryptionEnabled") is not True:
        return "encryption at rest is off"
    return None if _customer_key(r, r.props.get("KmsKeyId")) else "not encrypted with a customer-managed KMS key"


def _cache_snapshots(r: Resource) -> str | None:
    kept = r.props.get("SnapshotRetentionLimit", 0)
    return None if isinstance(kept, int) and kept >= 7 else f"keeps {kept} days of snapshots, fewer than 7"


def _cache_security_groups(r: Resource) -> str | None:
    return None if r.props.get("SecurityGroupIds") else "no security groups: the VPC default group applies"


def _cache_default_user_off(r: Resource) -> str | None:
    if r.body.get("Type") == _REPLICATION_GROUP:
        ids = r.props.get("UserGroupIds") or []
        if r.props.get("AuthToken"):
            return "a shared AUTH token instead of a user group"
    else:
        ids = [r.props["UserGroupId"]] if r.props.get("UserGroupId") else []
    if not ids:
        return "no user group: the default user connects without a password"
    groups = [
        g
        for g in r.resources_of_type("AWS::ElastiCache::UserGroup")
        if g.props.get("UserGroupId") in ids or {"Ref": g.logical_id} in ids
    ]
    if not groups:
        return f"user group {ids} is not one of this app's: its default user cannot be checked"
    for group in groups:
        for user in r.resources_of_type("AWS::ElastiCache::User"):
            in_group = user.props.get("UserId") in group.props.get("UserIds", [])
            enabled = not str(user.props.get("AccessString", "")).startswith("off")
            if in_group and user.props.get("UserName") == "default" and enabled:
                return f"the default user {user.props.get('UserId')} of the user group is not switched off"
    return None


def _cache_tls_required(r: Resource) -> str | None:
    if r.props.get("TransitEncryptionEnabled") is not True:
        return "encryption in transit is off"
    mode = r.props.get("TransitEncryptionMode", "required")
    return None if mode == "required" else f"TransitEncryptionMode {mode}: clients may still connect without TLS"


def _cache_failover(r: Resource) -> str | None:
    if r.props.get("MultiAZEnabled") is not True or r.props.get("AutomaticFailoverEnabled") is not True:
        return "not Multi-AZ with automatic failover"
    cluster_mode = r.props.get("ClusterMode") == "enabled"
    replicas = r.props.get("ReplicasPerNodeGroup", 0) if cluster_mode else r.props.get("NumCacheClusters", 1) - 1
    return None if isinstance(replicas, int) and replicas >= 1 else "no replica to fail over to"


# --- Alarms ------------------------------------------------------------------------------------


def _alarm_dimensions(r: Resource) -> list[tuple[str, str, str]]:
    """(namespace, dimension name, literal value) of every metric of every alarm in the assembly."""
    found = []
    for alarm in resources_of(r.templates, "AWS::CloudWatch::Alarm"):
        metrics = [alarm.props] + [q.get("MetricStat", {}).get("Metric", {}) for q in alarm.props.get("Metrics", [])]
        for metric in metrics:
            for dimension in metric.get("Dimensions", []):
                if isinstance(dimension.get("Value"), str):
                    found.append((str(metric.get("Namespace")), dimension.get("Name"), dimension["Value"]))
    return found


def _watched(r: Resource) -> str | None:
    kind, props = r.body.get("Type"), r.props
    dimensions = _alarm_dimensions(r)
    if kind == "AWS::RDS::DBCluster":
        name = props.get("DBClusterIdentifier")
        hit = ("AWS/RDS", "DBClusterIdentifier", name) in dimensions
    elif kind == "AWS::ElastiCache::ServerlessCache":
        name = props.get("ServerlessCacheName")
        hit = ("AWS/ElastiCache", "clusterId", name) in dimensions
    elif kind == _REPLICATION_GROUP:
        name = props.get("ReplicationGroupId")
        hit = any(
            ns == "AWS/ElastiCache" and d == "CacheClusterId" and v.startswith(f"{name}-") for ns, d, v in dimensions
        )
    else:  # a node group: alarms on its cluster's nodes
        cluster = r.target(props.get("ClusterName"))
        name = cluster.props.get("Name") if cluster is not None else props.get("ClusterName")
        hit = ("ContainerInsights", "ClusterName", name) in dimensions
    return None if isinstance(name, str) and hit else f"no alarm watches {name!r}"


def _alarm_action(r: Resource) -> str | None:
    if r.props.get("ActionsEnabled") is False:
        return "its actions are disabled"
    return None if r.props.get("AlarmActions") else "it notifies no one (no alarm action)"


# --- ECR -----------------------------------------------------------------------------------------


def _ecr_immutable(r: Resource) -> str | None:
    return None if r.props.get("ImageTagMutability") == "IMMUTABLE" else "image tags are mutable"


def _ecr_scan(r: Resource) -> str | None:
    scanning = r.props.get("ImageScanningConfiguration", {}).get("ScanOnPush")
    return None if scanning is True else "images are not scanned on push"


def _ecr_kms(r: Resource) -> str | None:
    encryption = r.props.get("EncryptionConfiguration", {})
    return None if encryption.get("EncryptionType") == "KMS" else "not encrypted with KMS (AES256 default)"


# --- Aurora --------------------------------------------------------------------------------------


def _aurora_version(r: Resource) -> str | None:
    if r.props.get("Engine") != "aurora-postgresql":
        return None
    version = str(r.props.get("EngineVersion", ""))
    if version in AURORA_POSTGRES_VERSIONS:
        return None
    return f"engine version {version or '(engine default)'} is deprecated or not vetted; allowed: " + ", ".join(
        AURORA_POSTGRES_VERSIONS
    )


def _aurora_iam_auth(r: Resource) -> str | None:
    return None if r.props.get("EnableIAMDatabaseAuthentication") is True else "IAM database authentication is off"


def _aurora_deletion_protection(r: Resource) -> str | None:
    return None if r.props.get("DeletionProtection") is True else "deletion protection is off"


# --- CloudWatch Logs -----------------------------------------------------------------------------


def _retention_days(r: Resource) -> Any:
    """A log group's retention: its ``RetentionInDays``, or what an ``AwsCustomResource`` calling
    ``putRetentionPolicy`` sets (the log groups AWS services write to, created or adopted at deploy
    time). ``None``: never expires, or the resource sets no retention."""
    if r.body.get("Type") == "AWS::Logs::LogGroup":
        return r.props.get("RetentionInDays")
    days = None
    for key in ("Create", "Update"):
        call = r.props.get(key)
        text = call if isinstance(call, str) else _literal_text(call)
        match = re.search(r'"action":"putRetentionPolicy".*"retentionInDays":(\d+)', text)
        days = int(match.group(1)) if match else days
    return days


def _log_retention(r: Resource) -> str | None:
    days = _retention_days(r)
    if days is None or (isinstance(days, int) and days >= PRODUCTION_LOG_RETENTION_DAYS):
        return None
    return f"events kept {days} days"


# --- IAM -----------------------------------------------------------------------------------------


def _federated_sub(r: Resource) -> str | None:
    for statement in r.props.get("AssumeRolePolicyDocument", {}).get("Statement", []):
        if statement.get("Effect") != "Allow" or "Federated" not in statement.get("Principal", {}):
            continue
        keys = ""
        for operator in ("StringEquals", "StringLike"):
            condition = statement.get("Condition", {}).get(operator)
            if isinstance(condition, dict) and "Fn::GetAtt" in condition:
                # CDK's CfnJson: the keys are only known once the issuer URL resolves.
                source = r.target(condition)
                keys += _literal_text(source.props.get("Value")) if source else ""
            elif isinstance(condition, dict):
                keys += " ".join(f"{k}={_literal_text(v)}" for k, v in condition.items())
        if ':sub"' not in keys and ":sub=" not in keys:
            return (
                "trusted by a federated principal with no `sub` condition: any identity of that provider may assume it"
            )
    return None


POD_IDENTITY_TAGS = ("aws:RequestTag/kubernetes-namespace", "aws:RequestTag/kubernetes-service-account")


def _pod_identity_scope(r: Resource) -> str | None:
    for statement in r.props.get("AssumeRolePolicyDocument", {}).get("Statement", []):
        service = _as_list(statement.get("Principal", {}).get("Service", []))
        if statement.get("Effect") != "Allow" or "pods.eks.amazonaws.com" not in service:
            continue
        equals = statement.get("Condition", {}).get("StringEquals", {})
        missing = [tag for tag in POD_IDENTITY_TAGS if not isinstance(equals.get(tag), str) or "*" in equals[tag]]
        if missing:
            return (
                f"trusted by EKS Pod Identity without one {' and '.join(missing)}: an association of any "
                "namespace or service account in the account may name it"
            )
    return None


def _queue_cmk(r: Resource) -> str | None:
    if not _customer_key(r, r.props.get("KmsMasterKeyId")):
        return "not encrypted with a customer-managed KMS key"
    return None


def _statements(r: Resource) -> Iterator[Mapping[str, Any]]:
    if r.body.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        yield from r.props.get("PolicyDocument", {}).get("Statement", [])
    for policy in r.props.get("Policies", []):
        yield from policy.get("PolicyDocument", {}).get("Statement", [])


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _admin_star(r: Resource) -> str | None:
    for statement in _statements(r):
        allow = statement.get("Effect") == "Allow"
        if allow and "*" in _as_list(statement.get("Action")) and "*" in _as_list(statement.get("Resource")):
            return "allows action * on resource *"
    return None


_BP = "https://docs.aws.amazon.com/eks/latest/best-practices"
RULES: tuple[Rule, ...] = (
    Rule(
        "CloudOps-EKS1",
        "AWS::EKS::Cluster",
        "all five control-plane log types on",
        "Audit and authenticator logs are the only record of who did what to the cluster (CIS EKS 2.1.1).",
        f"{_BP}/auditing-and-logging.html",
        _all_logs,
    ),
    Rule(
        "CloudOps-EKS2",
        "AWS::EKS::Cluster",
        "Kubernetes secrets envelope-encrypted with a customer-managed KMS key",
        "Secrets in etcd are otherwise protected only by AWS-owned disk encryption (CIS EKS 5.3.1).",
        f"{_BP}/data-encryption-and-secrets-management.html",
        _secrets_cmk,
    ),
    Rule(
        "CloudOps-EKS3",
        "AWS::EKS::Cluster",
        "public API endpoint off, or limited to listed CIDRs (never 0.0.0.0/0) in production",
        "An API server open to the internet is one credential leak away from the cluster (CIS EKS 5.4.2).",
        "https://docs.aws.amazon.com/eks/latest/userguide/cluster-endpoint.html",
        _endpoint,
        production_only=True,
    ),
    Rule(
        "CloudOps-EKS4",
        "AWS::EKS::Cluster",
        "authentication mode API (access entries only)",
        "Access entries are auditable IAM resources; the aws-auth ConfigMap is an unvalidated file that a "
        "typo can lock everyone out of.",
        "https://docs.aws.amazon.com/eks/latest/userguide/access-entries.html",
        _api_auth,
    ),
    Rule(
        "CloudOps-EKS5",
        "AWS::EKS::Nodegroup",
        "a launch template that requires IMDSv2 with hop limit 1",
        "With a hop limit above 1, every pod can take the node role's credentials from the metadata service "
        "(EKS Best Practices: restrict access to the instance profile assigned to the worker node).",
        f"{_BP}/identity-and-access-management.html#_restrict_access_to_the_instance_profile_assigned_to_the_worker_node",
        _imdsv2,
    ),
    Rule(
        "CloudOps-EKS6",
        "AWS::EKS::Nodegroup",
        "encrypted root volumes (launch template)",
        "Node disks hold container images, logs and emptyDir data.",
        f"{_BP}/data-encryption-and-secrets-management.html",
        _encrypted_root,
    ),
    Rule(
        "CloudOps-EKS7",
        "AWS::EKS::Nodegroup",
        "nodes in private subnets only",
        "Nodes in a public subnet are reachable from the internet through any security-group mistake.",
        f"{_BP}/subnets.html",
        _private_subnets,
    ),
    Rule(
        "CloudOps-EC1",
        _CACHES,
        "encrypted with a customer-managed KMS key",
        "A customer key lets the data be made unreadable by disabling the key and shows every use in CloudTrail.",
        "https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/at-rest-encryption.html",
        _cache_cmk,
    ),
    Rule(
        "CloudOps-EC2",
        _CACHES,
        "at least 7 days of snapshots in production",
        "Replicas copy a bad write or a deleted key space at once; only a snapshot brings the data back.",
        "https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/backups.html",
        _cache_snapshots,
        production_only=True,
    ),
    Rule(
        "CloudOps-EC3",
        _CACHES,
        "security groups set",
        "Without them the VPC's default security group decides who connects.",
        "https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/VPCs.html",
        _cache_security_groups,
    ),
    Rule(
        "CloudOps-EC4",
        _CACHES,
        "a user group whose default user is switched off",
        "Without a user group the default user connects with no password.",
        "https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/Clusters.RBAC.html",
        _cache_default_user_off,
    ),
    Rule(
        "CloudOps-EC5",
        _REPLICATION_GROUP,
        "TLS required in transit",
        "Without it, IAM auth tokens and data cross the VPC in clear text (a serverless cache always requires TLS).",
        "https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/in-transit-encryption.html",
        _cache_tls_required,
    ),
    Rule(
        "CloudOps-EC6",
        _REPLICATION_GROUP,
        "Multi-AZ with automatic failover and a replica in production",
        "A failed primary node or zone otherwise takes the cache down until a node is replaced.",
        "https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/AutoFailover.html",
        _cache_failover,
        production_only=True,
    ),
    Rule(
        "CloudOps-OBS1",
        ("AWS::RDS::DBCluster", *_CACHES, "AWS::EKS::Nodegroup"),
        "alarms on every data store and node group in production",
        "A store filling up or nodes failing is otherwise noticed by the users first.",
        "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Best_Practice_Recommended_Alarms_AWS_Services.html",
        _watched,
        production_only=True,
    ),
    Rule(
        "CloudOps-OBS2",
        "AWS::CloudWatch::Alarm",
        "every alarm notifies someone in production",
        "An alarm without an action changes colour on a dashboard nobody is looking at.",
        "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarm-actions.html",
        _alarm_action,
        production_only=True,
    ),
    Rule(
        "CloudOps-LOG1",
        ("AWS::Logs::LogGroup", "Custom::AWS"),
        f"every log group keeps its events at least {PRODUCTION_LOG_RETENTION_DAYS} days in production",
        "Investigations and audits reach back months; AWS Control Tower's proactive control CT.CLOUDWATCH.PR.2 "
        "asks a year.",
        "https://docs.aws.amazon.com/controltower/latest/controlreference/cloudwatch-rules.html",
        _log_retention,
        production_only=True,
    ),
    Rule(
        "CloudOps-ECR1",
        "AWS::ECR::Repository",
        "immutable image tags",
        "A mutable tag can be repointed after review: what was approved is not what runs.",
        "https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-tag-mutability.html",
        _ecr_immutable,
    ),
    Rule(
        "CloudOps-ECR2",
        "AWS::ECR::Repository",
        "scan on push",
        "The build fails on critical findings only if there are findings to read.",
        "https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-scanning-basic.html",
        _ecr_scan,
    ),
    Rule(
        "CloudOps-ECR3",
        "AWS::ECR::Repository",
        "KMS encryption",
        "Images carry code and configuration; a customer key makes their use auditable and revocable.",
        "https://docs.aws.amazon.com/AmazonECR/latest/userguide/encryption-at-rest.html",
        _ecr_kms,
    ),
    Rule(
        "CloudOps-RDS1",
        "AWS::RDS::DBCluster",
        "a current, vetted Aurora PostgreSQL engine version (none deprecated)",
        "Deprecated minors are upgraded by AWS on its schedule, not ours, and stop receiving fixes.",
        "https://docs.aws.amazon.com/AmazonRDS/latest/AuroraPostgreSQLReleaseNotes/aurorapostgresql-release-calendar.html",
        _aurora_version,
    ),
    Rule(
        "CloudOps-RDS2",
        "AWS::RDS::DBCluster",
        "IAM database authentication on",
        "Services connect with short-lived IAM tokens from their IRSA role instead of stored passwords.",
        "https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/UsingWithRDS.IAMDBAuth.html",
        _aurora_iam_auth,
    ),
    Rule(
        "CloudOps-RDS3",
        "AWS::RDS::DBCluster",
        "deletion protection in production",
        "A mistaken `cdk destroy` or a replaced construct must not delete production data.",
        "https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/USER_DeleteCluster.html#USER_DeletionProtection",
        _aurora_deletion_protection,
        production_only=True,
    ),
    Rule(
        "CloudOps-IAM1",
        "AWS::IAM::Role",
        "a role trusted by a federated principal has a `sub` condition",
        "Without `sub`, every workload of the OIDC provider (any GitHub repository, any service account) can "
        "assume the role.",
        "https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/"
        "configuring-openid-connect-in-amazon-web-services",
        _federated_sub,
    ),
    Rule(
        "CloudOps-IAM3",
        "AWS::IAM::Role",
        "a role trusted by EKS Pod Identity names one namespace and one service account in its trust",
        "An association is made by whoever may call eks:CreatePodIdentityAssociation, for any namespace of any "
        "cluster; the session tags EKS passes (kubernetes-namespace, kubernetes-service-account) are what ties "
        "a role to the one workload it is for.",
        "https://docs.aws.amazon.com/eks/latest/userguide/pod-id-role.html",
        _pod_identity_scope,
    ),
    Rule(
        "CloudOps-SQS1",
        "AWS::SQS::Queue",
        "a queue is encrypted with a customer-managed KMS key",
        "Karpenter's interruption events name the cluster's instances; like every store of the platform they "
        "are under a key whose policy the account controls and whose use CloudTrail records.",
        "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-server-side-encryption.html",
        _queue_cmk,
    ),
    Rule(
        "CloudOps-IAM2",
        "*",
        "no statement allows action * on resource *",
        "That is administrator access; no identity of the platform needs it.",
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/best-practices.html#grant-least-privilege",
        _admin_star,
    ),
)
_IAM_TYPES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::Role")


def rules_for(*, production: bool) -> list[Rule]:
    return [r for r in RULES if production or not r.production_only]


@dataclass(frozen=True)
class Finding:
    rule: Rule
    stack: str
    logical_id: str
    message: str


def evaluate(templates: Mapping[str, Template], *, production: bool) -> list[Finding]:
    """Every violation of the rules in these templates (stack name -> template)."""
    findings = []
    for rule in rules_for(production=production):
        for stack, template in templates.items():
            for logical_id, body in template.get("Resources", {}).items():
                kind = body.get("Type")
                types = rule.resource_type if isinstance(rule.resource_type, tuple) else (rule.resource_type,)
                if kind not in types and not (rule.resource_type == "*" and kind in _IAM_TYPES):
                    continue
                message = rule.check(Resource(stack, logical_id, body, templates))
                if message:
                    findings.append(Finding(rule, stack, logical_id, message))
    return findings


@jsii.implements(IPolicyValidationPlugin)
class PlatformRules:
    """CDK validation plugin running :data:`RULES` over the synthesized templates."""

    def __init__(self, *, production: bool) -> None:
        self.production = production

    @property
    def name(self) -> str:
        return PLUGIN_NAME

    @property
    def rule_ids(self) -> list[str]:
        return [r.id for r in rules_for(production=self.production)]

    @property
    def version(self) -> str:
        return "1.0.0"

    def validate(self, context: IPolicyValidationContext) -> PolicyValidationPluginReport:
        paths = {
            Path(s.template_path).name.removesuffix(".template.json"): s.template_path for s in context.stack_templates
        }
        templates = {name: json.loads(Path(path).read_text(encoding="utf-8")) for name, path in paths.items()}
        findings = evaluate(templates, production=self.production)
        violations = [
            PolicyViolation(
                rule_name=rule.id,
                description=f"{rule.requirement}. {rule.reason}",
                fix=rule.link,
                severity="error",
                violating_resources=[
                    PolicyViolatingResource(
                        resource_logical_id=f.logical_id, template_path=paths[f.stack], locations=[f.message]
                    )
                    for f in findings
                    if f.rule is rule
                ],
            )
            for rule in rules_for(production=self.production)
            if any(f.rule is rule for f in findings)
        ]
        return PolicyValidationPluginReport(success=not violations, violations=violations)
