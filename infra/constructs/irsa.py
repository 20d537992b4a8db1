"""The trust condition of an IRSA role: one service account, audience STS."""

from __future__ import annotations

from aws_cdk import CfnJson
from constructs import Construct


def service_account_condition(
    scope: Construct, construct_id: str, *, issuer: str, namespace: str, service_account: str
) -> CfnJson:
    """``StringEquals`` map admitting only ``system:serviceaccount:<namespace>:<service_account>``.

    The keys contain the OIDC issuer, a token, so CfnJson resolves them at deploy time.
    """
    return CfnJson(
        scope,
        construct_id,
        value={
            f"{issuer}:aud": "sts.amazonaws.com",
            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
        },
    )
