"""Karpenter (``eks.autoscaling: karpenter``): its nodes' role and instance profile, the interruption queue
and the EventBridge rules that feed it, the controller's role through EKS Pod Identity, its two charts (CRDs,
controller) and the NodePool and EC2NodeClass the settings describe.

The policy is Karpenter's own (its getting-started CloudFormation template, v1.14.1), narrowed: the
instance profile is made here and named in the EC2NodeClass (``spec.instanceProfile``), so the controller
gets none of the IAM actions with which it would create, tag and delete instance profiles itself; it may
pass only its nodes' role and read only its own queue, under the queue's key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, cast

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config.settings import KarpenterSettings
from infra.constructs.encryption_key import EncryptionKey
from infra.stacks.eks_addons import KARPENTER, KARPENTER_CRD, HelmAddon


class Host(Protocol):
    """What Karpenter needs of the EKS stack it is built in (infra/stacks/eks.py's ``EksStack``)."""

    cluster: eks.Cluster
    cluster_name: str
    pod_identity_agent: eks.CfnAddon | None
    associations: dict[str, eks.CfnPodIdentityAssociation]

    def add_helm_addon(
        self,
        addon: HelmAddon,
        *,
        user_values: Mapping[str, Any],
        computed: Mapping[str, Any],
        skip_crds: bool = False,
    ) -> eks.HelmChart: ...

    def pod_identity_role(
        self,
        construct_id: str,
        *,
        namespace: str,
        service_account: str,
        description: str,
        managed_policies: list[iam.IManagedPolicy] | None = None,
        association: bool = True,
        scope: Construct | None = None,
    ) -> iam.Role: ...


KARPENTER_SERVICE_ACCOUNT = "karpenter"
NODE_CLASS = "default"
NODE_POOL = "default"

# What reaches the interruption queue: Karpenter's getting-started template (v1.14.1), rule by rule. With
# them Karpenter drains a node before EC2 reclaims it (Spot), retires it (scheduled change) or rebalances.
INTERRUPTION_EVENTS: dict[str, dict[str, list[str]]] = {
    "ScheduledChangeRule": {"source": ["aws.health"], "detail-type": ["AWS Health Event"]},
    "SpotInterruptionRule": {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]},
    "RebalanceRule": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"]},
    "InstanceStateChangeRule": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]},
    "CapacityReservationInterruptionRule": {
        "source": ["aws.ec2"],
        "detail-type": ["EC2 Capacity Reservation Instance Interruption Warning"],
    },
}

# Karpenter's volumes: AL2023 boots from one; Bottlerocket has a small OS volume and a data volume for
# images and pods (Karpenter's defaults for the family, with the size from settings).
_ROOT_DEVICES: dict[str, list[tuple[str, int | None]]] = {
    "al2023": [("/dev/xvda", None)],
    "bottlerocket": [("/dev/xvda", 4), ("/dev/xvdb", None)],
}


def interruption_queue_name(cluster_name: str) -> str:
    """The interruption queue's name (its dead-letter queue adds ``-dead-letters``)."""
    return f"{cluster_name}-karpenter-interruptions"


