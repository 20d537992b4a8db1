"""ECR repositories per service; the GitHub OIDC deploy role, what it may do and who may assume it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config.settings import ENVIRONMENTS_DIR, SettingsError, load_settings
from tests.synth import Synthesized, cdk_json_context, only, resources


def _repositories(env: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["RepositoryName"]: r
        for template in env.shards("registry").values()
        for r in resources(template, "AWS::ECR::Repository").values()
    }


def test_one_repository_per_catalogue_service(env: Synthesized) -> None:
    prefix = env.settings.stack_prefix
    assert set(_repositories(env)) == {f"{prefix}/{s.name}" for s in env.settings.services}
    outputs = {k for t in env.shards("registry").values() for k in t["Outputs"]}
    for service in env.settings.services:
        assert f"RepositoryUri{service.name}" in outputs


def test_repositories_are_immutable_scanned_and_encrypted_with_a_customer_key(env: Synthesized) -> None:
    for template in env.shards("registry").values():
        (key_id,) = resources(template, "AWS::KMS::Key")
        assert template["Resources"][key_id]["Properties"]["EnableKeyRotation"] is True
        for repository in resources(template, "AWS::ECR::Repository").values():
            props = repository["Properties"]
            assert props["ImageTagMutability"] == "IMMUTABLE"
            assert props["ImageScanningConfiguration"] == {"ScanOnPush": True}
            assert props["EncryptionConfiguration"] == {
                "EncryptionType": "KMS",
                "KmsKey": {"Fn::GetAtt": [key_id, "Arn"]},
            }


def test_lifecycle_rules_follow_settings(env: Synthesized) -> None:
    registry = env.settings.registry
    for repository in _repositories(env).values():
        rules = json.loads(repository["Properties"]["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
        untagged, tagged = sorted(rules, key=lambda r: r["rulePriority"])
        assert untagged["selection"] == {
            "tagStatus": "untagged",
            "countType": "sinceImagePushed",
            "countNumber": registry.untagged_image_days,
            "countUnit": "days",
        }
        assert tagged["selection"] == {
            "tagStatus": "tagged",
            "tagPatternList": ["*"],
            "countType": "imageCountMoreThan",
            "countNumber": registry.keep_tagged_images,
        }


def test_prod_repositories_are_retained_and_dev_ones_deletable(dev: Synthesized, prod: Synthesized) -> None:
    for repository in _repositories(prod).values():
        assert repository["DeletionPolicy"] == "Retain"
        assert "EmptyOnDelete" not in repository["Properties"] or repository["Properties"]["EmptyOnDelete"] is False
    for repository in _repositories(dev).values():
        assert repository["DeletionPolicy"] == "Delete"
        assert repository["Properties"]["EmptyOnDelete"] is True


def _deploy_role(env: Synthesized) -> dict[str, Any]:
    roles = resources(env.template("cicd"), "AWS::IAM::Role")
    (role,) = [r for k, r in roles.items() if k.startswith("DeployRole")]
    return dict(role["Properties"])


def test_deploy_role_is_trusted_only_by_this_environments_github_jobs(env: Synthesized) -> None:
    (statement,) = _deploy_role(env)["AssumeRolePolicyDocument"]["Statement"]
    github = env.settings.github
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {
        "Federated": {"Ref": next(iter(resources(env.template("cicd"), "AWS::IAM::OIDCProvider")))}
    }
    assert statement["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": (
                f"repo:{github.owner}/{github.repository}:environment:{env.settings.environment}"
            ),
        }
    }
    assert "*" not in json.dumps(statement["Condition"])


def test_github_oidc_provider_is_native_and_for_sts(env: Synthesized) -> None:
    provider = only(env.template("cicd"), "AWS::IAM::OIDCProvider")["Properties"]
    assert provider["Url"] == "https://token.actions.githubusercontent.com"
    assert provider["ClientIdList"] == ["sts.amazonaws.com"]
    assert not resources(env.template("cicd"), "AWS::Lambda::Function")


def test_deploy_role_may_push_this_environments_images_and_describe_this_cluster(env: Synthesized) -> None:
    from infra.stacks.cicd import ECR_PUSH_PULL

    template = env.template("cicd")
    role_id = next(k for k in template["Resources"] if k.startswith("DeployRole"))
    policies = resources(template, "AWS::IAM::ManagedPolicy")
    for policy in policies.values():
        assert policy["Properties"]["Roles"] == [{"Ref": role_id}]
    statements = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    by_sid: dict[str, list[dict[str, Any]]] = {}
    for statement in statements:
        by_sid.setdefault(statement["Sid"], []).append(statement)
    assert set(by_sid) == {"PushAndPullThisEnvironmentsImages", "LogInToEcr", "FindThisCluster"}
    # One push/pull policy per registry shard, each naming that shard's repositories exactly.
    pushes = by_sid["PushAndPullThisEnvironmentsImages"]
    assert len(pushes) == len(env.shards("registry"))
    names = []
    for push in pushes:
        assert push["Action"] == ECR_PUSH_PULL
        resources_ = push["Resource"] if isinstance(push["Resource"], list) else [push["Resource"]]
        # arn:aws:ecr:<region>:<account>:repository/<prefix>/<service>, built from the name.
        for arn in resources_:
            head, account, tail = arn["Fn::Join"][1]
            assert (head, account) == (f"arn:aws:ecr:{env.settings.region}:", {"Ref": "AWS::AccountId"})
            names.append(tail.removeprefix(":repository/"))
    assert sorted(names) == sorted(_repositories(env))
    assert by_sid["LogInToEcr"] == [
        {"Action": "ecr:GetAuthorizationToken", "Effect": "Allow", "Resource": "*", "Sid": "LogInToEcr"}
    ]
    (cluster,) = by_sid["FindThisCluster"]
    assert cluster["Action"] == "eks:DescribeCluster"
    assert cluster["Resource"]["Fn::GetStackOutput"]["StackName"] == f"{env.settings.stack_prefix}-eks"


def test_deploy_role_edits_only_this_environments_service_namespaces(env: Synthesized) -> None:
    entry = only(env.template("cicd"), "AWS::EKS::AccessEntry")["Properties"]
    assert entry["PrincipalArn"]["Fn::GetAtt"][0].startswith("DeployRole")
    (policy,) = entry["AccessPolicies"]
    assert policy["PolicyArn"]["Fn::Join"][1][-1] == ":eks::aws:cluster-access-policy/AmazonEKSEditPolicy"
    environment = env.settings.environment
    assert policy["AccessScope"] == {
        "Type": "namespace",
        "Namespaces": [f"{s.name}-{environment}" for s in env.settings.services],
    }
    assert entry["ClusterName"]["Fn::GetStackOutput"]["StackName"] == f"{env.settings.stack_prefix}-eks"


def test_no_long_lived_access_keys_anywhere(env: Synthesized) -> None:
    for path in env.outdir.glob("*.template.json"):
        template = json.loads(path.read_text(encoding="utf-8"))
        assert not resources(template, "AWS::IAM::AccessKey"), path.name
        assert not resources(template, "AWS::IAM::User"), path.name


def test_deploy_role_arn_is_an_output(env: Synthesized) -> None:
    outputs = env.template("cicd")["Outputs"]
    assert outputs["DeployRoleArn"]["Value"]["Fn::GetAtt"][0].startswith("DeployRole")


def test_an_existing_oidc_provider_is_imported_not_created(tmp_path: Path) -> None:
    from aws_cdk import App
    from aws_cdk.assertions import Template

    from infra.platform import addon_values, build_platform

    arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    settings = load_settings("dev")
    settings = settings.model_copy(update={"github": settings.github.model_copy(update={"oidc_provider_arn": arn})})
    app = App(outdir=str(tmp_path), context=cdk_json_context())
    platform = build_platform(app, settings, addon_values=addon_values("dev"))
    template = Template.from_stack(platform.cicd).to_json()
    assert not [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::OIDCProvider"]
    role = next(r for k, r in template["Resources"].items() if k.startswith("DeployRole"))
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Federated": arn}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"owner": "*"}, r"'github.owner' = '\*' must be a GitHub user or organisation name"),
        ({"repository": "cloud*"}, r"'github.repository' = 'cloud\*' must be a GitHub repository name"),
        ({"oidc_provider_arn": "arn:aws:iam::123:oidc-provider/x"}, r"must be the ARN of the GitHub OIDC provider"),
    ],
)
def test_github_settings_are_checked(tmp_path: Path, changes: dict[str, str], message: str) -> None:
    data = yaml.safe_load((ENVIRONMENTS_DIR / "prod.yaml").read_text(encoding="utf-8"))
    data["github"] = {**data["github"], **changes}
    (tmp_path / "qa.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(SettingsError, match=message):
        load_settings("qa", directory=tmp_path)
