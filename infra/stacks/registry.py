"""Registry stack: one ECR repository per catalogue service."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.config.settings import RegistrySettings, ServiceSettings
from infra.constructs.encryption_key import EncryptionKey
from infra.constructs.removal import kept_if
from infra.stacks.base import PlatformStack

# What the next environment's deploy role reads when it promotes an image (infra/stacks/cicd.py).
ECR_PROMOTION_READ = ["ecr:BatchGetImage", "ecr:DescribeImages", "ecr:GetDownloadUrlForLayer"]


def repository_name(name_prefix: str, service: str) -> str:
    return f"{name_prefix}/{service}"


# The tag prefix the deploy workflow marks deployed images with (.github/workflows/deploy-service.yml).
DEPLOYED_TAG_PREFIX = "deployed-"


class RegistryStack(PlatformStack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        zones: list[str],
        shard: int,
        services: list[ServiceSettings],
        registry: RegistrySettings,
        name_prefix: str,
        retain_data: bool,
        pulled_by_account: str | None = None,
        **kwargs: Any,
    ) -> None:
        """``pulled_by_account``: the account of the next environment in the promotion order, when it is
        another one; its deploy role copies the images this environment runs (read only)."""
        super().__init__(scope, construct_id, zones=zones, **kwargs)
        # One key per shard; its alias names the shard, as an alias name is unique in the account and region.
        self.key = EncryptionKey(self, "Key", alias_prefix=name_prefix, purpose=f"ecr-{shard}", retain=retain_data).key
        self.repositories: dict[str, ecr.Repository] = {}
        # Shared by every repository of the stack (built once: each is a call into the CDK engine).
        lifecycle_rules = _lifecycle_rules(registry)
        removal = kept_if(retain_data)
        encryption = ecr.RepositoryEncryption.KMS
        registry_host = f"{self.account}.dkr.ecr.{self.region}.{self.url_suffix}"
        for service in services:
            name = repository_name(name_prefix, service.name)
            self.repositories[service.name] = self._repository(
                service.name,
                name,
                lifecycle_rules=lifecycle_rules,
                encryption=encryption,
                removal=removal,
                retain_data=retain_data,
                pulled_by_account=pulled_by_account,
            )
            CfnOutput(
                self,
                f"RepositoryUri-{service.name}",
                value=f"{registry_host}/{name}",
                description=f"ECR repository of {service.name}",
            )

    def _repository(
        self,
        service: str,
        name: str,
        *,
        lifecycle_rules: list[ecr.LifecycleRule],
        encryption: ecr.RepositoryEncryption,
        removal: RemovalPolicy,
        retain_data: bool,
        pulled_by_account: str | None,
    ) -> ecr.Repository:
        """One service's repository: immutable tags, scanned on push, under the shard's key."""
        repository = ecr.Repository(
            self,
            f"Repository-{service}",
            repository_name=name,
            # A tag names one image forever: a deploy of tag X is reproducible and auditable.
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            image_scan_on_push=True,
            encryption=encryption,
            encryption_key=self.key,
            lifecycle_rules=lifecycle_rules,
            removal_policy=removal,
            empty_on_delete=not retain_data,
        )
        if pulled_by_account is not None:
            # Cross-account access needs both sides: this policy admits the account, whose deploy role's
            # own policy names these repositories (its cicd stack). ECR decrypts the layers with its
            # own grant on the key: the reader needs no key permission.
            repository.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="PromotedToTheNextEnvironment",
                    principals=[iam.AccountPrincipal(pulled_by_account)],
                    actions=ECR_PROMOTION_READ,
                )
            )
        return repository


def _lifecycle_rules(registry: RegistrySettings) -> list[ecr.LifecycleRule]:
    """The repositories' lifecycle rules (lifecycle_policy renders the same rules as JSON)."""
    return [
        # The deploy workflow adds a deployed-<run> tag to every image it deploys. An image matched
        # by a rule's tag filter can only be expired by that rule, never by a later one (ECR user
        # guide, lifecycle policy evaluation), so rule 3 never touches a deployed image.
        ecr.LifecycleRule(
            rule_priority=1,
            description=f"keep deployed images: the newest {registry.keep_deployed_images} of them",
            tag_status=ecr.TagStatus.TAGGED,
            tag_prefix_list=[DEPLOYED_TAG_PREFIX],
            max_image_count=registry.keep_deployed_images,
        ),
        ecr.LifecycleRule(
            rule_priority=2,
            description=f"expire untagged images after {registry.untagged_image_days} days",
            tag_status=ecr.TagStatus.UNTAGGED,
            max_image_age=Duration.days(registry.untagged_image_days),
        ),
        ecr.LifecycleRule(
            rule_priority=3,
            # ECR counts deployed images here too, but only rule 1 may expire them.
            description=f"expire tagged images beyond the newest {registry.keep_tagged_images}, deployed kept",
            tag_status=ecr.TagStatus.TAGGED,
            tag_pattern_list=["*"],
            max_image_count=registry.keep_tagged_images,
        ),
    ]


