"""Pinned versions of everything the EKS stack installs into the cluster.

One place to bump on a Kubernetes upgrade. Each table is keyed by the Kubernetes minor version and
must cover exactly the versions in ``EKS_STANDARD_SUPPORT`` (a test checks it), so choosing a new
version in settings without pinning its add-ons is caught before review.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# EKS managed add-ons, per Kubernetes minor. A version is pinned only where AWS documentation
# publishes it for that minor (EKS user guide, "Manage kube-proxy" and "Manage CoreDNS" version
# tables, read 2026-11-27); None leaves the version to EKS's default for the minor, never a guess:
# the user guide has no per-minor table for the VPC CNI or the EBS CSI driver. `make check-versions`
# (scripts/check_versions.py) checks every pin against `aws eks describe-addon-versions` with AWS
# credentials; kube-proxy must match the minor.
EKS_MANAGED_ADDONS: dict[str, dict[str, str | None]] = {
    "1.35": {
        "vpc-cni": None,
        "kube-proxy": "v1.35.3-eksbuild.13",
        "coredns": "v1.14.3-eksbuild.3",
        "aws-ebs-csi-driver": None,
        # Container Insights (the EKS stack's observability section). Unpinned like the two above:
        # EKS installs its default once, at creation, and never moves an installed add-on by itself
        # (CloudFormation sends no AddonVersion); the weekly `make check-versions` prints the default
        # a new cluster would get. A default that stopped publishing the classic Container Insights
        # metrics would not silence the alarms: `container-insights-silent` treats missing
        # cluster_node_count as breaching.
        "amazon-cloudwatch-observability": None,
        # EKS Pod Identity's agent (a DaemonSet on every node): with eks.workload_identity pod-identity or
        # Karpenter. Unpinned like the CNI: the user guide publishes no per-minor version.
        "eks-pod-identity-agent": None,
    },
    "1.36": {
        "vpc-cni": None,
        "kube-proxy": "v1.36.0-eksbuild.14",
        "coredns": "v1.14.3-eksbuild.3",
        "aws-ebs-csi-driver": None,
        "amazon-cloudwatch-observability": None,
        "eks-pod-identity-agent": None,
    },
}

# The ECR registry account that hosts EKS add-on images (the load balancer controller among them),
# per region: 602401143452 except where listed. Source: EKS user guide, "View Amazon container image
# registries for Amazon EKS add-ons" (add-ons-images), read 2026-11-27. Nodes then pull the controller
# from their own region instead of across regions through NAT (aws-cdk-lib's default is us-west-2).
EKS_IMAGE_REGISTRY_ACCOUNT: dict[str, str] = {
    "af-south-1": "877085696533",
    "ap-east-1": "800184023465",
    "ap-east-2": "533267051163",
    "ap-south-2": "900889452093",
    "ap-southeast-3": "296578399912",
    "ap-southeast-4": "491585149902",
    "ap-southeast-5": "151610086707",
    "ap-southeast-6": "333609536671",
    "ap-southeast-7": "121268973566",
    "ca-west-1": "761377655185",
    "eu-central-2": "900612956339",
    "eu-south-1": "590381155156",
    "eu-south-2": "455263428931",
    "il-central-1": "066635153087",
    "me-central-1": "759879836304",
    "me-south-1": "558608220178",
    "mx-central-1": "730335286997",
}
DEFAULT_EKS_IMAGE_REGISTRY_ACCOUNT = "602401143452"


def eks_image_repository(region: str, image: str) -> str:
    """``<account>.dkr.ecr.<region>.amazonaws.com/<image>`` of the EKS add-on registry in ``region``."""
    account = EKS_IMAGE_REGISTRY_ACCOUNT.get(region, DEFAULT_EKS_IMAGE_REGISTRY_ACCOUNT)
    return f"{account}.dkr.ecr.{region}.amazonaws.com/{image}"


# Cluster autoscaler's minor must equal the cluster's (its scheduler simulation is compiled against
# that Kubernetes release). https://github.com/kubernetes/autoscaler/releases
CLUSTER_AUTOSCALER_IMAGE: dict[str, str] = {
    "1.35": "v1.35.2",
    "1.36": "v1.36.1",
}

# Top-level keys every add-on chart accepts for tuning placement and capacity. Each add-on adds
# its own; anything else in a values file is reported as unknown (a typo must not pass silently).
_PLACEMENT = frozenset(
    {
        "affinity",
        "nodeSelector",
        "tolerations",
        "topologySpreadConstraints",
        "priorityClassName",
        "podAnnotations",
        "podLabels",
        "resources",
    }
)


@dataclass(frozen=True)
class HelmAddon:
    """An add-on installed as a Helm chart, with its chart version pinned here.

    ``tunable`` lists the top-level keys a ``helm_values/<env>/<name>.yaml`` may set. It is a
    curated subset of the chart's values: extend it here (reviewed) to tune something new.
    """

    name: str
    chart: str
    repository: str
    version: str
    namespace: str
    tunable: frozenset[str]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    # Top-level keys the EKS stack sets itself (infra/stacks/eks.py); a values file may not set them.
    computed: frozenset[str] = frozenset()


# Flags chart 3.13.0 always passes (values.yaml `defaultArgs`); `args` are appended after them, so
# a flag set here again would be passed twice.
METRICS_SERVER_DEFAULT_ARGS = (
    "--cert-dir=/tmp",
    "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
    "--kubelet-use-node-status-port",
    "--metric-resolution=15s",
)

# metrics-server feeds the resource metrics API that HorizontalPodAutoscalers read.
METRICS_SERVER = HelmAddon(
    name="metrics-server",
    chart="metrics-server",
    repository="https://kubernetes-sigs.github.io/metrics-server/",
    version="3.13.0",
    namespace="kube-system",
    tunable=_PLACEMENT | {"replicas", "args", "podDisruptionBudget", "updateStrategy"},
    defaults={
        "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}},
        "podDisruptionBudget": {"enabled": False},
    },
)

# Cluster autoscaler: scales the managed node group's Auto Scaling group through IRSA.
CLUSTER_AUTOSCALER = HelmAddon(
    name="cluster-autoscaler",
    chart="cluster-autoscaler",
    computed=frozenset({"autoDiscovery", "awsRegion", "image", "rbac"}),
    repository="https://kubernetes.github.io/autoscaler",
    version="9.59.0",
    namespace="kube-system",
    tunable=_PLACEMENT | {"replicaCount", "extraArgs", "podDisruptionBudget", "updateStrategy"},
    defaults={
        "cloudProvider": "aws",
        "replicaCount": 1,
        "extraArgs": {
            "expander": "least-waste",
            "balance-similar-node-groups": True,
            "skip-nodes-with-system-pods": False,
            "scale-down-unneeded-time": "10m",
            "scale-down-delay-after-add": "10m",
        },
        "resources": {"requests": {"cpu": "100m", "memory": "300Mi"}},
        # Evicting the autoscaler would stop scale-up exactly when it is needed.
        "podAnnotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
        "priorityClassName": "system-cluster-critical",
    },
)

# AWS Load Balancer Controller, installed through aws_eks_v2.AlbController: the chart version and
# the controller's IAM policy ship with aws-cdk-lib for this controller version.
ALB_CONTROLLER = HelmAddon(
    name="aws-load-balancer-controller",
    chart="aws-load-balancer-controller",
    computed=frozenset({"clusterName", "region", "vpcId", "serviceAccount", "image"}),
    repository="https://aws.github.io/eks-charts",
    version="3.2.2",
    namespace="kube-system",
    tunable=_PLACEMENT | {"replicaCount", "podDisruptionBudget", "defaultTargetType", "enableServiceMutatorWebhook"},
    defaults={
        "replicaCount": 2,
        # Ingresses register pods (target type ip), as the microservice chart expects.
        "defaultTargetType": "ip",
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        "podDisruptionBudget": {"maxUnavailable": 1},
        # Each upgrade keeps the webhooks' certificate (read back from its secret) instead of generating a
        # new CA: otherwise the webhook configurations carry the new CA while the running pods still serve
        # the old certificate, and their webhooks (Services: failurePolicy Fail) refuse calls meanwhile.
        "keepTLSSecret": True,
    },
)

# Karpenter (eks.autoscaling: karpenter), from its OCI charts on Amazon ECR Public: 1.14.1 is the newest
# release (2026-08-20) and supports Kubernetes 1.26 to 1.36 (its compatibility matrix; 1.36 needs 1.13 or
# newer). Its CRDs come from the separate karpenter-crd chart at the same version (Helm installs a chart's
# crds/ once and never upgrades them; Karpenter's upgrade guide recommends the CRD chart).
KARPENTER_VERSION = "1.14.1"
# The Kubernetes minors that release supports (its compatibility matrix): every minor the settings accept
# must be inside, or Karpenter is bumped first (a test checks it).
KARPENTER_KUBERNETES = ("1.26", "1.36")
KARPENTER = HelmAddon(
    name="karpenter",
    chart="karpenter",
    repository="oci://public.ecr.aws/karpenter/karpenter",
    version=KARPENTER_VERSION,
    namespace="kube-system",
    computed=frozenset({"settings", "serviceAccount"}),
    tunable=(_PLACEMENT - {"resources"})
    | {"replicas", "logLevel", "podDisruptionBudget", "strategy", "controller", "dnsPolicy"},
    defaults={
        # Two replicas (the chart's default; one leads, one stands by), on the managed node group only (the
        # chart's affinity keeps them off Karpenter's own nodes), a node each, across zones.
        "replicas": 2,
        # Karpenter's getting-started values: a full CPU and 1 GiB, requests equal to limits.
        "controller": {
            "resources": {
                "requests": {"cpu": "1", "memory": "1Gi"},
                "limits": {"cpu": "1", "memory": "1Gi"},
            }
        },
    },
)
KARPENTER_CRD = HelmAddon(
    name="karpenter-crd",
    chart="karpenter-crd",
    repository="oci://public.ecr.aws/karpenter/karpenter-crd",
    version=KARPENTER_VERSION,
    namespace="kube-system",
    tunable=frozenset(),
)

HELM_ADDONS: tuple[HelmAddon, ...] = (METRICS_SERVER, CLUSTER_AUTOSCALER, ALB_CONTROLLER, KARPENTER)
