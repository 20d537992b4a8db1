"""EKS stack: the cluster, its managed node group, core add-ons, access entries and in-cluster add-ons."""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from aws_cdk import Aws, CfnOutput, CfnResource, Fn, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config.helm_values import layered_values
from infra.config.settings import EksSettings, ObservabilitySettings, SettingsError, support_dates
from infra.config.subnets import PRIVATE as PRIVATE_SUBNETS
from infra.constructs.encryption_key import EncryptionKey
from infra.constructs.irsa import service_account_condition
from infra.constructs.log_retention import log_key, retention
from infra.constructs.pod_identity import POD_IDENTITY_AGENT_ADDON, POD_IDENTITY_PRINCIPAL, pod_identity_trust
from infra.constructs.removal import kept_if
from infra.constructs.resource_tags_for_telemetry import LOAD_BALANCER_TAG, ResourceTagsForTelemetry
from infra.constructs.service_log_group import ServiceLogGroup
from infra.constructs.tree import descendant
from infra.stacks.base import PlatformStack
from infra.stacks.eks_addons import (
    ALB_CONTROLLER,
    CLUSTER_AUTOSCALER,
    CLUSTER_AUTOSCALER_IMAGE,
    EKS_MANAGED_ADDONS,
    KARPENTER,
    METRICS_SERVER,
    HelmAddon,
    eks_image_repository,
)
from infra.stacks.eks_karpenter import Karpenter

ALL_CONTROL_PLANE_LOGS = [
    eks.ClusterLoggingTypes.API,
    eks.ClusterLoggingTypes.AUDIT,
    eks.ClusterLoggingTypes.AUTHENTICATOR,
    eks.ClusterLoggingTypes.CONTROLLER_MANAGER,
    eks.ClusterLoggingTypes.SCHEDULER,
]


OIDC_ISSUER_OUTPUT = "OidcIssuer"
CLOUDWATCH_OBSERVABILITY_ADDON = "amazon-cloudwatch-observability"
CONTAINER_LOG_GROUPS = ("application", "dataplane", "host", "performance")
# On the Helm add-ons' pods with Pod Identity: a switch of eks.workload_identity restarts them.
WORKLOAD_IDENTITY_ANNOTATION = "cloud-ops/workload-identity"
# The add-on's agent and Fluent Bit run as this service account.
CLOUDWATCH_NAMESPACE = "amazon-cloudwatch"
CLOUDWATCH_SERVICE_ACCOUNT = "cloudwatch-agent"

# ARNs with a wildcard resource part carry the pseudo parameters (Aws.PARTITION, Aws.REGION,
# Aws.ACCOUNT_ID), never a literal account or region: the rule findings that name these ARNs, and
# so their acknowledgements, are then the same for every account and region synthesized for.

ALB_CONTROLLER_POLICY = (
    Path(__file__).resolve().parent / "policies" / f"aws-load-balancer-controller-v{ALB_CONTROLLER.version}.json"
)


def alb_controller_policy(*, region: str, account: str) -> dict[str, Any]:
    """The controller's upstream policy (as aws-cdk-lib ships it for this version) with its ARNs'
    ``*`` region and account replaced by this stack's: the controller manages load balancers,
    target groups and security groups of this account and region only."""
    policy: dict[str, Any] = json.loads(ALB_CONTROLLER_POLICY.read_text(encoding="utf-8"))
    for statement in policy["Statement"]:
        resources = statement["Resource"]
        narrowed = [
            _narrow(arn, region, account) for arn in (resources if isinstance(resources, list) else [resources])
        ]
        statement["Resource"] = narrowed if isinstance(resources, list) else narrowed[0]
    return policy


def _narrow(arn: str, region: str, account: str) -> str:
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[3] == "*" and parts[4] == "*":
        parts[3], parts[4] = region, account
    return ":".join(parts)


def kubectl_layer(scope: Construct, kubernetes_version: str) -> lambda_.ILayerVersion:
    """The kubectl/helm layer whose kubectl matches the cluster's minor version."""
    minor = kubernetes_version.split(".")[1]
    package = f"aws-cdk.lambda-layer-kubectl-v{minor}"
    try:
        module = importlib.import_module(f"aws_cdk.lambda_layer_kubectl_v{minor}")
    except ImportError:
        raise SettingsError(
            f"setting 'eks.kubernetes_version' = {kubernetes_version!r} needs the kubectl layer package "
            f"{package}, which is not installed: `make setup` installs the one requirements.txt pins for every "
            f"accepted version (kubectl supports one minor version of skew, so the layer must match the "
            f"cluster). EKS versions: {support_dates()}"
        ) from None
    layer: lambda_.ILayerVersion = getattr(module, f"KubectlV{minor}Layer")(scope, "KubectlLayer")
    return layer


