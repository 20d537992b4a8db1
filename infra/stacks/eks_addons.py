"""Pinned versions of everything the EKS stack installs into the cluster.

One place to bump on a Kubernetes upgrade. Each table is keyed by the Kubernetes minor version and
must cover exactly the versions in ``EKS_STANDARD_SUPPORT`` (a test checks it), so choosing a new
version in settings without pinning its add-ons is caught before review.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# EKS managed add-ons, per Kubernetes minor. Sources: `aws eks describe-addon-versions
# --kubernetes-version <v> --addon-name <name>`; the versions below are ones EKS resolved for
# clusters of that minor (recorded 2026-11). Bump them here; kube-proxy must match the minor.
EKS_MANAGED_ADDONS: dict[str, dict[str, str]] = {
    "1.35": {
        "vpc-cni": "v1.21.1-eksbuild.3",
        "kube-proxy": "v1.35.0-eksbuild.2",
        "coredns": "v1.13.2-eksbuild.1",
        "aws-ebs-csi-driver": "v1.57.1-eksbuild.1",
    },
    "1.36": {
        "vpc-cni": "v1.22.4-eksbuild.3",
        "kube-proxy": "v1.36.0-eksbuild.21",
        "coredns": "v1.14.3-eksbuild.16",
        "aws-ebs-csi-driver": "v1.63.1-eksbuild.1",
    },
}

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


# metrics-server feeds the resource metrics API that HorizontalPodAutoscalers read.
METRICS_SERVER = HelmAddon(
    name="metrics-server",
    chart="metrics-server",
    repository="https://kubernetes-sigs.github.io/metrics-server/",
    version="3.13.0",
    namespace="kube-system",
    tunable=_PLACEMENT | {"replicas", "args", "podDisruptionBudget", "updateStrategy"},
    defaults={
        "args": ["--kubelet-preferred-address-types=InternalIP"],
        "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}},
        "podDisruptionBudget": {"enabled": False},
    },
)

# Cluster autoscaler: scales the managed node group's Auto Scaling group through IRSA.
CLUSTER_AUTOSCALER = HelmAddon(
    name="cluster-autoscaler",
    chart="cluster-autoscaler",
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
    },
)

HELM_ADDONS: tuple[HelmAddon, ...] = (METRICS_SERVER, CLUSTER_AUTOSCALER, ALB_CONTROLLER)
