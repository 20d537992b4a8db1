"""Every acknowledged rule finding of the platform, each on the narrowest construct, with its reason.

An acknowledgement is for a finding that cannot be fixed, never for one that merely was not.
Rule ids are exact (``Pack-Rule`` or ``Pack-Rule[finding]``); the ledger refuses wildcards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from constructs import Construct

from infra.compliance.ledger import Ledger
from infra.constructs.service_log_group import AWS_CUSTOM_RESOURCE_FUNCTION, ServiceLogGroup
from infra.constructs.tree import descendant
from infra.stacks.eks import alb_controller_policy
from infra.stacks.eks_karpenter import controller_policy

if TYPE_CHECKING:
    from aws_cdk import Stack
    from constructs import IConstruct

    from infra.config.delivery import Neighbour
    from infra.stacks.cache import CacheStack
    from infra.stacks.cicd import CicdStack
    from infra.stacks.database import DatabaseStack
    from infra.stacks.eks import EksStack
    from infra.stacks.network import NetworkStack

# The same control appears in several packs under its own prefix.
_COMPLIANCE_PACKS = ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")


class Regional(NamedTuple):
    """The stacks of one region whose resources carry acknowledgements."""

    network: NetworkStack
    eks: EksStack
    database: DatabaseStack | None  # None: no database in this region (database.other_regions: none)
    cache: CacheStack


def acknowledge_platform(
    ledger: Ledger,
    *,
    regions: Sequence[Regional],
    cicd: CicdStack,
    retained: bool,
    promoted_from: Neighbour | None,
) -> None:
    """``regions``: the primary's stacks first, then each other region's; ``retained``: the environment
    keeps its data (settings retain_data); ``promoted_from``: the environment whose images it promotes.

    The stacks themselves rather than the platform that holds them: infra.platform calls this, so
    importing its Platform here would make the two modules import each other.
    """
    for network, eks, database, cache in regions:
        acknowledge_network(network, ledger)
        _eks(eks, ledger)
        acknowledge_cache(cache, ledger, retained=retained)
        _service_log_groups(eks, ledger)
        _resource_tags_for_telemetry(eks, ledger)
        if database is not None:
            _database(database, ledger)
            _service_log_groups(database, ledger)
    ledger.acknowledge(
        descendant(cicd, "DeployPolicy/Resource"),
        "AwsSolutions-IAM5[Resource::*]",
        "ecr:GetAuthorizationToken (the registry login) supports no resource-level permissions, so its only "
        "possible resource is '*'; it grants no image access by itself. Push and pull are limited to this "
        "environment's repositories by ARN in the same policy.",
    )
    for stack in cicd.diffed_stacks:
        ledger.acknowledge(
            descendant(cicd, "DiffPolicy/Resource"),
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudformation:*:<AWS::AccountId>:stack/{stack}/*]",
            "Read-only (DescribeStacks, GetTemplate, ListStackResources: what cdk diff --method=template reads) on "
            "this environment's stacks and the account stack: a stack's ARN ends in the id CloudFormation generates "
            "when it creates the stack ('/*'); the environment's stacks share its prefix (<project>-<environment>-*) "
            "and their count follows the catalogue (registry and services shards) and its regions, in any of which "
            "they are this environment's.",
        )
    promotion = cicd.promotion_policy
    if promotion is not None:
        source = promoted_from
        assert source is not None
        account = source.account or "<AWS::AccountId>"
        ledger.acknowledge(
            descendant(promotion, "Resource"),
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecr:{source.region}:{account}:repository/"
            f"{source.name_prefix}/*]",
            f"Read-only (BatchGetImage, DescribeImages, GetDownloadUrlForLayer) on the repositories of "
            f"{source.environment}, the environment this one promotes images from: the prefix is that environment's "
            "own (<project>-<environment>/), which only its registry stacks create. The list of their ARNs grows "
            "with the catalogue, and beside this environment's own repositories it would not fit a managed "
            "policy's 6,144 characters (a policy per registry shard would pass the role's 10 managed policies).",
        )


def _aws_managed(policy: str) -> str:
    return f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy}]"


def _eks(stack: EksStack, ledger: Ledger) -> None:
    eks_requires = (
        "EKS requires this AWS managed policy for this role and AWS keeps it current with the service; "
        "a customer-managed copy would silently fall behind new EKS features."
    )
    ledger.acknowledge(descendant(stack, "Cluster/Role/Resource"), _aws_managed("AmazonEKSClusterPolicy"), eks_requires)
    for policy in ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly"):
        ledger.acknowledge(descendant(stack, "NodeRole/Resource"), _aws_managed(policy), eks_requires)
    ledger.acknowledge(descendant(stack, "VpcCniRole/Resource"), _aws_managed("AmazonEKS_CNI_Policy"), eks_requires)
    ledger.acknowledge(
        descendant(stack, "EbsCsiRole/Resource"), _aws_managed("service-role/AmazonEBSCSIDriverPolicy"), eks_requires
    )
    _eks_addon_policies(stack, ledger)
    if stack.karpenter is not None:
        _karpenter(stack, ledger, eks_requires)
    agent = descendant(stack, "CloudWatchAgentPolicy/Resource")
    ledger.acknowledge(
        agent,
        "AwsSolutions-IAM5[Resource::*]",
        "Actions without resource-level permissions (Service Authorization Reference): logs:DescribeLogGroups (a "
        "list), ec2:DescribeInstances/DescribeTags/DescribeVolumes (node metadata for the metrics' dimensions) and "
        "cloudwatch:PutMetricData, which is limited by condition to the ContainerInsights namespace.",
    )

    # The kubectl provider: CDK's own Lambda functions (handler and provider framework) that apply
    # manifests and Helm charts during deployment. Their code, runtime and roles are created inside
    # aws-cdk-lib and are not configurable through KubectlProviderOptions (their log groups are encrypted
    # by the stack: EksStack._kubectl_provider_logs).
    cdk_owned = (
        "Created by aws-cdk-lib's EKS kubectl provider, which exposes no option to change it; it runs only "
        "during deployments (CloudFormation custom resource), not as a workload."
    )
    handler = "Cluster/KubectlProvider/Handler"
    on_event = "Cluster/KubectlProvider/Provider/framework-onEvent"
    for path in (handler, on_event):
        role = descendant(stack, f"{path}/ServiceRole/Resource")
        ledger.acknowledge(role, _aws_managed("service-role/AWSLambdaBasicExecutionRole"), cdk_owned)
        ledger.acknowledge(role, _aws_managed("service-role/AWSLambdaVPCAccessExecutionRole"), cdk_owned)
        inline = descendant(stack, f"{path}/ServiceRole/DefaultPolicy/Resource")
        function = descendant(stack, f"{path}/Resource")
        for pack in _COMPLIANCE_PACKS:
            ledger.acknowledge(inline, f"{pack}-IAMNoInlinePolicy", cdk_owned)
        for pack in ("NIST.800.53.R5", "HIPAA.Security"):
            ledger.acknowledge(
                function,
                f"{pack}-LambdaConcurrency",
                cdk_owned + " It runs once per deployment change; reserved concurrency would only cap deploys.",
            )
            ledger.acknowledge(
                function,
                f"{pack}-LambdaDLQ",
                cdk_owned + " It is invoked synchronously by CloudFormation, which reports failures itself.",
            )
    handler_role = descendant(stack, f"{handler}/ServiceRole/Resource")
    ledger.acknowledge(handler_role, _aws_managed("AmazonEC2ContainerRegistryReadOnly"), cdk_owned)
    ecr_public = (
        'AwsSolutions-IAM4[Policy::{"Fn::If":["ClusterKubectlProviderHandlerHasEcrPublic69E09706",'
        '{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":iam::aws:policy/AmazonElasticContainerRegistryPublicReadOnly"]]},'
        '{"Ref":"AWS::NoValue"}]}]'
    )
    ledger.acknowledge(handler_role, ecr_public, cdk_owned + " Helm pulls public charts from ECR Public.")
    ledger.acknowledge(
        descendant(stack, f"{handler}/Resource"),
        "AwsSolutions-L1",
        cdk_owned + " aws-cdk-lib pins the handler's Python runtime; it moves with aws-cdk-lib upgrades.",
    )
    ledger.acknowledge(
        descendant(stack, f"{on_event}/ServiceRole/DefaultPolicy/Resource"),
        "AwsSolutions-IAM5[Resource::<ClusterKubectlProviderHandler2E05C68A.Arn>:*]",
        cdk_owned + " The wildcard is the handler function's own versions and aliases (lambda:InvokeFunction).",
    )


def _service_log_groups(stack: Stack, ledger: Ledger) -> None:
    """aws-cdk-lib's AwsCustomResource function that creates or adopts the log groups EKS and RDS write to."""
    function = stack.node.try_find_child(AWS_CUSTOM_RESOURCE_FUNCTION)
    if function is None:
        return
    ledger.acknowledge(
        descendant(stack, "ServiceLogGroupProvider/Role/Resource"),
        _aws_managed("service-role/AWSLambdaVPCAccessExecutionRole"),
        "The function runs in the VPC's private subnets; AWS's managed policy is the documented set of network "
        "interface and log permissions a Lambda function in a VPC needs. Its own permissions are a separate "
        "managed policy naming only the service log groups of this stack.",
    )
    for group in [c for c in stack.node.children if isinstance(c, ServiceLogGroup)]:
        ledger.acknowledge(
            descendant(stack, "ServiceLogGroupProvider/Policy/Resource"),
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:"
            f"{group.name}:*]",
            "One log group, not a wildcard over groups: IAM evaluates CreateLogGroup, AssociateKmsKey, "
            "PutRetentionPolicy and DeleteLogGroup against log-group:<name>:log-stream:, which only the "
            "group's ARN with a trailing :* matches (CloudWatch Logs user guide, resource ARNs in IAM policies).",
        )
    _deploy_time_function(
        descendant(function, "Resource"),
        ledger,
        "aws-cdk-lib's AwsCustomResource function: CloudFormation invokes it only when this stack is deployed "
        "or deleted, to create or adopt a service log group and set its key and retention.",
    )