def lifecycle_policy(registry: RegistrySettings) -> str:
    """The lifecycle policy text RegistryStack's rules render to (a test compares the two), for the
    replicas' repository creation template, which takes the JSON itself."""

    def rule(priority: int, description: str, selection: dict[str, Any]) -> dict[str, Any]:
        return {
            "rulePriority": priority,
            "description": description,
            "selection": selection,
            "action": {"type": "expire"},
        }

    rules = [
        rule(
            1,
            f"keep deployed images: the newest {registry.keep_deployed_images} of them",
            {
                "tagStatus": "tagged",
                "tagPrefixList": [DEPLOYED_TAG_PREFIX],
                "countType": "imageCountMoreThan",
                "countNumber": registry.keep_deployed_images,
            },
        ),
        rule(
            2,
            f"expire untagged images after {registry.untagged_image_days} days",
            {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countNumber": registry.untagged_image_days,
                "countUnit": "days",
            },
        ),
        rule(
            3,
            f"expire tagged images beyond the newest {registry.keep_tagged_images}, deployed kept",
            {
                "tagStatus": "tagged",
                "tagPatternList": ["*"],
                "countType": "imageCountMoreThan",
                "countNumber": registry.keep_tagged_images,
            },
        ),
    ]
    return json.dumps({"rules": rules}, separators=(",", ":"))


class ReplicaRegistryStack(PlatformStack):
    """Another region of the environment: how ECR creates the replicas of its repositories here.

    Images are pushed once, to the primary region; the account stack's replication rule copies them
    here, and ECR creates each replica repository from this region's repository creation template
    (AWS::ECR::RepositoryCreationTemplate, AppliedFor REPLICATION, prefix ``<project>-<env>/``) with the
    primary's immutability and lifecycle, encrypted under this region's own key. Without a template a
    replica would get mutable tags, AES-256 and no lifecycle policy (ECR user guide, repository
    creation templates).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        zones: list[str],
        services: list[str],
        registry: RegistrySettings,
        name_prefix: str,
        retain_data: bool,
        tags: dict[str, str],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, zones=zones, **kwargs)
        self.key = EncryptionKey(self, "Key", alias_prefix=name_prefix, purpose="ecr-replicas", retain=retain_data).key
        # A template that encrypts with a customer key needs a role ECR assumes to create the
        # repository and its key grant (ECR user guide, "IAM role for repository creation templates").
        # Here limited to this environment's repositories (known by name) and this key.
        self.role = iam.Role(
            self,
            "ReplicaCreationRole",
            description=f"ECR creates the replicas of {name_prefix}'s repositories in {self.region}",
            assumed_by=iam.ServicePrincipal("ecr.amazonaws.com"),
        )
        policy = iam.ManagedPolicy(
            self,
            "ReplicaCreationPolicy",
            description=f"Create {name_prefix}'s replica repositories and their key grants",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    sid="CreateThisEnvironmentsReplicas",
                    actions=["ecr:CreateRepository", "ecr:ReplicateImage", "ecr:TagResource"],
                    resources=[
                        self.format_arn(
                            service="ecr", resource="repository", resource_name=repository_name(name_prefix, s)
                        )
                        for s in services
                    ],
                ),
                iam.PolicyStatement(
                    sid="GrantsOnTheReplicasKey",
                    actions=["kms:CreateGrant", "kms:RetireGrant", "kms:DescribeKey"],
                    resources=[self.key.key_arn],
                ),
            ],
        )
        self.template = ecr.CfnRepositoryCreationTemplate(
            self,
            "ReplicaTemplate",
            # ECR always assumes a "/" after a template's prefix ("prod" applies to prod/...; API
            # reference, CreateRepositoryCreationTemplate): the namespace without its slash.
            prefix=name_prefix,
            applied_for=["REPLICATION"],
            description=f"Replicas of {name_prefix}'s repositories: as in the primary region",
            image_tag_mutability="IMMUTABLE",
            encryption_configuration=ecr.CfnRepositoryCreationTemplate.EncryptionConfigurationProperty(
                encryption_type="KMS", kms_key=self.key.key_arn
            ),
            lifecycle_policy=lifecycle_policy(registry),
            custom_role_arn=self.role.role_arn,
            # The tags the primary's repositories carry (cost allocation per project and environment).
            resource_tags=[{"key": k, "value": v} for k, v in sorted(tags.items())],
        )
        # The role and its policy before the template that uses them.
        self.template.node.add_dependency(self.role, policy)
        registry_host = f"{self.account}.dkr.ecr.{self.region}.{self.url_suffix}"
        CfnOutput(
            self,
            "ReplicaRegistry",
            value=f"{registry_host}/{name_prefix}/",
            description="Where the replicas of this environment's images appear (created at the first replication)",
        )
