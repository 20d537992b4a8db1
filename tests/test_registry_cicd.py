"""ECR repositories per service; the GitHub OIDC deploy role, what it may do and who may assume it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.config.project import cdk_json_context
from infra.config.settings import SettingsError, environments_sharing_account
from tests.conftest import CONFIGURED
from tests.projects import (
    EXAMPLES,
    ROOT,
    example_data,
    example_settings,
    load_yaml,
    merged,
    settings_of,
    write_environment,
)
from tests.subjects import synth
from tests.synth import Synthesized, only, resources, text


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
        deployed, untagged, tagged = sorted(rules, key=lambda r: r["rulePriority"])
        # First: images the deploy workflow marked deployed; no later rule may expire them.
        assert deployed["selection"] == {
            "tagStatus": "tagged",
            "tagPrefixList": ["deployed-"],
            "countType": "imageCountMoreThan",
            "countNumber": registry.keep_deployed_images,
        }
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


def test_the_deploy_workflow_marks_what_it_deploys_with_the_tag_the_lifecycle_keeps() -> None:
    from infra.stacks.registry import DEPLOYED_TAG_PREFIX

    workflow = (ROOT / ".github" / "workflows" / "deploy-service.yml").read_text(encoding="utf-8")
    steps = load_yaml(workflow)["jobs"]["deploy"]["steps"]
    names = [step["name"] for step in steps]
    mark = names.index("Mark the image deployed, so the registry lifecycle keeps it")
    assert mark < next(i for i, name in enumerate(names) if name.startswith("Helm upgrade"))
    run = steps[mark]["run"]
    assert f'tag="{DEPLOYED_TAG_PREFIX}' in run
    assert 'aws ecr put-image --region "$region" --repository-name "$repository" --image-tag "$tag"' in run


def test_repositories_are_retained_where_data_is_and_emptied_and_deleted_elsewhere(env: Synthesized) -> None:
    for repository in _repositories(env).values():
        if env.settings.retain_data:
            assert repository["DeletionPolicy"] == "Retain"
            assert repository["Properties"].get("EmptyOnDelete", False) is False
        else:
            assert repository["DeletionPolicy"] == "Delete"
            assert repository["Properties"]["EmptyOnDelete"] is True


def _deploy_role(env: Synthesized) -> dict[str, Any]:
    roles = resources(env.template("cicd"), "AWS::IAM::Role")
    (role,) = [r for k, r in roles.items() if k.startswith("DeployRole")]
    return dict(role["Properties"])


def test_deploy_role_is_trusted_only_by_this_environments_github_jobs(env: Synthesized) -> None:
    (statement,) = _deploy_role(env)["AssumeRolePolicyDocument"]["Statement"]
    github = env.settings.github
    if github.owner_id is not None:
        repository = f"{github.owner}@{github.owner_id}/{github.repository}@{github.repository_id}"
    else:
        repository = f"{github.owner}/{github.repository}"
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert text(statement["Principal"]["Federated"]) == _provider_arn(env)
    assert statement["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": f"repo:{repository}:environment:{env.settings.environment}",
        }
    }
    assert "*" not in json.dumps(statement["Condition"])


def _provider_arn(env: Synthesized) -> str:
    """The account's GitHub OIDC provider, from the account alone (IAM names it by the issuer)."""
    return "arn:<AWS::Partition>:iam::<AWS::AccountId>:oidc-provider/token.actions.githubusercontent.com"


def _account_stack(env: Synthesized) -> dict[str, Any]:
    path = env.outdir / f"{env.settings.project}-account.template.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


def test_the_github_oidc_provider_lives_once_per_account_in_the_account_stack(env: Synthesized) -> None:
    for path in env.outdir.glob(f"{env.settings.stack_prefix}-*.template.json"):
        providers = resources(json.loads(path.read_text(encoding="utf-8")), "AWS::IAM::OIDCProvider").values()
        assert "token.actions" not in json.dumps(list(providers)), path.name
    path = env.outdir / f"{env.settings.account_stack_name}.template.json"
    if env.settings.account_stack.github_oidc_provider == "existing":
        # The account has it already: no account stack, or one with the replication rules only.
        assert not path.exists() or not resources(_account_stack(env), "AWS::IAM::OIDCProvider")
        return
    account = _account_stack(env)
    provider = only(account, "AWS::IAM::OIDCProvider")
    assert provider["Properties"]["Url"] == "https://token.actions.githubusercontent.com"
    assert provider["Properties"]["ClientIdList"] == ["sts.amazonaws.com"]
    # Kept when the stack goes: every environment of the account trusts it.
    assert provider["DeletionPolicy"] == "Retain"
    assert not resources(account, "AWS::Lambda::Function")