def _resource_tags_for_telemetry(stack: Stack, ledger: Ledger) -> None:
    """The policy of the custom resource that turns on CloudWatch's resource tags for telemetry."""
    policy = descendant(stack, "ResourceTagsForTelemetry/Policy/Resource")
    ledger.acknowledge(
        policy,
        "AwsSolutions-IAM5[Resource::*]",
        "StartTelemetryEnrichment switches on an account-level feature and names no resource; the Resource "
        "Explorer index and managed view it creates on the caller's behalf get ARNs AWS generates at that "
        "moment, so they cannot be listed beforehand. Only aws-cdk-lib's AwsCustomResource function holds "
        "this policy, and it runs only while CloudFormation deploys this stack.",
    )
    ledger.acknowledge(
        policy,
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:role/aws-service-role/*]",
        "iam:CreateServiceLinkedRole for the service-linked role the feature needs (CloudWatch user guide, "
        "'Enable resource tags on telemetry'); service-linked roles live only under aws-service-role/, where "
        "AWS alone defines what they may do.",
    )


def _deploy_time_function(function: IConstruct, ledger: Ledger, what: str) -> None:
    """A custom resource's function: it runs only while CloudFormation deploys or deletes its stack."""
    for pack in ("NIST.800.53.R5", "HIPAA.Security"):
        ledger.acknowledge(
            function,
            f"{pack}-LambdaConcurrency",
            what + " Reserved concurrency would only cap deploys, and cannot be set at all in accounts whose "
            "concurrency limit is below 100 (new accounts).",
        )
        ledger.acknowledge(
            function,
            f"{pack}-LambdaDLQ",
            what + " CloudFormation waits for its response and fails the deploy itself when it fails.",
        )


def _eks_addon_policies(stack: EksStack, ledger: Ledger) -> None:
    if stack.autoscaling == "cluster-autoscaler":
        _cluster_autoscaler(stack, ledger)
    _alb_controller(stack, ledger)


def _cluster_autoscaler(stack: EksStack, ledger: Ledger) -> None:
    autoscaler = descendant(stack, "ClusterAutoscalerPolicy/Resource")
    ledger.acknowledge(
        autoscaler,
        "AwsSolutions-IAM5[Resource::*]",
        "Auto Scaling groups of managed node groups are named by EKS at creation (eks-<group>-<uuid>), so the "
        "resize actions name no ARN; instead they are conditioned on the aws:ResourceTag keys EKS puts on this "
        "cluster's groups only. The Describe* actions in the same policy support no resource-level permissions.",
    )
    ledger.acknowledge(
        autoscaler,
        f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:eks:<AWS::Region>:<AWS::AccountId>:nodegroup/"
        f"{stack.cluster_name}/*]",
        "eks:DescribeNodegroup on this cluster's node groups only; the wildcard is the node group name and id, "
        "which EKS generates.",
    )


def _karpenter(stack: EksStack, ledger: Ledger, eks_requires: str) -> None:
    for policy in ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly"):
        ledger.acknowledge(descendant(stack, "Karpenter/NodeRole/Resource"), _aws_managed(policy), eks_requires)
    upstream = (
        "Karpenter's own controller policy (its v1.14.1 getting-started template), for this cluster and without "
        "the instance-profile actions it needs only when it manages profiles itself. Instances, volumes, "
        "network interfaces, fleets and launch templates get ids at launch, so they cannot be listed: creating "
        "them requires the request tags kubernetes.io/cluster/<cluster>=owned and eks:eks-cluster-name=<cluster>, "
        "and tagging or ending them requires the same tags on the resource. Images, snapshots, subnets and "
        "security groups are what an instance is launched from; the EKS AMI ids come from AWS's public SSM "
        "parameters under /aws/service/; iam:GetInstanceProfile (read-only) is upstream's scope, as Karpenter "
        "looks up the profile it would have made itself when an EC2NodeClass is deleted; Describe* (limited to "
        "this region by aws:RequestedRegion), pricing:GetProducts, iam:ListInstanceProfiles and the "
        "zonal-shift read (conditioned on this cluster) support no resource-level permissions."
    )
    document = controller_policy(
        cluster=stack.cluster_name,
        partition="<AWS::Partition>",
        region="<AWS::Region>",
        account="<AWS::AccountId>",
        node_role_arn="",
        queue_arn="",
        queue_key_arn="",
    )
    for resource in _wildcard_resources(document):
        ledger.acknowledge(
            descendant(stack, "Karpenter/ControllerPolicy/Resource"),
            f"AwsSolutions-IAM5[Resource::{resource}]",
            upstream,
        )


def _wildcard_resources(document: dict[str, Any]) -> list[str]:
    """The resources of a policy document with a wildcard, as cdk-nag names them in its findings."""
    return sorted(
        {
            arn.replace("arn:aws:", "arn:<AWS::Partition>:", 1)
            for statement in document["Statement"]
            for arn in (statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]])
            if "*" in arn
        }
    )


def _alb_controller(stack: EksStack, ledger: Ledger) -> None:
    alb = "AlbController/alb-sa/Role/DefaultPolicy/Resource"
    upstream = (
        "The AWS Load Balancer Controller's own IAM policy for the pinned version, as published upstream and "
        "shipped by aws-cdk-lib, narrowed to this region and account. Load balancers, target groups, listeners "
        "and security groups are created at run time with generated names, so resources cannot be listed; "
        "every mutating statement is conditioned on the elbv2.k8s.aws/cluster tag the controller puts on what "
        "it owns, and the Describe* calls support no resource-level permissions."
    )
    # The finding ids name each wildcard resource as cdk-nag renders it: partition, region and account
    # are pseudo parameters in the template (never literals), so the ids hold for any account and region.
    policy = alb_controller_policy(region="<AWS::Region>", account="<AWS::AccountId>")
    for resource in _wildcard_resources(policy):
        ledger.acknowledge(descendant(stack, alb), f"AwsSolutions-IAM5[Resource::{resource}]", upstream)
    inline = (
        "aws_eks_v2.AlbController attaches the controller's policy to its service-account role with "
        "addToPrincipalPolicy, which CDK renders as the role's default inline policy; the role serves only "
        "kube-system/aws-load-balancer-controller."
    )
    for pack in _COMPLIANCE_PACKS:
        ledger.acknowledge(descendant(stack, alb), f"{pack}-IAMNoInlinePolicy", inline)


def acknowledge_cache(stack: CacheStack, ledger: Ledger, *, retained: bool) -> None:
    group = stack.valkey.node.try_find_child("ReplicationGroup")
    if group is None:  # Serverless: cdk-nag 3 has no rule for it (our own rules cover it, ADR 0004)
        return
    ledger.acknowledge(
        group,
        "AwsSolutions-AEC6",
        "Clients authenticate as their own IAM-authenticated user of the cache's user group (RBAC), with a "
        "token signed by their IRSA role that expires in 15 minutes; the default user is switched off. An AUTH "
        "token, which this rule looks for, would be one long-lived password shared by every client.",
    )
    if not retained:
        for pack in ("NIST.800.53.R5", "HIPAA.Security"):
            ledger.acknowledge(
                group,
                f"{pack}-ElastiCacheRedisClusterAutomaticBackup",
                "Non-production environments are destroyable by design (see docs/operations.md): "
                "the cache and its snapshots go with the stack, and its contents can be rebuilt. Production "
                "retains the cache and the settings refuse fewer than 15 days of its snapshots there.",
            )


def _database(stack: DatabaseStack, ledger: Ledger) -> None:
    if stack.users is not None:
        _database_users(stack, ledger)
    if stack.users is not None and stack.writer_region != stack.region:
        _writer_away(stack, ledger)
    secondary = stack.global_membership is not None and not stack.global_membership.primary
    cluster_level = (
        "Aurora DB instances hold no data of their own: storage and backups belong to the cluster. The "
        "cluster has continuous automated backups with point-in-time recovery over the configured retention, "
        "and in production the cluster itself is selected by an AWS Backup plan (daily, encrypted vault kept "
        "when the stack is deleted). AWS Backup cannot select an Aurora instance, which is what this rule "
        "looks for."
    )
    if secondary:
        cluster_level = (
            "Aurora DB instances hold no data of their own, and this cluster is a read-only secondary of a "
            "global database: its storage is a copy of the primary cluster's, whose automated backups "
            "(point-in-time recovery) and, in production, AWS Backup plan (daily, retained vault) are taken in "
            "the primary region (where the stacks of the environment's first region keep them after a "
            "switchover too: docs/regions.md, 'Switchover and failover'). AWS Backup cannot select an Aurora instance, "
            "which is what this rule looks for."
        )
    for instance in stack.cluster.node.children:
        if not isinstance(instance, Construct) or instance.node.id not in _instance_ids(stack):
            continue
        resource = instance.node.find_child("Resource")
        for pack in ("NIST.800.53.R5", "HIPAA.Security"):
            ledger.acknowledge(resource, f"{pack}-RDSInBackupPlan", cluster_level)
    _database_protection(stack, ledger)


def _database_users(stack: DatabaseStack, ledger: Ledger) -> None:
    ledger.acknowledge(
        descendant(stack, "Users/Role/Resource"),
        _aws_managed("service-role/AWSLambdaVPCAccessExecutionRole"),
        "The function runs in the VPC's private subnets; AWS's managed policy is the documented set of network "
        "interface and log permissions a Lambda function in a VPC needs. Its own permissions are a separate "
        "managed policy: the Data API on this cluster, the master secret and its key through Secrets Manager.",
    )
    _deploy_time_function(
        descendant(stack, "Users/Function/Resource"),
        ledger,
        "The database users function: CloudFormation invokes it only when the database stack is deployed, to "
        "create a service's PostgreSQL role and schema (ADR 0009).",
    )


def _writer_away(stack: DatabaseStack, ledger: Ledger) -> None:
    """After a switchover: the writer of the global database is in another region than this stack's."""
    writer, home = stack.writer_region, stack.region
    paused = (
        f"Rotation is paused while the global database's writer is in {writer}: Secrets Manager rotates a "
        f"secret in its own region ({home}), and the single-user rotation function runs here, in this VPC, "
        f"which has no route to the writer's VPC in {writer} (the regions are not connected, by design: ADR "
        f"0011). It resumes when database.writer_region is set back to {home} after switching back (docs/regions.md, "
        "'Switchover and failover'); the password stays valid meanwhile."
    )
    secret = descendant(stack, "Cluster/Secret/Resource")
    ledger.acknowledge(secret, "AwsSolutions-SMG4", paused)
    for pack in ("NIST.800.53.R5", "HIPAA.Security"):
        ledger.acknowledge(secret, f"{pack}-SecretsManagerRotationEnabled", paused)
    ledger.acknowledge(
        descendant(stack, "Users/Policy/Resource"),
        f"AwsSolutions-IAM5[Resource::arn:aws:kms:{writer}:<AWS::AccountId>:key/*]",
        f"kms:Decrypt of the master secret's copy in {writer} only through Secrets Manager there "
        "(kms:ViaService) and only with the key whose alias is the one the environment's network stack in "
        f"{writer} gives it (kms:ResourceAliases): its key id is generated in that region, and naming it here "
        "would take a reference from this stack into one that waits for it.",
    )


def _database_protection(stack: DatabaseStack, ledger: Ledger) -> None:
    if not stack.deletion_protection:
        destroyable = (
            "Non-production environments are destroyable by design (see docs/operations.md): "
            "`cdk destroy` must remove the database with the rest. Production sets deletion protection, a "
            "snapshot on delete and termination protection; the settings refuse to turn them off there."
        )
        cluster = descendant(stack, "Cluster/Resource")
        ledger.acknowledge(cluster, "AwsSolutions-RDS10", destroyable)
        for pack in ("NIST.800.53.R5", "HIPAA.Security"):
            ledger.acknowledge(cluster, f"{pack}-RDSInstanceDeletionProtectionEnabled", destroyable)
    monitoring = stack.cluster.node.try_find_child("MonitoringRole")
    if monitoring is not None:
        ledger.acknowledge(
            monitoring.node.find_child("Resource"),
            _aws_managed("service-role/AmazonRDSEnhancedMonitoringRole"),
            "RDS enhanced monitoring assumes this role with its AWS service-role policy, which only lets RDS "
            "write OS metrics to the RDSOSMetrics log group; AWS maintains it with the monitoring agent.",
        )
    if stack.backup_plan is not None:
        ledger.acknowledge(
            descendant(stack, "BackupPlan/Cluster/Role/Resource"),
            _aws_managed("service-role/AWSBackupServiceRolePolicyForBackup"),
            "AWS Backup's own service-role policy for taking and copying snapshots of the selected resources; "
            "AWS keeps it in step with the services AWS Backup supports. Only the Aurora cluster is selected.",
        )


def _instance_ids(stack: DatabaseStack) -> set[str]:
    return {"writer", *(f"reader{i + 1}" for i in range(stack.readers))}


def acknowledge_network(network: NetworkStack, ledger: Ledger) -> None:
    reason = (
        "Public subnets exist to hold the internet-facing load balancers and the NAT gateways; their "
        "0.0.0.0/0 route to the internet gateway is what makes them public. No workload runs in them: "
        "instances launch without public IPs, nodes and data live in private and isolated subnets."
    )
    zones = (
        "Zone names are written into the template by design (ADR 0001, ADR 0006): synth runs offline with no "
        "lookup, and the VPC needs concrete zones, so they follow from the region and network.zones through "
        "a dated table of each region's zones, checked when the settings load."
    )
    for subnet in [*network.vpc.public_subnets, *network.vpc.private_subnets, *network.vpc.isolated_subnets]:
        cfn_subnet = subnet.node.default_child
        assert cfn_subnet is not None
        ledger.acknowledge(cfn_subnet, "CloudFormation-Validate::W3010", zones)
    for subnet in network.vpc.public_subnets:
        route = subnet.node.find_child("DefaultRoute")
        for pack in _COMPLIANCE_PACKS:
            ledger.acknowledge(route, f"{pack}-VPCNoUnrestrictedRouteToIGW", reason)
