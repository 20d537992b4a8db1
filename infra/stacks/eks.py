"""EKS stack: the cluster, its managed node group, access entries, and an IRSA identity per service."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_cdk import CfnJson, CfnOutput, Fn, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config.helm_values import layered_values
from infra.config.settings import EksSettings, ServiceSettings, SettingsError
from infra.constructs.encryption_key import EncryptionKey
from infra.stacks.base import PlatformStack
from infra.stacks.network import PRIVATE_SUBNETS

ALL_CONTROL_PLANE_LOGS = [
    eks.ClusterLoggingTypes.API,
    eks.ClusterLoggingTypes.AUDIT,
    eks.ClusterLoggingTypes.AUTHENTICATOR,
    eks.ClusterLoggingTypes.CONTROLLER_MANAGER,
    eks.ClusterLoggingTypes.SCHEDULER,
]


@dataclass(frozen=True)
class HelmAddon:
    """An add-on installed as a Helm chart, with its chart version pinned here."""

    name: str
    chart: str
    repository: str
    version: str
    namespace: str
    defaults: Mapping[str, Any] = field(default_factory=dict)


# metrics-server feeds the resource metrics API that HorizontalPodAutoscalers read.
METRICS_SERVER = HelmAddon(
    name="metrics-server",
    chart="metrics-server",
    repository="https://kubernetes-sigs.github.io/metrics-server/",
    version="3.13.0",
    namespace="kube-system",
    defaults={
        "args": ["--kubelet-preferred-address-types=InternalIP"],
        "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}},
        "podDisruptionBudget": {"enabled": False},
    },
)
HELM_ADDONS = (METRICS_SERVER,)


def kubectl_layer(scope: Construct, kubernetes_version: str) -> lambda_.ILayerVersion:
    """The kubectl/helm layer whose kubectl matches the cluster's minor version."""
    minor = kubernetes_version.split(".")[1]
    package = f"aws-cdk.lambda-layer-kubectl-v{minor}"
    try:
        module = importlib.import_module(f"aws_cdk.lambda_layer_kubectl_v{minor}")
    except ImportError:
        raise SettingsError(
            f"setting 'eks.kubernetes_version' = {kubernetes_version!r} needs the kubectl layer package "
            f"{package}, which is not installed; pin it in requirements.txt (kubectl supports one minor "
            "version of skew, so the layer must match the cluster)"
        ) from None
    layer: lambda_.ILayerVersion = getattr(module, f"KubectlV{minor}Layer")(scope, "KubectlLayer")
    return layer


def namespace_of(service: str, environment: str) -> str:
    return f"{service}-{environment}"


