"""Who may assume a role, read from a synthesized template: through IRSA (an OIDC trust on one service
account) or through EKS Pod Identity (a trust on the session tags of one service account, and the
association that names the role)."""

from __future__ import annotations

import json
from typing import Any

from tests.synth import resources

POD_IDENTITY_ACTIONS = ["sts:AssumeRole", "sts:TagSession"]


def trust_conditions(template: dict[str, Any]) -> dict[str, str]:
    """IRSA roles: role logical id -> the condition its CfnJson resolves to (issuer prefix dropped)."""
    out = {}
    for role_id, role in resources(template, "AWS::IAM::Role").items():
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        if "Federated" not in statement["Principal"]:
            continue
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert "ClusterOidcProvider" in json.dumps(statement["Principal"]["Federated"])
        json_id = statement["Condition"]["StringEquals"]["Fn::GetAtt"][0]
        parts = template["Resources"][json_id]["Properties"]["Value"]["Fn::Join"][1]
        literal = "".join(p for p in parts if isinstance(p, str))
        out[role_id] = literal
    return out


def irsa_condition(service_account: str) -> str:
    """What :func:`trust_conditions` reads for ``namespace:name``."""
    return f'{{":aud":"sts.amazonaws.com",":sub":"system:serviceaccount:{service_account}"}}'


def pod_identity_trusts(template: dict[str, Any]) -> dict[str, str]:
    """Pod Identity roles: role logical id -> ``namespace:service-account`` its trust admits. Every such
    trust is the one shape: the EKS Pod Identity principal, AssumeRole and TagSession, and the session tags
    of one cluster (this stack's, or the EKS stack's by reference), namespace and service account."""
    out = {}
    for role_id, role in resources(template, "AWS::IAM::Role").items():
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        if statement["Principal"] != {"Service": "pods.eks.amazonaws.com"}:
            continue
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == POD_IDENTITY_ACTIONS
        tags = statement["Condition"]["StringEquals"]
        assert set(tags) == {
            "aws:RequestTag/eks-cluster-arn",
            "aws:RequestTag/kubernetes-namespace",
            "aws:RequestTag/kubernetes-service-account",
        }
        # The cluster's ARN: its own attribute in the EKS stack, that stack's output elsewhere.
        cluster = json.dumps(tags["aws:RequestTag/eks-cluster-arn"])
        assert "Cluster" in cluster, cluster
        assert "Arn" in cluster, cluster
        out[role_id] = (
            f"{tags['aws:RequestTag/kubernetes-namespace']}:{tags['aws:RequestTag/kubernetes-service-account']}"
        )
    return out


def associations(template: dict[str, Any]) -> dict[str, str]:
    """Role logical id -> ``namespace:service-account`` of the Pod Identity associations that name it: the
    stack's own (AWS::EKS::PodIdentityAssociation) and those EKS makes for an add-on (its
    PodIdentityAssociations, in the add-on's namespace)."""
    out = {}
    for association in resources(template, "AWS::EKS::PodIdentityAssociation").values():
        props = association["Properties"]
        out[props["RoleArn"]["Fn::GetAtt"][0]] = f"{props['Namespace']}:{props['ServiceAccount']}"
    for addon in resources(template, "AWS::EKS::Addon").values():
        for entry in addon["Properties"].get("PodIdentityAssociations", []):
            namespace = ADDON_NAMESPACES[addon["Properties"]["AddonName"]]
            out[entry["RoleArn"]["Fn::GetAtt"][0]] = f"{namespace}:{entry['ServiceAccount']}"
    return out


# The namespaces the EKS managed add-ons that call AWS run their service accounts in.
ADDON_NAMESPACES = {
    "vpc-cni": "kube-system",
    "aws-ebs-csi-driver": "kube-system",
    "amazon-cloudwatch-observability": "amazon-cloudwatch",
}


def identity_of(template: dict[str, Any], role_prefix: str) -> tuple[str, str]:
    """How the role whose logical id starts with ``role_prefix`` is assumed: ("irsa", its condition) or
    ("pod-identity", "namespace:service-account"), the latter only where an association names the role for
    the same service account its trust admits."""
    irsa = [c for role_id, c in trust_conditions(template).items() if role_id.startswith(role_prefix)]
    pods = {role_id: sa for role_id, sa in pod_identity_trusts(template).items() if role_id.startswith(role_prefix)}
    assert len(irsa) + len(pods) == 1, (role_prefix, irsa, pods)
    if irsa:
        return "irsa", irsa[0]
    ((role_id, service_account),) = pods.items()
    assert associations(template).get(role_id) == service_account, role_id
    return "pod-identity", service_account
