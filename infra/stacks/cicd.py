"""CI/CD stack: this environment's deploy role, trusted through the account's GitHub OIDC provider, and
its EKS access entry."""

from __future__ import annotations

from collections.abc import Mapping
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


# In another region the deploy resolves the replicated image and adds its deployed-* tag (the same
# image manifest: no layer is uploaded).
ECR_REPLICA_ACTIONS = ["ecr:BatchGetImage", "ecr:DescribeImages", "ecr:PutImage"]


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
        other_clusters: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        """``other_clusters``: region -> cluster name, for each other region of the environment."""
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
                    # (One region: the statement as it was before regions, so nothing deployed changes.)
                    sid="FindThisEnvironmentsClusters" if other_clusters else "FindThisCluster",
                    actions=["eks:DescribeCluster"],
                    # Another region's cluster by its ARN, which its name and region fix: no reference.
                    resources=[
                        cluster.cluster_arn,
                        *(
                            self.format_arn(service="eks", region=region, resource="cluster", resource_name=name)
                            for region, name in (other_clusters or {}).items()
                        ),
                    ],
                ),
            ],
        )
        # IAM is global: this one role deploys to every region of the environment. Its ARN as the
        # role's attribute, which another region's stack can reference (Fn::GetStackOutput).
        self.deploy_role_arn = cast(iam.CfnRole, self.deploy_role.node.default_child).attr_arn
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
                    ),
                    *(
                        [
                            iam.PolicyStatement(
                                sid="FindAndMarkTheReplicas",
                                # Images are pushed once, to the primary region; in the others the deploy
                                # finds the replica and tags it deployed-* (ECR_REPLICA_ACTIONS).
                                actions=ECR_REPLICA_ACTIONS,
                                resources=[
                                    self.format_arn(
                                        service="ecr", region=region, resource="repository", resource_name=name
                                    )
                                    for region in other_clusters
                                    for name in repositories
                                ],
                            )
                        ]
                        if other_clusters
                        else []
                    ),
                ],
            )
        self.access_entry = deploy_access(self, cluster, self.deploy_role.role_arn, namespaces)
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


def deploy_access(scope: Construct, cluster: eks.Cluster, principal: str, namespaces: list[str]) -> eks.AccessEntry:
    """Inside the cluster: edit (not admin) in this environment's service namespaces only."""
    return eks.AccessEntry(
        scope,
        "DeployAccess",
        # jsii's Python stubs miss a protocol member on Cluster; it is an ICluster at runtime.
        cluster=cast(eks.ICluster, cluster),
        principal=principal,
        access_policies=[
            eks.AccessPolicy.from_access_policy_name(
                "AmazonEKSEditPolicy", access_scope_type=eks.AccessScopeType.NAMESPACE, namespaces=namespaces
            )
        ],
    )


class ClusterAccessStack(PlatformStack):
    """Another region of the environment: the deploy role (global, in the primary's cicd stack) gets the
    same access entry in this region's cluster as in the primary's."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        zones: list[str],
        cluster: eks.Cluster,
        deploy_role_arn: str,
        namespaces: list[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, zones=zones, **kwargs)
        # deploy_role_arn lives in the primary region: CDK renders it as Fn::GetStackOutput with that
        # region (no export), and this stack waits for the primary's cicd stack.
        self.access_entry = deploy_access(self, cluster, deploy_role_arn, namespaces)