@pytest.mark.needs_synth("*configured")
def test_every_environment_sharing_an_account_renders_the_same_account_stack() -> None:
    """Every environment's app includes the account stack: deploying any of them leaves it as it is."""
    for subject in CONFIGURED:
        env = synth(subject)
        if not (env.outdir / f"{env.settings.account_stack_name}.template.json").exists():
            continue
        artifacts = env.manifest()["artifacts"]
        assert artifacts[env.settings.account_stack_name]["properties"]["terminationProtection"] is True
        assert env.settings.account_stack_name in artifacts[f"{env.settings.stack_prefix}-cicd"]["dependencies"]
        for _, other, _ in environments_sharing_account(env.settings):
            (theirs,) = [s for s in CONFIGURED if s.project == subject.project and s.environment == other]
            assert _account_stack(synth(theirs)) == _account_stack(env), (subject.label, theirs.label)


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
    several = bool(env.settings.other_regions)
    find = "FindThisEnvironmentsClusters" if several else "FindThisCluster"
    replicas = {"FindAndMarkTheReplicas"} if several else set()  # tests/test_multi_region.py
    assert set(by_sid) == {"PushAndPullThisEnvironmentsImages", "LogInToEcr", find} | replicas
    # One push/pull policy per registry shard, each naming that shard's repositories exactly.
    pushes = by_sid["PushAndPullThisEnvironmentsImages"]
    assert len(pushes) == len(env.shards("registry"))
    names = []
    for push in pushes:
        assert push["Action"] == ECR_PUSH_PULL
        resources_ = push["Resource"] if isinstance(push["Resource"], list) else [push["Resource"]]
        # arn:aws:ecr:<region>:<account>:repository/<prefix>/<service>, built from the name.
        head = f"arn:aws:ecr:{env.settings.region}:{env.settings.account or '<AWS::AccountId>'}:repository/"
        for arn in resources_:
            assert text(arn).startswith(head)
            names.append(text(arn).removeprefix(head))
    assert sorted(names) == sorted(_repositories(env))
    assert by_sid["LogInToEcr"] == [
        {"Action": "ecr:GetAuthorizationToken", "Effect": "Allow", "Resource": "*", "Sid": "LogInToEcr"}
    ]
    (cluster,) = by_sid[find]
    assert cluster["Action"] == "eks:DescribeCluster"
    clusters = [text(c) for c in (cluster["Resource"] if several else [cluster["Resource"]])]
    assert len(clusters) == len(env.settings.all_regions)
    # This region's cluster by the eks stack's output; another region's by its ARN (its name is the same).
    (here,) = [c for c in clusters if c.startswith(f"<{env.settings.stack_prefix}-eks/")]
    others = sorted(c for c in clusters if c != here)
    assert [o.split(":")[3] for o in others] == sorted(env.settings.other_regions)
    assert all(o.endswith(f":cluster/{env.settings.name_prefix}") for o in others)


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