class Karpenter(Construct):
    """Everything Karpenter needs, beside the managed node group that runs it."""

    def __init__(
        self,
        stack: Host,
        construct_id: str,
        *,
        settings: KarpenterSettings,
        vpc: ec2.IVpc,
        private_subnets: ec2.SubnetSelection,
        workload_security_group: ec2.ISecurityGroup,
        user_values: Mapping[str, Any],
        alias_prefix: str,
    ) -> None:
        super().__init__(cast(Construct, stack), construct_id)
        self.stack = stack
        # jsii's Python stubs miss a protocol member on Cluster; it is an ICluster at runtime.
        self.cluster = cast(eks.ICluster, stack.cluster)
        self.settings = settings
        self.node_role = self._node_role()
        self.queue = self._interruption_queue(alias_prefix=alias_prefix)
        self.controller_role = stack.pod_identity_role(
            "ControllerRole",
            namespace=KARPENTER.namespace,
            service_account=KARPENTER_SERVICE_ACCOUNT,
            description=f"Karpenter controller of {stack.cluster_name} through EKS Pod Identity",
            managed_policies=[self._controller_policy()],
            scope=self,
        )
        self.charts = self._charts(user_values)
        subnets = vpc.select_subnets(subnet_group_name=private_subnets.subnet_group_name).subnet_ids
        self.node_class = self._node_class(subnets, workload_security_group)
        self.node_pool = self._node_pool()

    def _node_role(self) -> iam.Role:
        """The role of Karpenter's nodes, its instance profile and its access entry (EC2_LINUX: the nodes'
        kubelet joins the cluster with it; Bottlerocket is Linux too)."""
        role = iam.Role(
            self,
            "NodeRole",
            description="Nodes Karpenter launches: join the cluster and pull images; pods never use this role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("AmazonEKSWorkerNodePolicy"),
                iam.ManagedPolicy.from_aws_managed_policy_name("AmazonEC2ContainerRegistryPullOnly"),
            ],
        )
        self.instance_profile = iam.CfnInstanceProfile(self, "InstanceProfile", roles=[role.role_name])
        self.access_entry = eks.AccessEntry(
            self,
            "NodeAccess",
            cluster=self.cluster,
            principal=role.role_arn,
            access_entry_type=eks.AccessEntryType.EC2_LINUX,
            access_policies=[],
        )
        return role

    def _interruption_queue(self, *, alias_prefix: str) -> sqs.Queue:
        """The queue EventBridge puts interruption events on, under a key of its own, TLS only; a message is
        worth nothing after the two-minute notice, so it is kept five minutes (Karpenter's template)."""
        # Not retained with the stack, even in production: it protects events worth nothing after minutes.
        self.queue_key = EncryptionKey(
            self, "QueueKey", alias_prefix=alias_prefix, purpose="karpenter-interruptions", retain=False
        ).key
        # Messages Karpenter received five times without deleting them (it could not handle them): kept four
        # days for a look, and alarmed on (observability stack).
        self.dead_letters = sqs.Queue(
            self,
            "InterruptionDeadLetters",
            queue_name=f"{interruption_queue_name(self.stack.cluster_name)}-dead-letters",
            retention_period=Duration.days(4),
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.queue_key,
            enforce_ssl=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        queue = sqs.Queue(
            self,
            "InterruptionQueue",
            # Named, so the alarms (observability stack) find it by name; nothing holds on to its messages.
            queue_name=interruption_queue_name(self.stack.cluster_name),
            retention_period=Duration.minutes(5),
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.queue_key,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=5, queue=self.dead_letters),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.rules = {
            name: events.Rule(
                self,
                name,
                description=f"{self.stack.cluster_name}: {pattern['detail-type'][0]} to Karpenter's queue",
                event_pattern=events.EventPattern(source=pattern["source"], detail_type=pattern["detail-type"]),
                # The target also lets EventBridge use the queue's key, for this account's events only.
                targets=[targets.SqsQueue(queue)],
            )
            for name, pattern in INTERRUPTION_EVENTS.items()
        }
        return queue

    def _controller_policy(self) -> iam.ManagedPolicy:
        """Karpenter's controller policy, scoped to this cluster's tags, its nodes' role and its queue."""
        return iam.ManagedPolicy(
            self,
            "ControllerPolicy",
            description=f"Karpenter of {self.stack.cluster_name}: launch and end this cluster's nodes only",
            document=iam.PolicyDocument.from_json(
                controller_policy(
                    cluster=self.stack.cluster_name,
                    partition=Aws.PARTITION,
                    region=Aws.REGION,
                    account=Aws.ACCOUNT_ID,
                    node_role_arn=self.node_role.role_arn,
                    queue_arn=self.queue.queue_arn,
                    queue_key_arn=self.queue_key.key_arn,
                )
            ),
        )

    def _charts(self, user_values: Mapping[str, Any]) -> list[eks.HelmChart]:
        """The CRD chart, then the controller's (its CRDs skipped: Helm never upgrades a chart's crds/, the
        separate chart does), each at the pinned version, as the EKS stack installs its Helm add-ons (after
        the nodes, CoreDNS and the load balancer controller's webhook)."""
        stack = self.stack
        crds = stack.add_helm_addon(KARPENTER_CRD, user_values={}, computed={})
        computed = {
            "settings": {"clusterName": stack.cluster_name, "interruptionQueue": self.queue.queue_name},
            "serviceAccount": {"create": True, "name": KARPENTER_SERVICE_ACCOUNT},
            # Pod Identity passes credentials, not the region, and the nodes' IMDSv2 hop limit of 1 keeps pods
            # from asking instance metadata for it: without it the controller exits at start.
            "controller": {"env": [{"name": "AWS_REGION", "value": Stack.of(self).region}]},
        }
        controller = stack.add_helm_addon(KARPENTER, user_values=user_values, computed=computed, skip_crds=True)
        # Its pods need credentials: the agent and the association exist before a pod starts (EKS injects the
        # credentials' address at pod creation).
        controller.node.add_dependency(
            crds, cast(eks.CfnAddon, stack.pod_identity_agent), stack.associations["ControllerRole"]
        )
        return [crds, controller]

    def _node_class(self, subnet_ids: list[str], workload_security_group: ec2.ISecurityGroup) -> eks.KubernetesManifest:
        """The EC2NodeClass: the AMI alias, the private subnets and the node groups' security groups by id,
        the instance profile made here, IMDSv2 with one hop, encrypted gp3 volumes."""
        settings = self.settings
        volumes = [
            {
                "deviceName": device,
                "ebs": {
                    "volumeSize": f"{size or settings.disk_size_gib}Gi",
                    "volumeType": "gp3",
                    "encrypted": True,
                    "deleteOnTermination": True,
                },
            }
            for device, size in _ROOT_DEVICES[settings.ami_family]
        ]
        manifest = eks.KubernetesManifest(
            self,
            "NodeClass",
            cluster=self.cluster,
            manifest=[
                {
                    "apiVersion": "karpenter.k8s.aws/v1",
                    "kind": "EC2NodeClass",
                    "metadata": {"name": NODE_CLASS},
                    "spec": {
                        "amiSelectorTerms": [{"alias": settings.ami_alias}],
                        "instanceProfile": self.instance_profile.ref,
                        "subnetSelectorTerms": [{"id": subnet} for subnet in subnet_ids],
                        "securityGroupSelectorTerms": [
                            {"id": workload_security_group.security_group_id},
                            {"id": self.cluster.cluster_security_group_id},
                        ],
                        # IMDSv2 only, one hop: containers cannot borrow the node role.
                        "metadataOptions": {
                            "httpEndpoint": "enabled",
                            "httpProtocolIPv6": "disabled",
                            "httpPutResponseHopLimit": 1,
                            "httpTokens": "required",
                        },
                        "blockDeviceMappings": volumes,
                    },
                }
            ],
        )
        # Created once the CRDs and the controller are there; deleted (its finalizer waits for Karpenter to
        # end its nodes) before them, and before the role and access entry its nodes use.
        manifest.node.add_dependency(*self.charts, self.access_entry)
        return manifest

    def _node_pool(self) -> eks.KubernetesManifest:
        """The NodePool: the instances, capacity types and limits of settings, consolidation and expiry."""
        settings = self.settings
        requirements = [
            ("karpenter.k8s.aws/instance-family", settings.instance_families),
            ("karpenter.k8s.aws/instance-size", settings.instance_sizes),
            ("karpenter.sh/capacity-type", list(settings.capacity_types)),
            ("kubernetes.io/arch", ["amd64"]),
            ("kubernetes.io/os", ["linux"]),
        ]
        manifest = eks.KubernetesManifest(
            self,
            "NodePool",
            cluster=self.cluster,
            manifest=[
                {
                    "apiVersion": "karpenter.sh/v1",
                    "kind": "NodePool",
                    "metadata": {"name": NODE_POOL},
                    "spec": {
                        "template": {
                            "spec": {
                                "requirements": [
                                    {"key": key, "operator": "In", "values": values} for key, values in requirements
                                ],
                                "nodeClassRef": {
                                    "group": "karpenter.k8s.aws",
                                    "kind": "EC2NodeClass",
                                    "name": NODE_CLASS,
                                },
                                "expireAfter": settings.expire_after,
                                "terminationGracePeriod": settings.termination_grace_period,
                            }
                        },
                        "limits": {"cpu": str(settings.max_vcpus), "memory": f"{settings.max_memory_gib}Gi"},
                        "disruption": {
                            "consolidationPolicy": settings.consolidation_policy,
                            "consolidateAfter": settings.consolidate_after,
                        },
                    },
                }
            ],
        )
        manifest.node.add_dependency(self.node_class)
        return manifest


# Resources an instance is launched into or from, created resources, and the tags Karpenter may set later.
_LAUNCHED_INTO = ("security-group", "subnet", "capacity-reservation", "placement-group")
_CREATED = ("fleet", "instance", "volume", "network-interface", "launch-template", "spot-instances-request")
_CREATE_ACTIONS = ["RunInstances", "CreateFleet", "CreateLaunchTemplate"]
_RETAGGED_KEYS = ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]


