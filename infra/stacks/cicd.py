"""CI/CD stack: this environment's roles for GitHub Actions, trusted through the account's GitHub OIDC
provider: the deploy role (images and Helm releases, with its EKS access entry), and the infrastructure
roles (``cdk deploy`` and ``cdk diff`` through the account's CDK bootstrap roles, nothing else)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from aws_cdk import Aws, CfnOutput, DefaultStackSynthesizer, Duration
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_route53 as route53
from constructs import Construct

from infra.config.delivery import Neighbour
from infra.config.settings import GithubSettings, IngressCertificateSettings
from infra.stacks.account import GITHUB_OIDC_HOST, github_oidc_provider_arn
from infra.stacks.base import PlatformStack
from infra.stacks.registry import ECR_PROMOTION_READ

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


# ECR_PROMOTION_READ: what the deploy role may read of the environment it promotes from
# (infra/config/delivery.yaml): find the image that environment runs (its deployed-* tags) and copy it,
# manifest and layers, into this environment's repository under the same digest (delivery/registry.py).

# The CDK bootstrap roles (``cdk bootstrap``'s template, names fixed by qualifier, account and region).
CDK_DEPLOY_ROLES = ("deploy-role", "file-publishing-role", "image-publishing-role", "lookup-role")
# What `cdk diff --method=template` calls on each stack (aws-cdk's loadCurrentTemplateWithNestedStacks).
CLOUDFORMATION_TEMPLATE_READ = [
    "cloudformation:DescribeStacks",
    "cloudformation:GetTemplate",
    "cloudformation:ListStackResources",
]


def github_subject(github: GithubSettings, environment: str | None) -> str:
    """The only token subject a role trusts: jobs bound to this GitHub environment, or (``None``) jobs of
    the repository's pull requests (the read-only diff).

    With the repository's immutable ids (GitHub docs, "OpenID Connect reference", immutable subject
    claims) the subject is ``repo:<owner>@<owner id>/<repo>@<repo id>:...``: a repository deleted and
    re-created under the same name by someone else does not match it.
    """
    if github.owner_id is not None and github.repository_id is not None:
        repository = f"{github.owner}@{github.owner_id}/{github.repository}@{github.repository_id}"
    else:
        repository = f"{github.owner}/{github.repository}"
    return f"repo:{repository}:" + (f"environment:{environment}" if environment else "pull_request")


def bootstrap_role_arns(scope: Construct, roles: tuple[str, ...], regions: list[str]) -> list[str]:
    """The CDK bootstrap roles of this account in ``regions``: ``cdk-<qualifier>-<role>-<account>-<region>``."""
    qualifier = (
        scope.node.try_get_context("@aws-cdk/core:bootstrapQualifier") or DefaultStackSynthesizer.DEFAULT_QUALIFIER
    )
    return [
        f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/cdk-{qualifier}-{role}-{Aws.ACCOUNT_ID}-{region}"
        for role in roles
        for region in regions
    ]


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
        infrastructure_regions: list[str],
        diffed_stacks: list[str],
        ingress_certificate: IngressCertificateSettings | None = None,
        other_clusters: Mapping[str, str] | None = None,
        promoted_from: Neighbour | None = None,
        **kwargs: Any,
    ) -> None:
        """``other_clusters``: region -> cluster name, for each other region of the environment.
        ``infrastructure_regions``: where this environment's stacks are (its regions, its account stack's).
        ``diffed_stacks``: the names (``*`` a wildcard) of the stacks a pull request's cdk diff reads.
        ``promoted_from``: the environment before this one in the promotion order, whose images it copies."""
        super().__init__(scope, construct_id, zones=zones, **kwargs)
        self.deploy_role = self._deploy_role(
            github, environment_name=environment_name, cluster=cluster, other_clusters=other_clusters
        )
        # IAM is global: this one role deploys to every region of the environment. Its ARN as the
        # role's attribute, which another region's stack can reference (Fn::GetStackOutput).
        self.deploy_role_arn = cast(iam.CfnRole, self.deploy_role.node.default_child).attr_arn
        self._images_policies(environment_name, repository_groups, other_clusters=other_clusters)
        self.promotion_policy = self._promotion_policy(environment_name, promoted_from)
        self.access_entry = deploy_access(self, cluster, self.deploy_role.role_arn, namespaces)
        self._infrastructure_roles(github, environment_name, infrastructure_regions, diffed_stacks)
        if ingress_certificate is not None:
            self._ingress_certificate(ingress_certificate, environment_name)
        CfnOutput(
            self,
            "DeployRoleArn",
            value=self.deploy_role.role_arn,
            description=f"Set as AWS_DEPLOY_ROLE_ARN in the GitHub environment '{environment_name}'",
        )

    def _deploy_role(
        self,
        github: GithubSettings,
        *,
        environment_name: str,
        cluster: eks.Cluster,
        other_clusters: Mapping[str, str] | None,
    ) -> iam.Role:
        """The deploy role, trusted by this GitHub environment's jobs, with its ``DeployPolicy``: log in to
        ECR and find the environment's clusters."""
        # The provider belongs to the account (the account stack, or whoever made it before): its ARN
        # follows from the account, so no reference to another stack is needed.
        provider_arn = github_oidc_provider_arn(self)

        deploy_role = iam.Role(
            self,
            "DeployRole",
            description=f"GitHub Actions deploys to {environment_name}: push images, helm upgrade in its namespaces",
            assumed_by=github_principal(provider_arn, github_subject(github, environment_name)),
        )
        iam.ManagedPolicy(
            self,
            "DeployPolicy",
            description=f"Log in to ECR and find the {environment_name} cluster",
            roles=[deploy_role],
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
        return deploy_role

    def _images_policies(
        self, environment_name: str, repository_groups: list[list[str]], *, other_clusters: Mapping[str, str] | None
    ) -> None:
        """The deploy role's push and pull of this environment's repositories (and their replicas)."""
        # ARNs from the names (fixed by convention): no reference to the registry stacks, so this stack
        # does not wait for them. `arn:<partition>:ecr:<region>:<account>:repository/` once per region
        # (this stack's: None), the names appended here: each format_arn is a call into the CDK engine.
        arn_prefixes = {
            region: self.format_arn(service="ecr", region=region, resource="repository", resource_name="")
            for region in [None, *(other_clusters or {})]
        }
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
                        resources=[arn_prefixes[None] + name for name in repositories],
                    ),
                    *(
                        [
                            iam.PolicyStatement(
                                sid="FindAndMarkTheReplicas",
                                # Images are pushed once, to the primary region; in the others the deploy
                                # finds the replica and tags it deployed-* (ECR_REPLICA_ACTIONS).
                                actions=ECR_REPLICA_ACTIONS,
                                resources=[
                                    arn_prefixes[region] + name for region in other_clusters for name in repositories
                                ],
                            )
                        ]
                        if other_clusters
                        else []
                    ),
                ],
            )

    def _promotion_policy(self, environment_name: str, promoted_from: Neighbour | None) -> iam.ManagedPolicy | None:
        """The deploy role's read of the images the environment before this one runs (none: nothing before it)."""
        if promoted_from is None:
            return None
        return iam.ManagedPolicy(
            self,
            "PromotionPolicy",
            description=f"Read the images {promoted_from.environment} runs, to promote them to {environment_name}",
            roles=[self.deploy_role],
            statements=[
                iam.PolicyStatement(
                    sid="ReadThePreviousEnvironmentsImages",
                    actions=ECR_PROMOTION_READ,
                    # Its registry: the primary region of the environment before this one, in its
                    # account (when its settings name one; else this one's). Another account's
                    # repositories admit this account by their policy (its registry stack).
                    resources=[promotion_source_arn(promoted_from)],
                )
            ],
        )

    def _infrastructure_roles(
        self,
        github: GithubSettings,
        environment_name: str,
        infrastructure_regions: list[str],
        diffed_stacks: list[str],
    ) -> None:
        """The roles of ``cdk deploy`` and of the pull requests' ``cdk diff``, and their outputs."""
        self.infrastructure_role = self._github_role(
            "Infrastructure",
            description=f"GitHub Actions runs cdk deploy for {environment_name}: the CDK bootstrap roles only",
            subject=github_subject(github, environment_name),
            policy_description=f"Assume the CDK bootstrap roles of {environment_name}'s regions (cdk deploy)",
            statements=[
                iam.PolicyStatement(
                    sid="AssumeTheCdkBootstrapRoles",
                    actions=["sts:AssumeRole"],
                    resources=bootstrap_role_arns(self, CDK_DEPLOY_ROLES, infrastructure_regions),
                )
            ],
            max_session_duration=Duration.hours(2),
        )
        # Pull requests run code no reviewer has approved yet: not the CDK lookup role (ReadOnlyAccess on the
        # whole account), only the deployed templates of this environment's stacks, which is all
        # `cdk diff --method=template` reads (DescribeStacks, GetTemplate; ListStackResources for nested
        # stacks). The CLI tries the lookup role, is refused, and goes on with these credentials.
        # In any region: the stacks of <project>-<env> are this environment's wherever they are (in its
        # regions, or where REGION= deployed it), and the policy reads the same whichever region synthesized it.
        self.diffed_stacks = diffed_stacks
        self.diff_role = self._github_role(
            "Diff",
            description=f"GitHub Actions pull requests run cdk diff against {environment_name}: its templates only",
            subject=github_subject(github, None),
            policy_description=f"Read the deployed templates of {environment_name}'s stacks (cdk diff)",
            statements=[
                iam.PolicyStatement(
                    sid="ReadTheDeployedTemplates",
                    actions=CLOUDFORMATION_TEMPLATE_READ,
                    resources=[
                        self.format_arn(
                            service="cloudformation",
                            region="*",
                            resource="stack",
                            resource_name=f"{name}/*",
                            partition=Aws.PARTITION,
                            account=Aws.ACCOUNT_ID,
                        )
                        for name in self.diffed_stacks
                    ],
                )
            ],
        )
        CfnOutput(
            self,
            "InfrastructureRoleArn",
            value=self.infrastructure_role.role_arn,
            description=f"Set as AWS_INFRA_ROLE_ARN in the GitHub environment '{environment_name}' (cdk deploy)",
        )
        CfnOutput(
            self,
            "DiffRoleArn",
            value=self.diff_role.role_arn,
            description=f"The '{environment_name}' entry of the repository variable AWS_DIFF_ROLE_ARNS (cdk diff)",
        )

    def _ingress_certificate(self, ingress_certificate: IngressCertificateSettings, environment_name: str) -> None:
        """The ingress certificate, validated by DNS in its hosted zone, and its output."""
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

    def _github_role(
        self,
        name: str,
        *,
        description: str,
        subject: str,
        policy_description: str,
        statements: list[iam.PolicyStatement],
        max_session_duration: Duration | None = None,
    ) -> iam.Role:
        """``<name>Role``, trusted by GitHub tokens with ``subject``, whose ``<name>Policy`` allows
        ``statements`` and nothing else."""
        role = iam.Role(
            self,
            f"{name}Role",
            description=description,
            assumed_by=github_principal(github_oidc_provider_arn(self), subject),
            max_session_duration=max_session_duration,
        )
        iam.ManagedPolicy(
            self,
            f"{name}Policy",
            description=policy_description,
            roles=[role],
            statements=statements,
        )
        return role


def promotion_source_arn(source: Neighbour) -> str:
    """Every repository of the environment promoted from: ``<project>-<env>/*`` in its primary region."""
    account = source.account or Aws.ACCOUNT_ID
    return f"arn:{Aws.PARTITION}:ecr:{source.region}:{account}:repository/{source.name_prefix}/*"


def github_principal(provider_arn: str, subject: str) -> iam.FederatedPrincipal:
    """GitHub Actions' OIDC tokens for STS with exactly this subject."""
    return iam.FederatedPrincipal(
        provider_arn,
        conditions={
            "StringEquals": {f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com", f"{GITHUB_OIDC_HOST}:sub": subject}
        },
        assume_role_action="sts:AssumeRoleWithWebIdentity",
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