@pytest.fixture(scope="module")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The production example (it has an ingress certificate) in an account that has the GitHub provider."""
    from aws_cdk import App

    from infra.platform import addon_values, build_platform

    settings = settings_of(EXAMPLES, "live")
    assert settings.ingress_certificate is not None
    settings = settings.model_copy(
        update={"account_stack": settings.account_stack.model_copy(update={"github_oidc_provider": "existing"})}
    )
    app = App(outdir=str(tmp_path_factory.mktemp("variant")), context=cdk_json_context())
    return app, build_platform(app, settings, addon_values=addon_values("live", EXAMPLES.helm_values))


def test_an_account_that_has_the_provider_gets_no_account_stack(variant: Any) -> None:
    from aws_cdk.assertions import Template

    app, platform = variant
    assert platform.account is None
    assert [s.stack_name for s in app.node.children if hasattr(s, "stack_name")].count("acme-account") == 0
    template = Template.from_stack(platform.cicd).to_json()
    role = next(r for k, r in template["Resources"].items() if k.startswith("DeployRole"))
    principal = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Federated"]
    assert (
        text(principal)
        == "arn:<AWS::Partition>:iam::<AWS::AccountId>:oidc-provider/token.actions.githubusercontent.com"
    )


def test_the_platform_can_create_and_dns_validate_the_ingress_certificate(variant: Any) -> None:
    from aws_cdk.assertions import Template

    _, platform = variant
    template = Template.from_stack(platform.cicd).to_json()
    (cert,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::CertificateManager::Certificate"]
    assert cert["Properties"]["DomainName"] == "*.acme.example"
    assert cert["Properties"]["ValidationMethod"] == "DNS"
    assert cert["Properties"]["DomainValidationOptions"] == [
        {"DomainName": "*.acme.example", "HostedZoneId": "Z0123456789ABCDEFGHIJ"}
    ]
    assert "CertificateArn" in template["Outputs"]


def _environments(tmp_path: Path, **files: dict[str, Any]) -> Path:
    """Environment files from the examples (``prod`` from the production one, any other name from the
    non-production one) with top-level ``changes``, side by side in one directory."""
    for name, changes in files.items():
        write_environment(tmp_path, name, merged(example_data("live" if name == "prod" else "sandbox"), changes))
    return tmp_path


def _load(directory: Path, name: str, overrides: dict[str, str | None] | None = None) -> Any:
    from infra.config.project import Project

    return Project(directory).settings(name, overrides)


def test_environments_sharing_an_account_share_its_stack_with_no_settings_edits(tmp_path: Path) -> None:
    directory = _environments(tmp_path, dev={}, prod={}, qa={})
    for name in ("dev", "prod", "qa"):
        assert _load(directory, name).account_stack_name == "acme-account"


@pytest.mark.parametrize(
    "prod_changes",
    [
        {"account_stack": {"region": "eu-west-1"}},
        {"region": "eu-west-1"},
        {"project": "other-ops"},
        {"account_stack": {"github_oidc_provider": "existing"}},
    ],
)
def test_settings_that_would_create_the_provider_twice_are_refused(
    tmp_path: Path, prod_changes: dict[str, Any]
) -> None:
    directory = _environments(tmp_path, dev={}, prod=prod_changes)
    with pytest.raises(
        SettingsError, match=r"environments 'dev' and 'prod' may share an AWS account .* created\s+twice"
    ):
        _load(directory, "dev")


def test_environments_in_named_different_accounts_may_differ(tmp_path: Path) -> None:
    directory = _environments(
        tmp_path, dev={"account": "111111111111"}, prod={"account": "222222222222", "region": "eu-west-1"}
    )
    assert _load(directory, "dev").account_stack_region == "us-east-1"
    assert _load(directory, "prod").account_stack_region == "eu-west-1"


def test_a_region_override_does_not_move_the_account_stack(tmp_path: Path) -> None:
    directory = _environments(tmp_path, dev={})
    assert _load(directory, "dev", {"region": "eu-west-1"}).account_stack_region == "us-east-1"


def test_immutable_repository_ids_change_the_trusted_subject() -> None:
    from infra.stacks.cicd import github_subject

    github = settings_of(EXAMPLES, "sandbox").github.model_copy(update={"owner_id": 123456, "repository_id": 456789})
    assert github_subject(github, "live") == "repo:acme-corp@123456/platform@456789:environment:live"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"owner": "*"}, r"'github.owner' = '\*' must be a GitHub user or organisation name"),
        ({"repository": "cloud*"}, r"'github.repository' = 'cloud\*' must be a GitHub repository name"),
        ({"oidc_provider_arn": "arn:aws:iam::123:oidc-provider/x"}, r"replaced by account_stack.github_oidc_provider"),
        ({"owner_id": 123}, r"github.owner_id = 123 and github.repository_id = None: set both"),
        ({"owner_id": 0, "repository_id": 5}, r"'github.owner_id' = 0 .*greater than or equal to 1"),
    ],
)
def test_github_settings_are_checked(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        example_settings(tmp_path, "live", {"github": changes})


def test_a_certificate_outside_its_zone_is_refused(tmp_path: Path) -> None:
    certificate = {
        "domain_name": "api.example.org",
        "hosted_zone_id": "Z0123456789ABCDEFGHIJ",
        "hosted_zone_name": "example.com",
    }
    with pytest.raises(SettingsError, match=r"'api.example.org' is not in the hosted zone 'example.com'"):
        example_settings(tmp_path, "live", replace={"ingress_certificate": certificate})
