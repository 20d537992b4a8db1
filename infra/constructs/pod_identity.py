"""The trust of an EKS Pod Identity role: one service account of one namespace of one cluster.

EKS Pod Identity assumes the role (``sts:AssumeRole``) for the pod and passes session tags
(``sts:TagSession``) naming the cluster, namespace and service account the association is for; the
conditions on those request tags mean no association of another cluster, namespace or service account
in the account can use the role (EKS user guide, "Create IAM role with trust policy required by EKS Pod
Identity" and "Enable or disable session tags").
"""

from __future__ import annotations

from typing import Any

POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"
POD_IDENTITY_AGENT_ADDON = "eks-pod-identity-agent"


def pod_identity_trust(*, cluster_arn: str, namespace: str, service_account: str) -> dict[str, Any]:
    """The trust policy document of a role only ``<namespace>/<service_account>`` of the cluster
    ``cluster_arn`` may assume through EKS Pod Identity."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "EksPodIdentityForOneServiceAccount",
                "Effect": "Allow",
                "Principal": {"Service": POD_IDENTITY_PRINCIPAL},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": {
                    "StringEquals": {
                        "aws:RequestTag/eks-cluster-arn": cluster_arn,
                        "aws:RequestTag/kubernetes-namespace": namespace,
                        "aws:RequestTag/kubernetes-service-account": service_account,
                    }
                },
            }
        ],
    }
