"""Registry stack: one ECR repository per catalogue service."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy
from aws_cdk import aws_ecr as ecr
from constructs import Construct

from infra.config.settings import RegistrySettings, ServiceSettings
from infra.constructs.encryption_key import EncryptionKey
from infra.stacks.base import PlatformStack


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
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, zones=zones, **kwargs)
        # One key per shard; its alias names the shard, as an alias name is unique in the account and region.
        self.key = EncryptionKey(self, "Key", alias_prefix=name_prefix, purpose=f"ecr-{shard}", retain=retain_data).key
        self.repositories: dict[str, ecr.Repository] = {}
        # Shared by every repository of the stack (built once: each is a call into the CDK engine).
        lifecycle_rules = [
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
        kms = ecr.RepositoryEncryption.KMS
        removal = RemovalPolicy.RETAIN if retain_data else RemovalPolicy.DESTROY
        registry_host = f"{self.account}.dkr.ecr.{self.region}.{self.url_suffix}"
        for service in services:
            name = repository_name(name_prefix, service.name)
            repository = ecr.Repository(
                self,
                f"Repository-{service.name}",
                repository_name=name,
                # A tag names one image forever: a deploy of tag X is reproducible and auditable.
                image_tag_mutability=ecr.TagMutability.IMMUTABLE,
                image_scan_on_push=True,
                encryption=kms,
                encryption_key=self.key,
                lifecycle_rules=lifecycle_rules,
                removal_policy=removal,
                empty_on_delete=not retain_data,
            )
            self.repositories[service.name] = repository
            CfnOutput(
                self,
                f"RepositoryUri-{service.name}",
                value=f"{registry_host}/{name}",
                description=f"ECR repository of {service.name}",
            )