class EksStack(PlatformStack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        zones: list[str],
        eks_settings: EksSettings,
        services: list[ServiceSettings],
        environment_name: str,
        name_prefix: str,
        retain_data: bool,
        addon_values: Mapping[str, Mapping[str, Any]],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, zones=zones, **kwargs)
        private_subnets = ec2.SubnetSelection(subnet_group_name=PRIVATE_SUBNETS)

        self.secrets_key = EncryptionKey(
            self, "SecretsKey", alias_prefix=name_prefix, purpose="eks-secrets", retain=retain_data
        ).key
        cidrs = eks_settings.endpoint.public_access_cidrs
        endpoint = eks.EndpointAccess.PUBLIC_AND_PRIVATE.only_from(*cidrs) if cidrs else eks.EndpointAccess.PRIVATE

        self.cluster = eks.Cluster(
            self,
            "Cluster",
            version=eks.KubernetesVersion.of(eks_settings.kubernetes_version),
            vpc=vpc,
            vpc_subnets=[private_subnets],
            default_capacity_type=eks.DefaultCapacityType.NODEGROUP,
            default_capacity=0,
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
        admin = eks.AccessPolicy.from_access_policy_name(
            "AmazonEKSClusterAdminPolicy", access_scope_type=eks.AccessScopeType.CLUSTER
        )
        for index, arn in enumerate(eks_settings.admin_role_arns):
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
        # The VPC CNI gets its ENI permissions through IRSA rather than through the node role,
        # so no pod can inherit them from the node (EKS Best Practices, "Use IRSA for the CNI").
        self.vpc_cni_role = self.irsa_role(
            "VpcCniRole",
            namespace="kube-system",
            service_account="aws-node",
            description="Amazon VPC CNI (aws-node) through IRSA",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("AmazonEKS_CNI_Policy")],
        )
        eks.CfnAddon(
            self,
            "VpcCniAddon",
            addon_name="vpc-cni",
            cluster_name=self.cluster.cluster_name,
            service_account_role_arn=self.vpc_cni_role.role_arn,
            resolve_conflicts="OVERWRITE",
        )
        node_group = eks_settings.node_group
        self.launch_template = ec2.LaunchTemplate(
            self,
            "NodeLaunchTemplate",
            # IMDSv2 only, one hop: containers cannot reach the metadata service to borrow the node role.
            require_imdsv2=True,
            http_put_response_hop_limit=1,
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(
                        node_group.disk_size_gib,
                        volume_type=ec2.EbsDeviceVolumeType.GP3,
                        encrypted=True,
                        delete_on_termination=True,
                    ),
                )
            ],
        )
        self.nodegroup = self.cluster.add_nodegroup_capacity(
            "Nodes",
            ami_type=eks.NodegroupAmiType.AL2023_X86_64_STANDARD,
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
            # Cluster autoscaler discovers the group by these tags.
            tags={
                "k8s.io/cluster-autoscaler/enabled": "true",
                f"k8s.io/cluster-autoscaler/{name_prefix}": "owned",
            },
        )

        self.helm_charts: dict[str, eks.HelmChart] = {}
        self.add_helm_addon(METRICS_SERVER, user_values=addon_values.get(METRICS_SERVER.name, {}), computed={})

        self.service_accounts: dict[str, eks.ServiceAccount] = {}
        for service in services:
            namespace = namespace_of(service.name, environment_name)
            manifest = self.cluster.add_manifest(
                f"Namespace-{service.name}",
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": namespace,
                        "labels": {
                            "app.kubernetes.io/part-of": name_prefix,
                            # Pod Security admission: the chart's pods meet the restricted profile.
                            "pod-security.kubernetes.io/enforce": "restricted",
                        },
                    },
                },
            )
            account = self.cluster.add_service_account(
                f"ServiceAccount-{service.name}",
                name=service.name,
                namespace=namespace,
                identity_type=eks.IdentityType.IRSA,
                removal_policy=RemovalPolicy.DESTROY,
            )
            account.node.add_dependency(manifest)
            self.service_accounts[service.name] = account
            CfnOutput(
                self,
                f"ServiceRoleArn-{service.name}",
                value=account.role.role_arn,
                description=f"IRSA role of {namespace}/{service.name}",
            )

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
            "OidcIssuer",
            value=self.cluster.open_id_connect_provider.open_id_connect_provider_issuer,
            description="IRSA OIDC issuer",
        )

    def add_helm_addon(
        self, addon: HelmAddon, *, user_values: Mapping[str, Any], computed: Mapping[str, Any]
    ) -> eks.HelmChart:
        chart = self.cluster.add_helm_chart(
            addon.name,
            chart=addon.chart,
            repository=addon.repository,
            version=addon.version,
            namespace=addon.namespace,
            release=addon.name,
            values=layered_values(addon=addon.name, defaults=addon.defaults, user=user_values, computed=computed),
            wait=True,
        )
        # Charts go in after the nodes exist, or their pods would have nowhere to run.
        chart.node.add_dependency(self.nodegroup)
        self.helm_charts[addon.name] = chart
        return chart

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
        conditions = CfnJson(
            self,
            f"{construct_id}Conditions",
            value={
                f"{issuer}:aud": "sts.amazonaws.com",
                f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
            },
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