class EksStack(PlatformStack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        workload_security_group: ec2.ISecurityGroup,
        zones: list[str],
        eks_settings: EksSettings,
        name_prefix: str,
        retain_data: bool,
        addon_values: Mapping[str, Mapping[str, Any]],
        observability: ObservabilitySettings,
        **kwargs: Any,
    ) -> None:
        """Each part builds straight into this stack (no construct scope of its own, so the logical ids
        are the construct ids), in this order: the template lists resources in the order they are created."""
        super().__init__(scope, construct_id, zones=zones, **kwargs)
        private_subnets = ec2.SubnetSelection(subnet_group_name=PRIVATE_SUBNETS)
        self.kubernetes_version = eks_settings.kubernetes_version
        self.autoscaling = eks_settings.autoscaling
        # Add-ons and services get their credentials through Pod Identity or IRSA (eks.workload_identity);
        # Karpenter's controller always through Pod Identity, so the agent runs with either.
        self.pod_identity = eks_settings.workload_identity == "pod-identity"
        self.pod_identity_agent: eks.CfnAddon | None = None
        self.associations: dict[str, eks.CfnPodIdentityAssociation] = {}
        self._cluster_and_access(
            vpc=vpc,
            private_subnets=private_subnets,
            eks_settings=eks_settings,
            name_prefix=name_prefix,
            retain_data=retain_data,
            function_log_retention_days=observability.function_log_retention_days,
        )
        self._core_service_accounts()
        self._core_addons()
        self._nodes(eks_settings, workload_security_group=workload_security_group, private_subnets=private_subnets)
        self._storage_and_charts(addon_values)
        self.karpenter = (
            Karpenter(
                self,
                "Karpenter",
                settings=eks_settings.karpenter,
                vpc=vpc,
                private_subnets=private_subnets,
                workload_security_group=workload_security_group,
                user_values=addon_values.get(KARPENTER.name, {}),
                alias_prefix=name_prefix,
            )
            if eks_settings.karpenter is not None
            else None
        )
        self.cloudwatch_addon = self._container_insights(observability, retain=retain_data, alias_prefix=name_prefix)
        self._outputs()

    def _cluster_and_access(
        self,
        *,
        vpc: ec2.IVpc,
        private_subnets: ec2.SubnetSelection,
        eks_settings: EksSettings,
        name_prefix: str,
        retain_data: bool,
        function_log_retention_days: int,
    ) -> None:
        """The cluster with what it needs before it exists (its secrets key, its control-plane log group),
        its admins' access entries and the nodes' role (created here, before the add-ons' service accounts,
        because the template lists resources in creation order)."""
        self.secrets_key = EncryptionKey(
            self, "SecretsKey", alias_prefix=name_prefix, purpose="eks-secrets", retain=retain_data
        ).key
        # An explicit name: EKS writes control-plane logs to /aws/eks/<name>/cluster, which this stack
        # creates first (encrypted, with retention), and the autoscaler discovers nodes by it.
        self.cluster_name = name_prefix
        self.log_group = ServiceLogGroup(
            self,
            "ControlPlaneLogGroup",
            name=f"/aws/eks/{self.cluster_name}/cluster",
            key_id="ControlPlaneLogKey",
            purpose="eks-logs",
            alias_prefix=name_prefix,
            retention_days=eks_settings.control_plane_log_retention_days,
            function_log_retention_days=function_log_retention_days,
            retain=retain_data,
            vpc=vpc,
            subnets=private_subnets,
        )
        self.log_key = self.log_group.key
        # The load balancer alarms filter by the tag the controller puts on its load balancers.
        self.resource_tags_for_telemetry = ResourceTagsForTelemetry(
            self,
            "ResourceTagsForTelemetry",
            vpc=vpc,
            subnets=private_subnets,
            alias_prefix=name_prefix,
            retain=retain_data,
            function_log_retention_days=function_log_retention_days,
        )
        self.cluster = self._cluster(vpc=vpc, private_subnets=private_subnets, eks_settings=eks_settings)
        self.cluster.node.add_dependency(self.log_group)
        self._kubectl_provider_logs(
            alias_prefix=name_prefix, retain=retain_data, retention_days=function_log_retention_days
        )
        admin = eks.AccessPolicy.from_access_policy_name(
            "AmazonEKSClusterAdminPolicy", access_scope_type=eks.AccessScopeType.CLUSTER
        )
        for index, role in enumerate(eks_settings.admin_roles):
            arn = role if role.startswith("arn:") else self.iam_arn("role", role)
            self.cluster.grant_access(f"Admin{index}", arn, [admin])

        self.node_role = iam.Role(
            self,
            "NodeRole",
            description="EKS worker nodes: join the cluster and pull images; pods use IRSA, never this role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("AmazonEKSWorkerNodePolicy"),
                iam.ManagedPolicy.from_aws_managed_policy_name("AmazonEC2ContainerRegistryPullOnly"),
            ],
        )

    def _cluster(
        self, *, vpc: ec2.IVpc, private_subnets: ec2.SubnetSelection, eks_settings: EksSettings
    ) -> eks.Cluster:
        """The control plane: private subnets, every log type, secrets encrypted, admins only by access entry."""
        cidrs = eks_settings.endpoint.public_access_cidrs
        endpoint = eks.EndpointAccess.PUBLIC_AND_PRIVATE.only_from(*cidrs) if cidrs else eks.EndpointAccess.PRIVATE
        return eks.Cluster(
            self,
            "Cluster",
            cluster_name=self.cluster_name,
            version=eks.KubernetesVersion.of(eks_settings.kubernetes_version),
            vpc=vpc,
            vpc_subnets=[private_subnets],
            default_capacity_type=eks.DefaultCapacityType.NODEGROUP,
            default_capacity=0,
            # vpc-cni, kube-proxy and coredns are EKS managed add-ons below, with pinned versions,
            # instead of the unmanaged copies EKS would otherwise install.
            bootstrap_self_managed_addons=False,
            cluster_logging=ALL_CONTROL_PLANE_LOGS,
            secrets_encryption_key=self.secrets_key,
            endpoint_access=endpoint,
            # Admins are the roles in settings, never implicitly whoever ran `cdk deploy`.
            bootstrap_cluster_creator_admin_permissions=False,
            kubectl_provider_options=eks.KubectlProviderOptions(
                kubectl_layer=kubectl_layer(self, eks_settings.kubernetes_version),
                private_subnets=vpc.select_subnets(subnet_group_name=PRIVATE_SUBNETS).subnets,
            ),
            output_config_command=False,
        )

    # The kubectl provider's two functions (aws-cdk-lib's handler and its provider framework), each
    # with the log group aws-cdk-lib gives it: /aws/lambda/<generated name>, unencrypted, two years,
    # always retained. KubectlProviderOptions has no option for them.
    KUBECTL_PROVIDER_LOG_GROUPS = ("Handler/LogGroup/Resource", "Provider/framework-onEvent/LogGroup/Resource")

    def _kubectl_provider_logs(self, *, alias_prefix: str, retain: bool, retention_days: int) -> None:
        """The kubectl provider's log groups as every other function's of the platform: encrypted with a key
        of their own, the settings' retention, and kept only where the environment keeps its data."""
        provider = self.cluster.node.find_child("KubectlProvider")
        # Their names are generated (the functions'): the key admits the account's Lambda log groups.
        key = log_key(
            self,
            "KubectlProviderLogKey",
            purpose="kubectl-provider-logs",
            alias_prefix=alias_prefix,
            retain=retain,
            log_group_name="/aws/lambda/*",
        )
        for path in self.KUBECTL_PROVIDER_LOG_GROUPS:
            group = cast(logs.CfnLogGroup, descendant(provider, path))
            group.kms_key_id = key.key_arn
            group.retention_in_days = retention_days
            group.apply_removal_policy(kept_if(retain))

    def _core_service_accounts(self) -> None:
        """Roles of the core add-ons that call AWS: the VPC CNI (always IRSA) and the EBS CSI driver."""
        # The VPC CNI gets its ENI permissions through IRSA rather than through the node role,
        # so no pod can inherit them from the node (EKS Best Practices, "Use IRSA for the CNI"). It stays
        # on IRSA with Pod Identity too: aws-node must assign addresses before any other pod, the Pod
        # Identity agent's among them, is networked (IRSA needs nothing running in the cluster).
        self.vpc_cni_role = self.irsa_role(
            "VpcCniRole",
            namespace="kube-system",
            service_account="aws-node",
            description="Amazon VPC CNI (aws-node) through IRSA",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("AmazonEKS_CNI_Policy")],
        )
        self.ebs_csi_role = self.workload_role(
            "EbsCsiRole",
            namespace="kube-system",
            service_account="ebs-csi-controller-sa",
            description="Amazon EBS CSI driver controller",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonEBSCSIDriverPolicy")],
        )

    def _core_addons(self) -> None:
        """The EKS managed add-ons: pod networking, kube-proxy, CoreDNS and the EBS CSI driver."""
        versions = EKS_MANAGED_ADDONS[self.kubernetes_version]
        self.managed_addons = {
            name: eks.CfnAddon(
                self,
                construct_id,
                addon_name=name,
                # None: EKS's default version for the cluster's minor (no documented pin to confirm).
                addon_version=versions[name],
                cluster_name=self.cluster.cluster_name,
                **self._addon_identity(role, account, pod_identity=pod_identity),
                configuration_values=json.dumps(config) if config else None,
                # EKS owns these add-ons' configuration; a manual edit is overwritten on update.
                resolve_conflicts="OVERWRITE",
                preserve_on_delete=False,
            )
            for name, construct_id, role, account, pod_identity, config in (
                # The VPC CNI enforces Kubernetes NetworkPolicies (the service chart ships one):
                # without this they would be accepted and silently ignored.
                ("vpc-cni", "VpcCniAddon", self.vpc_cni_role, "aws-node", False, {"enableNetworkPolicy": "true"}),
                ("kube-proxy", "KubeProxyAddon", None, None, False, None),
                ("coredns", "CoreDnsAddon", None, None, False, None),
                (
                    "aws-ebs-csi-driver",
                    "EbsCsiAddon",
                    self.ebs_csi_role,
                    "ebs-csi-controller-sa",
                    self.pod_identity,
                    None,
                ),
            )
        }
        if self.pod_identity or self.autoscaling == "karpenter":
            # A DaemonSet, like kube-proxy: in place before the nodes join, so that every node runs it
            # before a pod that needs credentials starts there.
            self.pod_identity_agent = eks.CfnAddon(
                self,
                "PodIdentityAgentAddon",
                addon_name=POD_IDENTITY_AGENT_ADDON,
                addon_version=versions[POD_IDENTITY_AGENT_ADDON],
                cluster_name=self.cluster.cluster_name,
                resolve_conflicts="OVERWRITE",
                preserve_on_delete=False,
            )
            self.managed_addons[POD_IDENTITY_AGENT_ADDON] = self.pod_identity_agent
            self.managed_addons["aws-ebs-csi-driver"].node.add_dependency(self.pod_identity_agent)

    def _identity_annotation(self) -> dict[str, Any]:
        """Pod annotations of the Helm add-ons whose credentials eks.workload_identity decides: with Pod
        Identity, one naming it, so that switching either way changes their pod template and restarts them
        (a pod keeps the credentials it started with, which the switched trust no longer accepts)."""
        return {"podAnnotations": {WORKLOAD_IDENTITY_ANNOTATION: "pod-identity"}} if self.pod_identity else {}

    @staticmethod
    def _addon_identity(role: iam.Role | None, account: str | None, *, pod_identity: bool) -> dict[str, Any]:
        """An EKS add-on's role: by its IRSA annotation, or by a Pod Identity association EKS makes."""
        if role is None or account is None:
            return {}
        if pod_identity:
            return {
                "pod_identity_associations": [
                    eks.CfnAddon.PodIdentityAssociationProperty(role_arn=role.role_arn, service_account=account)
                ]
            }
        return {"service_account_role_arn": role.role_arn}

    def _nodes(
        self,
        eks_settings: EksSettings,
        *,
        workload_security_group: ec2.ISecurityGroup,
        private_subnets: ec2.SubnetSelection,
    ) -> None:
        """The managed node group, its launch template, and its place between the core add-ons."""
        self.launch_template = self._node_launch_template(
            eks_settings.node_group.disk_size_gib, workload_security_group=workload_security_group
        )
        node_group = eks_settings.node_group
        self.nodegroup = self.cluster.add_nodegroup_capacity(
            "Nodes",
            ami_type=eks.NodegroupAmiType.AL2023_X86_64_STANDARD,
            capacity_type=eks.CapacityType.SPOT if node_group.capacity_type == "spot" else eks.CapacityType.ON_DEMAND,
            instance_types=[ec2.InstanceType(name) for name in node_group.instance_types],
            min_size=node_group.min_size,
            desired_size=node_group.desired_size,
            max_size=node_group.max_size,
            subnets=private_subnets,
            node_role=self.node_role,
            launch_template_spec=eks.LaunchTemplateSpec(
                id=self.launch_template.launch_template_id or "",
                version=self.launch_template.latest_version_number,
            ),
            # EKS tags the group's Auto Scaling group with these same two keys; the autoscaler
            # discovers it by them and its IAM policy only touches groups carrying them.
            tags={
                "k8s.io/cluster-autoscaler/enabled": "true",
                f"k8s.io/cluster-autoscaler/{self.cluster_name}": "owned",
            },
        )
        # The group's Kubernetes version is the cluster's (or one behind, eks.node_group.kubernetes_version):
        # a version change in settings updates the control plane, then (this group depends on the cluster
        # and on the networking add-ons) rolls the nodes onto the new minor's AMI, in place
        # (AWS::EKS::Nodegroup Version: no interruption).
        cast(eks.CfnNodegroup, self.nodegroup.node.default_child).add_property_override(
            "Version", eks_settings.node_version
        )
        # Nodes join once pod networking is in place; DNS and the CSI driver need nodes to run on.
        self.nodegroup.node.add_dependency(self.managed_addons["vpc-cni"], self.managed_addons["kube-proxy"])
        if self.pod_identity_agent is not None:
            self.nodegroup.node.add_dependency(self.pod_identity_agent)
        for name in ("coredns", "aws-ebs-csi-driver"):
            self.managed_addons[name].node.add_dependency(self.nodegroup)

    def _node_launch_template(
        self, disk_size_gib: int, *, workload_security_group: ec2.ISecurityGroup
    ) -> ec2.LaunchTemplate:
        """IMDSv2 only, an encrypted gp3 root volume, the workload and cluster security groups."""
        launch_template = ec2.LaunchTemplate(
            self,
            "NodeLaunchTemplate",
            # IMDSv2 only, one hop: containers cannot reach the metadata service to borrow the node role.
            require_imdsv2=True,
            # The workload group is what the data stores admit. Naming groups here replaces the
            # cluster security group EKS would attach, so it is added back below.
            security_group=workload_security_group,
            http_put_response_hop_limit=1,
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(
                        disk_size_gib,
                        volume_type=ec2.EbsDeviceVolumeType.GP3,
                        encrypted=True,
                        delete_on_termination=True,
                    ),
                )
            ],
        )
        launch_template.add_security_group(
            ec2.SecurityGroup.from_security_group_id(
                self, "ClusterSecurityGroup", self.cluster.cluster_security_group_id, mutable=False
            )
        )
        return launch_template

    def _storage_and_charts(self, addon_values: Mapping[str, Mapping[str, Any]]) -> None:
        """The default storage class, then the Helm add-ons: load balancer controller, metrics server,
        cluster autoscaler (with its IRSA role)."""
        # Volumes are gp3 and encrypted unless a claim asks otherwise: the default class of the
        # cluster, provisioned by the EBS CSI driver (EKS no longer marks its in-tree gp2 class default).
        storage_class = self.cluster.add_manifest(
            "DefaultStorageClass",
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": "gp3-encrypted",
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": "ebs.csi.aws.com",
                "parameters": {"type": "gp3", "encrypted": "true"},
                "volumeBindingMode": "WaitForFirstConsumer",
                "allowVolumeExpansion": True,
                "reclaimPolicy": "Delete",
            },
        )
        storage_class.node.add_dependency(self.managed_addons["aws-ebs-csi-driver"])

        self.helm_charts: dict[str, eks.HelmChart] = {}
        # The controller first: its webhook rejects every new Service (any namespace, any type) while
        # its pods are not ready, and the other charts create Services.
        self.alb_controller = self._alb_controller(addon_values.get(ALB_CONTROLLER.name, {}))
        self.add_helm_addon(METRICS_SERVER, user_values=addon_values.get(METRICS_SERVER.name, {}), computed={})
        if self.autoscaling == "cluster-autoscaler":
            self._cluster_autoscaler(addon_values.get(CLUSTER_AUTOSCALER.name, {}))

    def _cluster_autoscaler(self, user_values: Mapping[str, Any]) -> None:
        """The cluster autoscaler's chart and role (eks.autoscaling: cluster-autoscaler)."""
        self.autoscaler_role = self._cluster_autoscaler_role()
        service_account: dict[str, Any] = {"create": True, "name": "cluster-autoscaler"}
        if not self.pod_identity:
            service_account["annotations"] = {"eks.amazonaws.com/role-arn": self.autoscaler_role.role_arn}
        chart = self.add_helm_addon(
            CLUSTER_AUTOSCALER,
            user_values=user_values,
            computed={
                "autoDiscovery": {"clusterName": self.cluster_name},
                "awsRegion": self.region,
                "image": {"tag": CLUSTER_AUTOSCALER_IMAGE[self.kubernetes_version]},
                "rbac": {"serviceAccount": service_account},
                **self._identity_annotation(),
            },
        )
        if self.pod_identity:
            # The association exists before the pod starts (EKS injects its credentials' address then).
            chart.node.add_dependency(self.associations["ClusterAutoscalerRole"])

    def _outputs(self) -> None:
        """The cluster's name, how to reach it, its security group, and the IRSA issuer other stacks read."""
        CfnOutput(self, "ClusterName", value=self.cluster.cluster_name, description="EKS cluster name")
        CfnOutput(
            self,
            "KubeconfigCommand",
            value=Fn.join(
                "", ["aws eks update-kubeconfig --name ", self.cluster.cluster_name, " --region ", self.region]
            ),
            description="Adds this cluster to your kubeconfig",
        )
        CfnOutput(
            self,
            "ClusterSecurityGroupId",
            value=self.cluster.cluster_security_group_id,
            description="EKS cluster security group: admit a deploy runner's group on 443 to reach a private endpoint",
        )
        issuer_output = CfnOutput(
            self,
            OIDC_ISSUER_OUTPUT,
            value=self.cluster.open_id_connect_provider.open_id_connect_provider_issuer,
            description="IRSA OIDC issuer",
        )
        issuer_output.override_logical_id(OIDC_ISSUER_OUTPUT)

    def oidc_issuer_for(self, consumer: Stack) -> str:
        """The IRSA issuer as another stack reads it: this stack's whole ``OidcIssuer`` output.

        CDK's own reference would cut the issuer out of the provider ARN in the consumer, putting
        ``Fn::GetStackOutput`` inside ``Fn::Split``, a position CloudFormation does not document for it.
        """
        consumer.add_stack_dependency(self, "reads the OIDC issuer output")
        return Fn.get_stack_output(self.stack_name, OIDC_ISSUER_OUTPUT)

    def add_helm_addon(
        self,
        addon: HelmAddon,
        *,
        user_values: Mapping[str, Any],
        computed: Mapping[str, Any],
        skip_crds: bool = False,
    ) -> eks.HelmChart:
        """The add-on's chart at its pinned version, released under its name, with its layered values."""
        chart = self.cluster.add_helm_chart(
            addon.name,
            chart=addon.chart,
            repository=addon.repository,
            version=addon.version,
            namespace=addon.namespace,
            release=addon.name,
            values=layered_values(addon=addon.name, defaults=addon.defaults, user=user_values, computed=computed),
            skip_crds=skip_crds,
            wait=True,
        )
        # Charts go in once their pods can run and resolve names (nodes, CoreDNS), and once the load
        # balancer controller's webhook admits their Services.
        chart.node.add_dependency(self.nodegroup, self.managed_addons["coredns"], self.alb_controller)
        self.helm_charts[addon.name] = chart
        return chart

    def _cluster_autoscaler_role(self) -> iam.Role:
        """The autoscaler's role: it can resize only the Auto Scaling groups EKS tagged for this cluster."""
        asg_tag = f"aws:ResourceTag/k8s.io/cluster-autoscaler/{self.cluster_name}"
        policy = iam.ManagedPolicy(
            self,
            "ClusterAutoscalerPolicy",
            description=f"cluster-autoscaler of {self.cluster_name}: resize only this cluster's node groups",
            statements=[
                iam.PolicyStatement(
                    sid="ResizeThisClustersNodeGroups",
                    actions=["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
                    resources=["*"],
                    conditions={
                        "StringEquals": {
                            asg_tag: "owned",
                            "aws:ResourceTag/k8s.io/cluster-autoscaler/enabled": "true",
                        }
                    },
                ),
                iam.PolicyStatement(
                    sid="DescribeScalingInputs",
                    # Describe calls support no resource-level permissions.
                    actions=[
                        "autoscaling:DescribeAutoScalingGroups",
                        "autoscaling:DescribeAutoScalingInstances",
                        "autoscaling:DescribeLaunchConfigurations",
                        "autoscaling:DescribeScalingActivities",
                        "autoscaling:DescribeTags",
                        "ec2:DescribeImages",
                        "ec2:DescribeInstanceTypes",
                        "ec2:DescribeLaunchTemplateVersions",
                        "ec2:GetInstanceTypesFromInstanceRequirements",
                    ],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="DescribeThisClustersNodeGroups",
                    actions=["eks:DescribeNodegroup"],
                    resources=[
                        self.format_arn(
                            service="eks",
                            resource="nodegroup",
                            resource_name=f"{self.cluster_name}/*",
                            partition=Aws.PARTITION,
                            region=Aws.REGION,
                            account=Aws.ACCOUNT_ID,
                        )
                    ],
                ),
            ],
        )
        return self.workload_role(
            "ClusterAutoscalerRole",
            namespace=CLUSTER_AUTOSCALER.namespace,
            service_account="cluster-autoscaler",
            description="cluster-autoscaler",
            managed_policies=[policy],
            association=True,
        )

    def _alb_controller(self, user_values: Mapping[str, Any]) -> eks.AlbController:
        """The AWS Load Balancer Controller with its upstream IAM policy, narrowed to this region and account."""
        # From the cluster's own region, not aws-cdk-lib's us-west-2 default.
        repository = eks_image_repository(self.region, "amazon/aws-load-balancer-controller")
        computed_by_cdk = {
            # Set by aws_eks_v2.AlbController itself; a values file may not contradict them.
            "clusterName": self.cluster_name,
            "region": self.region,
            "vpcId": self.cluster.vpc.vpc_id,
            "serviceAccount": {"create": False, "name": "aws-load-balancer-controller"},
            "image": {
                "repository": repository,
                "tag": "v" + ALB_CONTROLLER.version,
            },
        }
        # Every AWS resource the controller creates carries the environment's tag: the load balancer
        # alarms (observability stack) watch only what carries it. A values file may add tags of its own.
        owned: dict[str, Any] = {"defaultTags": {LOAD_BALANCER_TAG: self.cluster_name}, **self._identity_annotation()}
        layered = layered_values(
            addon=ALB_CONTROLLER.name,
            defaults=ALB_CONTROLLER.defaults,
            user=user_values,
            computed={**computed_by_cdk, **owned},
        )
        controller = eks.AlbController(
            self,
            "AlbController",
            cluster=self.cluster,
            version=eks.AlbControllerVersion.V3_2_2,
            policy=alb_controller_policy(region=Aws.REGION, account=Aws.ACCOUNT_ID),
            repository=repository,
            # AlbController spreads these over its own values at the top level only; none of the
            # keys it computes is passed, so its computed values always win.
            additional_helm_chart_values={k: v for k, v in layered.items() if k not in computed_by_cdk},
        )
        controller.node.add_dependency(self.nodegroup, self.managed_addons["coredns"])
        if self.pod_identity:
            self._alb_controller_through_pod_identity(controller)
        return controller

    def _alb_controller_through_pod_identity(self, controller: eks.AlbController) -> None:
        """aws_eks_v2.AlbController makes an IRSA service account and has no option for Pod Identity: its
        role is kept (its policy is the controller's) and trusts Pod Identity instead, its service account
        loses the IRSA annotation, and an association names the role. The same construct paths in either
        mode, so switching updates them in place (a new Helm release would be installed, then the old one
        uninstalled: the controller itself)."""
        namespace, name = ALB_CONTROLLER.namespace, ALB_CONTROLLER.name
        account = cast(eks.ServiceAccount, controller.node.find_child("alb-sa"))
        cast(iam.CfnRole, account.role.node.default_child).add_property_override(
            "AssumeRolePolicyDocument",
            pod_identity_trust(cluster_arn=self.cluster.cluster_arn, namespace=namespace, service_account=name),
        )
        # The IRSA trust's condition keys (a custom resource): unused now.
        account.node.try_remove_child("ConditionJson")
        manifest = account.node.find_child("manifest-alb-saServiceAccountResource")
        # The labels KubernetesManifest gives it: its own, and the prune label its later applies select by.
        labels = {"app.kubernetes.io/name": name, f"aws.cdk.eks/prune-{manifest.node.addr}": ""}
        cast(CfnResource, manifest.node.default_child).add_property_override(
            "Manifest",
            json.dumps(
                [
                    {
                        "apiVersion": "v1",
                        "kind": "ServiceAccount",
                        "metadata": {"name": name, "namespace": namespace, "labels": labels},
                    }
                ]
            ),
        )
        association = eks.CfnPodIdentityAssociation(
            self,
            "AlbControllerRoleAssociation",
            cluster_name=self.cluster.cluster_name,
            namespace=namespace,
            service_account=name,
            role_arn=account.role.role_arn,
        )
        self.associations["AlbControllerRole"] = association
        # The chart, not the whole construct (its role is what the association names).
        controller.node.find_child("Resource").node.add_dependency(
            association, cast(eks.CfnAddon, self.pod_identity_agent)
        )

    def _container_insights(
        self,
        settings: ObservabilitySettings,
        *,
        retain: bool,
        alias_prefix: str,
    ) -> eks.CfnAddon:
        """The EKS add-on for CloudWatch observability: the CloudWatch agent (Container Insights) and
        Fluent Bit (container logs), through IRSA or Pod Identity, into log groups created first under one key."""
        self.container_log_groups = self._container_log_groups(settings, retain=retain, alias_prefix=alias_prefix)
        self.cloudwatch_agent_role = self._cloudwatch_agent_role()
        config = {
            "containerLogs": {"enabled": True},
            # Our own agent configuration replaces the add-on's default one, which also turns on
            # Application Signals and traces (X-Ray): not used here, so not granted either.
            "agent": {
                "config": {
                    "logs": {
                        "metrics_collected": {
                            "kubernetes": {"enhanced_container_insights": settings.enhanced_container_insights}
                        }
                    }
                }
            },
        }
        addon = eks.CfnAddon(
            self,
            "CloudWatchObservabilityAddon",
            addon_name=CLOUDWATCH_OBSERVABILITY_ADDON,
            # eks_addons.py says why it is not pinned.
            addon_version=EKS_MANAGED_ADDONS[self.kubernetes_version][CLOUDWATCH_OBSERVABILITY_ADDON],
            cluster_name=self.cluster.cluster_name,
            **self._addon_identity(
                self.cloudwatch_agent_role, CLOUDWATCH_SERVICE_ACCOUNT, pod_identity=self.pod_identity
            ),
            configuration_values=json.dumps(config),
            resolve_conflicts="OVERWRITE",
            preserve_on_delete=False,
        )
        # Pods need nodes and DNS; its Services need the load balancer controller's webhook up; its
        # writers need their log groups (else they would create them, unencrypted).
        addon.node.add_dependency(
            self.nodegroup, self.managed_addons["coredns"], self.alb_controller, *self.container_log_groups
        )
        return addon

    def _container_log_groups(
        self, settings: ObservabilitySettings, *, retain: bool, alias_prefix: str
    ) -> list[logs.LogGroup]:
        """The Container Insights log groups of this cluster, under one key of their own."""
        prefix = f"/aws/containerinsights/{self.cluster_name}"
        key = log_key(
            self,
            "ContainerLogKey",
            purpose="container-logs",
            alias_prefix=alias_prefix,
            retain=retain,
            log_group_name=f"{prefix}/*",
        )
        # Fluent Bit writes application, dataplane and host; the agent writes performance (its
        # embedded-metric-format events become the Container Insights metrics). Plain log groups: their
        # writers are pods of the add-on, which is deleted before them (it depends on them), so unlike
        # the control plane's group nothing re-creates one after a stack delete.
        return [
            logs.LogGroup(
                self,
                f"ContainerLogGroup{kind.title()}",
                log_group_name=f"{prefix}/{kind}",
                encryption_key=key,
                retention=retention(settings.container_log_retention_days),
                removal_policy=kept_if(retain),
            )
            for kind in CONTAINER_LOG_GROUPS
        ]

    def _cloudwatch_agent_role(self) -> iam.Role:
        """IRSA role of the CloudWatch agent and Fluent Bit: write to this cluster's Container Insights
        log groups and metrics only."""
        policy = iam.ManagedPolicy(
            self,
            "CloudWatchAgentPolicy",
            description="CloudWatch agent and Fluent Bit: this cluster's Container Insights log groups and metrics",
            statements=[
                iam.PolicyStatement(
                    sid="ContainerInsightsLogGroups",
                    actions=[
                        "logs:CreateLogGroup",
                        "logs:CreateLogStream",
                        "logs:DescribeLogStreams",
                        "logs:PutLogEvents",
                    ],
                    resources=[group.log_group_arn for group in self.container_log_groups],
                ),
                iam.PolicyStatement(
                    # List actions: IAM evaluates them against every log group of the account and region.
                    sid="DescribeLogGroups",
                    actions=["logs:DescribeLogGroups"],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="ContainerInsightsMetrics",
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringEquals": {"cloudwatch:namespace": "ContainerInsights"}},
                ),
                iam.PolicyStatement(
                    # Node metadata for the metrics' dimensions (instance id and type, volumes).
                    sid="NodeMetadata",
                    actions=["ec2:DescribeInstances", "ec2:DescribeTags", "ec2:DescribeVolumes"],
                    resources=["*"],
                ),
            ],
        )
        return self.workload_role(
            "CloudWatchAgentRole",
            namespace=CLOUDWATCH_NAMESPACE,
            service_account=CLOUDWATCH_SERVICE_ACCOUNT,
            description="CloudWatch agent and Fluent Bit (amazon-cloudwatch-observability add-on)",
            managed_policies=[policy],
        )

    def workload_role(
        self,
        construct_id: str,
        *,
        namespace: str,
        service_account: str,
        description: str,
        managed_policies: list[iam.IManagedPolicy] | None = None,
        association: bool = False,
    ) -> iam.Role:
        """An add-on's role as ``eks.workload_identity`` says: IRSA, or EKS Pod Identity (with an association
        of its own when ``association``; an EKS add-on's is made by EKS from its PodIdentityAssociations)."""
        if self.pod_identity:
            return self.pod_identity_role(
                construct_id,
                namespace=namespace,
                service_account=service_account,
                description=f"{description} through EKS Pod Identity",
                managed_policies=managed_policies,
                association=association,
            )
        return self.irsa_role(
            construct_id,
            namespace=namespace,
            service_account=service_account,
            description=f"{description} through IRSA",
            managed_policies=managed_policies,
        )

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
    ) -> iam.Role:
        """A role only ``<namespace>/<service_account>`` of this cluster can assume through EKS Pod Identity
        (infra/constructs/pod_identity.py), and its association unless an EKS add-on makes it."""
        scope = scope or self
        role = iam.Role(
            scope,
            construct_id,
            description=description,
            assumed_by=iam.ServicePrincipal(POD_IDENTITY_PRINCIPAL),
            managed_policies=managed_policies,
        )
        cast(iam.CfnRole, role.node.default_child).add_property_override(
            "AssumeRolePolicyDocument",
            pod_identity_trust(
                cluster_arn=self.cluster.cluster_arn, namespace=namespace, service_account=service_account
            ),
        )
        if association:
            self.associations[construct_id] = eks.CfnPodIdentityAssociation(
                scope,
                f"{construct_id}Association",
                cluster_name=self.cluster.cluster_name,
                namespace=namespace,
                service_account=service_account,
                role_arn=role.role_arn,
            )
        return role

    def irsa_role(
        self,
        construct_id: str,
        *,
        namespace: str,
        service_account: str,
        description: str,
        managed_policies: list[iam.IManagedPolicy] | None = None,
    ) -> iam.Role:
        """A role only ``system:serviceaccount:<namespace>:<service_account>`` can assume, for STS."""
        issuer = self.cluster.open_id_connect_provider.open_id_connect_provider_issuer
        conditions = service_account_condition(
            self, f"{construct_id}Conditions", issuer=issuer, namespace=namespace, service_account=service_account
        )
        return iam.Role(
            self,
            construct_id,
            description=description,
            assumed_by=iam.OpenIdConnectPrincipal(
                self.cluster.open_id_connect_provider, conditions={"StringEquals": conditions}
            ),
            managed_policies=managed_policies,
        )