def controller_policy(
    *,
    cluster: str,
    partition: str,
    region: str,
    account: str,
    node_role_arn: str,
    queue_arn: str,
    queue_key_arn: str,
) -> dict[str, Any]:
    """Karpenter v1.14.1's controller policy (getting-started template: node lifecycle, IAM integration,
    EKS integration, interruption, zonal shift and resource discovery policies) for this cluster, without
    the instance-profile management it does not do here. Partition, region and account are the stack's
    pseudo parameters (or how cdk-nag writes them, for the acknowledgements)."""
    cluster_arn = f"arn:{partition}:eks:{region}:{account}:cluster/{cluster}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            *_node_lifecycle(cluster, f"arn:{partition}:ec2:{region}"),
            _allow(
                "AllowPassingInstanceRole",
                "iam:PassRole",
                node_role_arn,
                {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            ),
            # The garbage collector of instance profiles lists them whatever the EC2NodeClass says.
            _allow("AllowUnscopedInstanceProfileListAction", "iam:ListInstanceProfiles", "*"),
            # Upstream's scope: on deleting an EC2NodeClass Karpenter also looks up the profile it would have
            # made itself (<cluster>_<hash>), and an AccessDenied there would hold the finalizer for ever.
            _allow(
                "AllowInstanceProfileReadActions",
                "iam:GetInstanceProfile",
                f"arn:{partition}:iam::{account}:instance-profile/*",
            ),
            _allow("AllowAPIServerEndpointDiscovery", "eks:DescribeCluster", cluster_arn),
            _allow(
                "AllowInterruptionQueueActions",
                ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
                queue_arn,
            ),
            # The queue's messages are encrypted under its key.
            _allow("AllowInterruptionQueueDecryption", "kms:Decrypt", queue_key_arn),
            _allow(
                "AllowZonalShiftStatusReadOnly",
                "arc-zonal-shift:GetManagedResource",
                "*",
                {"StringEquals": {"arc-zonal-shift:ResourceIdentifier": cluster_arn}},
            ),
            # Describe calls support no resource-level permissions: limited to this region.
            _allow("AllowRegionalReadActions", _REGIONAL_READS, "*", {"StringEquals": {"aws:RequestedRegion": region}}),
            # The EKS-optimized AMIs' ids, from the public SSM parameters AWS publishes.
            _allow("AllowSSMReadActions", "ssm:GetParameter", f"arn:{partition}:ssm:{region}::parameter/aws/service/*"),
            # Prices, to pick the cheapest instance that fits: the Price List API has no resources.
            _allow("AllowPricingReadActions", "pricing:GetProducts", "*"),
        ],
    }


