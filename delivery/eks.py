"""kubectl's access to an EKS cluster without the AWS CLI: a kubeconfig whose user runs
``python -m delivery token``, which prints the token ``aws eks get-token`` prints.

The token is a presigned STS GetCallerIdentity URL, signed with the header ``x-k8s-aws-id: <cluster>``,
base64url-encoded without padding behind ``k8s-aws-v1.`` (aws-iam-authenticator's token format, which the
EKS control plane verifies; the AWS CLI's ``eks get-token`` builds the same).
"""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

import boto3
import yaml

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_HEADER = "x-k8s-aws-id"
# The URL is valid for 60 s; EKS accepts a token for 15 minutes after it was signed. kubectl asks again
# once the expiration given here has passed.
TOKEN_LIFETIME = datetime.timedelta(minutes=14)


def token(cluster: str, region: str, session: Any = None) -> str:
    session = session or boto3.session.Session()
    sts = session.client("sts", region_name=region, endpoint_url=f"https://sts.{region}.amazonaws.com")

    def add_cluster_header(request: Any, **_: Any) -> None:
        request.headers[CLUSTER_HEADER] = cluster

    sts.meta.events.register("before-sign.sts.GetCallerIdentity", add_cluster_header)
    url = sts.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET")
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode("utf-8")).decode("ascii").rstrip("=")


def exec_credential(cluster: str, region: str, session: Any = None, now: datetime.datetime | None = None) -> str:
    """What a kubeconfig exec plugin prints (client.authentication.k8s.io/v1beta1 ExecCredential)."""
    expires = (now or datetime.datetime.now(datetime.UTC)) + TOKEN_LIFETIME
    return json.dumps(
        {
            "kind": "ExecCredential",
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "spec": {},
            "status": {
                "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "token": token(cluster, region, session),
            },
        }
    )


def kubeconfig(cluster: str, region: str, python: str, session: Any = None) -> str:
    """A kubeconfig for ``cluster`` (its endpoint and CA from DescribeCluster)."""
    session = session or boto3.session.Session()
    described = session.client("eks", region_name=region).describe_cluster(name=cluster)["cluster"]
    name = f"{cluster}.{region}"
    return str(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": name,
                        "cluster": {
                            "server": described["endpoint"],
                            "certificate-authority-data": described["certificateAuthority"]["data"],
                        },
                    }
                ],
                "users": [
                    {
                        "name": name,
                        "user": {
                            "exec": {
                                "apiVersion": "client.authentication.k8s.io/v1beta1",
                                "command": python,
                                "args": ["-m", "delivery", "token", "--cluster", cluster, "--region", region],
                                "interactiveMode": "Never",
                            }
                        },
                    }
                ],
                "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
                "current-context": name,
            },
            sort_keys=False,
        )
    )
