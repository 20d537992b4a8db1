"""CI/CD stack: this environment's deploy role, trusted through the account's GitHub OIDC provider, and
its EKS access entry."""

from __future__ import annotations

from typing import Any, cast

from aws_cdk import CfnOutput
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_route53 as route53
from constructs import Construct

from infra.config.settings import GithubSettings, IngressCertificateSettings
from infra.stacks.account import GITHUB_OIDC_HOST, github_oidc_provider_arn
from infra.stacks.base import PlatformStack

ECR_PUSH_PULL = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:DescribeImageScanFindings",
    "ecr:DescribeImages",
    "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
]


def github_subject(github: GithubSettings, environment: str) -> str:
    """The only token subject the deploy role trusts: jobs bound to this GitHub environment.

    With the repository's immutable ids (GitHub docs, "OpenID Connect reference", immutable subject
    claims) the subject is ``repo:<owner>@<owner id>/<repo>@<repo id>:...``: a repository deleted and
    re-created under the same name by someone else does not match it.
    """
    if github.owner_id is not None and github.repository_id is not None:
        repository = f"{github.owner}@{github.owner_id}/{github.repository}@{github.repository_id}"
    else:
        repository = f"{github.owner}/{github.repository}"
    return f"repo:{repository}:environment:{environment}"


class CicdStack(PlatformStack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        zones: list[str],
        github: GithubSettings,
        environment_name: str,
        cluster: eks.Cluster,
        namespaces: list[str],
        repository_groups: list[list[str]],
        ingress_certificate: IngressCertificateSettings | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, zones=zones, **kwargs)
        # The provider belongs to the account (the account stack, or whoever made it before): its ARN
        # follows from the account, so no reference to another stack is needed.
        provider_arn = github_oidc_provider_arn(self)

        self.deploy_role = iam.Role(
            self,
            "DeployRole",
            description=f"GitHub Actions deploys to {environment_name}: push images, helm upgrade in its namespaces",
            assumed_by=iam.FederatedPrincipal(
                provider_arn,
                conditions={
                    "StringEquals": {
                        f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com",
                        f"{GITHUB_OIDC_HOST}:sub": github_subject(github, environment_name),
                    }
                },
                assume_role_action="sts:AssumeRoleWithWebIdentity",
            ),
        )
        iam.ManagedPolicy(
            self,
            "DeployPolicy",
            description=f"Log in to ECR and find the {environment_name} cluster",
            roles=[self.deploy_role],
            statements=[
                iam.PolicyStatement(
                    sid="LogInToEcr",
                    # GetAuthorizationToken supports no resource-level permissions.
                    actions=["ecr:GetAuthorizationToken"],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="FindThisCluster", actions=["eks:DescribeCluster"], resources=[cluster.cluster_arn]
                ),
            ],
        )
        # One policy per registry shard: a managed policy holds at most 6,144 characters, so a
        # single list of every repository ARN would not fit a large catalogue.
        for index, repositories in enumerate(repository_groups):
            iam.ManagedPolicy(
                self,
                f"ImagesPolicy{index}",
                description=f"Push and pull {environment_name} images (registry group {index})",
                roles=[self.deploy_role],
                statements=[
                    iam.PolicyStatement(
                        sid="PushAndPullThisEnvironmentsImages",
                        actions=ECR_PUSH_PULL,
                        # ARNs from the names (fixed by convention): no reference to the registry
                        # stacks, so this stack does not wait for them.
                        resources=[
                            self.format_arn(service="ecr", resource="repository", resource_name=name)
                            for name in repositories
                        ],
                    )
                ],
            )
        # Inside the cluster: edit (not admin) in this environment's service namespaces only.
        self.access_entry = eks.AccessEntry(
            self,
            "DeployAccess",
            # jsii's Python stubs miss a protocol member on Cluster; it is an ICluster at runtime.
            cluster=cast(eks.ICluster, cluster),
            principal=self.deploy_role.role_arn,
            access_policies=[
                eks.AccessPolicy.from_access_policy_name(
                    "AmazonEKSEditPolicy", access_scope_type=eks.AccessScopeType.NAMESPACE, namespaces=namespaces
                )
            ],
        )
        if ingress_certificate is not None:
            # DNS validation in the zone named by its id and name: no lookup at synth.
            zone = route53.HostedZone.from_hosted_zone_attributes(
                self,
                "IngressZone",
                hosted_zone_id=ingress_certificate.hosted_zone_id,
                zone_name=ingress_certificate.hosted_zone_name,
            )
            self.certificate = acm.Certificate(
                self,
                "IngressCertificate",
                domain_name=ingress_certificate.domain_name,
                validation=acm.CertificateValidation.from_dns(zone),
            )
            CfnOutput(
                self,
                "CertificateArn",
                value=self.certificate.certificate_arn,
                description=f"Set as INGRESS_CERTIFICATE_ARN in the GitHub environment '{environment_name}' (HTTPS)",
            )
        CfnOutput(
            self,
            "DeployRoleArn",
            value=self.deploy_role.role_arn,
            description=f"Set as AWS_DEPLOY_ROLE_ARN in the GitHub environment '{environment_name}'",
        )