_REGIONAL_READS = [
    "ec2:DescribeCapacityReservations",
    "ec2:DescribeImages",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceStatus",
    "ec2:DescribeInstanceTypeOfferings",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplates",
    "ec2:DescribePlacementGroups",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSpotPriceHistory",
    "ec2:DescribeSubnets",
]


def _allow(
    sid: str, action: str | list[str], resource: str | list[str], condition: dict[str, Any] | None = None
) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


def _node_lifecycle(cluster: str, ec2_arn: str) -> list[dict[str, Any]]:
    """Launch, tag and end instances: what Karpenter creates carries this cluster's tags, and only what
    carries them may be tagged again or ended."""
    owned = {f"aws:ResourceTag/kubernetes.io/cluster/{cluster}": "owned"}
    request_tags = {
        f"aws:RequestTag/kubernetes.io/cluster/{cluster}": "owned",
        "aws:RequestTag/eks:eks-cluster-name": cluster,
    }
    nodepool = {"aws:ResourceTag/karpenter.sh/nodepool": "*"}
    new_nodepool = {"aws:RequestTag/karpenter.sh/nodepool": "*"}
    created = [f"{ec2_arn}:*:{kind}/*" for kind in _CREATED]
    launch = ["ec2:RunInstances", "ec2:CreateFleet"]
    return [
        _allow(
            "AllowScopedEC2InstanceAccessActions",
            launch,
            [f"{ec2_arn}::image/*", f"{ec2_arn}::snapshot/*"] + [f"{ec2_arn}:*:{kind}/*" for kind in _LAUNCHED_INTO],
        ),
        _allow(
            "AllowScopedEC2LaunchTemplateAccessActions",
            launch,
            f"{ec2_arn}:*:launch-template/*",
            {"StringEquals": owned, "StringLike": nodepool},
        ),
        _allow(
            "AllowScopedEC2InstanceActionsWithTags",
            [*launch, "ec2:CreateLaunchTemplate"],
            created,
            {"StringEquals": request_tags, "StringLike": new_nodepool},
        ),
        _allow(
            "AllowScopedResourceCreationTagging",
            "ec2:CreateTags",
            created,
            {"StringEquals": {**request_tags, "ec2:CreateAction": _CREATE_ACTIONS}, "StringLike": new_nodepool},
        ),
        _allow(
            "AllowScopedResourceTagging",
            "ec2:CreateTags",
            f"{ec2_arn}:*:instance/*",
            {
                "StringEquals": owned,
                "StringLike": nodepool,
                "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": cluster},
                "ForAllValues:StringEquals": {"aws:TagKeys": _RETAGGED_KEYS},
            },
        ),
        _allow(
            "AllowScopedDeletion",
            ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
            [f"{ec2_arn}:*:instance/*", f"{ec2_arn}:*:launch-template/*"],
            {"StringEquals": owned, "StringLike": nodepool},
        ),
    ]
