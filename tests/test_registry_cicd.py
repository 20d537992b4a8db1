"""ECR repositories per service; the GitHub OIDC deploy role, what it may do and who may assume it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from infra.config.settings import SettingsError, environments_sharing_account
from tests.conftest import CONFIGURED
from tests.conftest import subject as subject_of
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
from tests.synth import Synthesized, kept, only, resources, text


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


def test_the_deploy_workflow_marks_what_it_deployed_with_the_tag_the_lifecycle_keeps() -> None:
    """After the rollout succeeded (the mark names what runs: the promotion reads it), with the prefix the
    registry's first lifecycle rule keeps."""
    from delivery.registry import DEPLOYED_TAG
    from infra.stacks.registry import DEPLOYED_TAG_PREFIX

    workflow = (ROOT / ".github" / "workflows" / "deploy-service.yml").read_text(encoding="utf-8")
    steps = load_yaml(workflow)["jobs"]["deploy"]["steps"]
    names = [step["name"] for step in steps]
    mark = next(i for i, name in enumerate(names) if name.startswith("Mark the image deployed"))
    assert mark > names.index("Verify the rollout and print the address")
    assert "python -m delivery mark-deployed" in steps[mark]["run"]
    assert DEPLOYED_TAG.pattern.startswith(DEPLOYED_TAG_PREFIX)


def test_repositories_are_retained_where_data_is_and_emptied_and_deleted_elsewhere(env: Synthesized) -> None:
    for repository in _repositories(env).values():
        if env.settings.retain_data:
            assert kept(repository)
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
    assert kept(provider)
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
    policies = {
        k: p
        for k, p in resources(template, "AWS::IAM::ManagedPolicy").items()
        if p["Properties"]["Roles"] == [{"Ref": role_id}]
    }
    statements = [
        s
        for p in policies.values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Sid"] != "ReadThePreviousEnvironmentsImages"  # test_the_deploy_role_reads_only_the_environment_before
    ]
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


@pytest.mark.needs_synth("examples-live-provider-exists")
def test_an_account_that_has_the_provider_gets_no_account_stack() -> None:
    env = synth(subject_of("examples-live-provider-exists"))
    assert env.settings.account_stack.github_oidc_provider == "existing"
    assert env.settings.account_stack_name not in env.manifest()["artifacts"]
    assert not (env.outdir / f"{env.settings.account_stack_name}.template.json").exists()
    # The deploy role trusts the account's own provider, by its ARN.
    template = env.template("cicd")
    role = next(r for k, r in template["Resources"].items() if k.startswith("DeployRole"))
    principal = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Federated"]
    assert (
        text(principal)
        == "arn:<AWS::Partition>:iam::<AWS::AccountId>:oidc-provider/token.actions.githubusercontent.com"
    )


@pytest.mark.needs_synth("examples-live-provider-exists")
def test_the_platform_can_create_and_dns_validate_the_ingress_certificate() -> None:
    env = synth(subject_of("examples-live-provider-exists"))  # the production example: it has a certificate
    assert env.settings.ingress_certificate is not None
    template = env.template("cicd")
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


# --- Delivery: the infrastructure roles, promotion (tests/test_delivery.py has the workflows' side) -----


def _role(env: Synthesized, prefix: str) -> tuple[str, dict[str, Any]]:
    roles = resources(env.template("cicd"), "AWS::IAM::Role")
    ((role_id, role),) = [(k, r) for k, r in roles.items() if k.startswith(prefix)]
    return role_id, dict(role["Properties"])


def _statements_of(env: Synthesized, role_id: str) -> list[dict[str, Any]]:
    return [
        s
        for p in resources(env.template("cicd"), "AWS::IAM::ManagedPolicy").values()
        if p["Properties"]["Roles"] == [{"Ref": role_id}]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def _subject(env: Synthesized, suffix: str) -> str:
    github = env.settings.github
    if github.owner_id is not None:
        return f"repo:{github.owner}@{github.owner_id}/{github.repository}@{github.repository_id}:{suffix}"
    return f"repo:{github.owner}/{github.repository}:{suffix}"


def _bootstrap_roles(env: Synthesized, *names: str) -> list[str]:
    regions = sorted({*env.settings.all_regions, env.settings.account_stack_region})
    account = "<AWS::AccountId>"
    return sorted(
        f"arn:<AWS::Partition>:iam::{account}:role/cdk-hnb659fds-{name}-{account}-{region}"
        for name in names
        for region in regions
    )


def _github_trust(env: Synthesized, prefix: str, suffix: str) -> tuple[str, list[dict[str, Any]]]:
    """The role's id and its policy's statements, after checking it trusts only ``suffix``'s GitHub tokens and
    has no other policy."""
    role_id, role = _role(env, prefix)
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert text(trust["Principal"]["Federated"]) == _provider_arn(env)
    assert trust["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": _subject(env, suffix),
        }
    }
    assert not role.get("Policies")
    assert not role.get("ManagedPolicyArns")
    return role_id, _statements_of(env, role_id)


def test_the_infrastructure_role_may_only_assume_the_cdk_bootstrap_roles_of_its_regions(env: Synthesized) -> None:
    """cdk deploy: jobs of the environment's GitHub environment (its reviewers); every bootstrap role."""
    role_id, (statement,) = _github_trust(env, "InfrastructureRole", f"environment:{env.settings.environment}")
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sts:AssumeRole"
    listed = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    bootstrap = ("deploy-role", "file-publishing-role", "image-publishing-role", "lookup-role")
    assert sorted(text(r) for r in listed) == _bootstrap_roles(env, *bootstrap)
    assert env.template("cicd")["Outputs"]["InfrastructureRoleArn"]["Value"]["Fn::GetAtt"][0] == role_id


def test_the_diff_role_reads_only_the_deployed_templates_of_the_environments_stacks(env: Synthesized) -> None:
    """cdk diff --method=template on pull requests, whose code no reviewer approved yet: not the lookup role
    (ReadOnlyAccess on the account), only what the CLI reads of this environment's stacks."""
    from infra.stacks.cicd import CLOUDFORMATION_TEMPLATE_READ

    role_id, (statement,) = _github_trust(env, "DiffRole", "pull_request")
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == CLOUDFORMATION_TEMPLATE_READ
    assert all(action.split(":")[1].startswith(("Describe", "Get", "List")) for action in statement["Action"])
    stacks = [f"{env.settings.name_prefix}-*", env.settings.account_stack_name]
    assert sorted(text(r) for r in statement["Resource"]) == sorted(
        f"arn:<AWS::Partition>:cloudformation:*:<AWS::AccountId>:stack/{name}/*" for name in stacks
    )
    # Every stack this synthesis made is one of them.
    from fnmatch import fnmatch

    from infra.assembly import stack_regions

    for stack in stack_regions(env.outdir):
        assert any(fnmatch(stack, name) for name in stacks), stack
    assert env.template("cicd")["Outputs"]["DiffRoleArn"]["Value"]["Fn::GetAtt"][0] == role_id


def test_the_deploy_role_reads_only_the_environment_before_it_in_the_promotion_order(env: Synthesized) -> None:
    from infra.stacks.registry import ECR_PROMOTION_READ

    role_id, _ = _role(env, "DeployRole")
    reads = [s for s in _statements_of(env, role_id) if s["Sid"] == "ReadThePreviousEnvironmentsImages"]
    previous = env.settings.promotion.previous
    if previous is None:
        assert reads == []
        return
    (statement,) = reads
    assert statement["Action"] == ECR_PROMOTION_READ
    assert not any(
        a.startswith(("ecr:Put", "ecr:Upload", "ecr:Initiate", "ecr:Complete", "ecr:Delete"))
        for a in statement["Action"]
    )
    account = previous.account or "<AWS::AccountId>"
    assert text(statement["Resource"]) == (
        f"arn:<AWS::Partition>:ecr:{previous.region}:{account}:repository/{previous.project}-{previous.environment}/*"
    )


def _two_accounts(tmp_path: Path) -> Any:
    """The examples' promotion order (sandbox, then live) in two accounts."""
    from infra.config.project import Project

    directory = tmp_path / "project"
    (directory / "infra" / "config").mkdir(parents=True)
    (directory / "infra" / "config" / "delivery.yaml").write_text("promotion: [sandbox, live]\n", encoding="utf-8")
    write_environment(directory, "sandbox", merged(example_data("sandbox"), {"account": "111111111111"}))
    write_environment(directory, "live", merged(example_data("live"), {"account": "222222222222"}))
    return Project(directory)


@pytest.mark.needs_synth("examples-sandbox-two-accounts", "examples-live-two-accounts")
def test_an_environment_in_another_account_may_read_the_images_of_the_one_before() -> None:
    from infra.stacks.registry import ECR_PROMOTION_READ

    # The examples' promotion order (sandbox, then live) in two accounts.
    sandbox, live = synth(subject_of("examples-sandbox-two-accounts")), synth(subject_of("examples-live-two-accounts"))
    assert (sandbox.settings.account, live.settings.account) == ("111111111111", "222222222222")
    # The environment promoted from admits the next one's account, read only, on each repository.
    registries = sandbox.shards("registry")
    assert registries
    for template in registries.values():
        for repository in resources(template, "AWS::ECR::Repository").values():
            (statement,) = repository["Properties"]["RepositoryPolicyText"]["Statement"]
            assert statement["Effect"] == "Allow"
            assert statement["Action"] == ECR_PROMOTION_READ
            assert re.fullmatch(r"arn:[^:]+:iam::222222222222:root", text(statement["Principal"]["AWS"]))
    # The last environment admits no one: nothing is promoted from it.
    for template in live.shards("registry").values():
        assert all(
            "RepositoryPolicyText" not in r["Properties"] for r in resources(template, "AWS::ECR::Repository").values()
        )
    reads = [
        s
        for p in resources(live.template("cicd"), "AWS::IAM::ManagedPolicy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Sid"] == "ReadThePreviousEnvironmentsImages"
    ]
    assert [text(s["Resource"]) for s in reads] == [
        "arn:<AWS::Partition>:ecr:us-east-1:111111111111:repository/acme-sandbox/*"
    ]


@pytest.mark.parametrize(
    ("delivery", "message"),
    [
        ("promotion: [sandbox, qa]\n", "names 'qa', which is not a known environment; allowed: live, sandbox"),
        ("promotion: [sandbox, live, sandbox]\n", "sandbox is listed twice; allowed: each environment once"),
        ("promotion: [live, sandbox]\n", "starts with 'live', a production environment"),
        ("promotion: []\n", "allowed: a non-empty list of environment names"),
        ("order: [sandbox, live]\n", "allowed: a mapping with one key, `promotion:`"),
        ("promotion: [sandbox, live]\npromotion: [live]\n", "key 'promotion' is given twice"),
    ],
)
def test_a_bad_promotion_order_stops_synth_naming_the_file_the_value_and_what_is_allowed(
    tmp_path: Path, delivery: str, message: str
) -> None:
    project = _two_accounts(tmp_path)
    (project.root / "infra" / "config" / "delivery.yaml").write_text(delivery, encoding="utf-8")
    with pytest.raises(SettingsError) as error:
        project.settings("sandbox")
    assert "delivery.yaml" in str(error.value)
    assert message in str(error.value)


def test_more_environments_than_the_delivery_workflow_has_stages_are_refused(tmp_path: Path) -> None:
    from infra.config.delivery import MAX_STAGES

    project = _two_accounts(tmp_path)
    names = [f"qa{i}" for i in range(MAX_STAGES)]
    for name in names:
        write_environment(project.root, name, example_data("sandbox"))
    (project.root / "infra" / "config" / "delivery.yaml").write_text(
        f"promotion: [{', '.join([*names, 'live'])}]\n", encoding="utf-8"
    )
    with pytest.raises(SettingsError, match=f"allowed: at most {MAX_STAGES}"):
        project.settings("live")
    workflow = load_yaml((ROOT / ".github" / "workflows" / "delivery.yml").read_text(encoding="utf-8"))
    assert [j for j in workflow["jobs"] if j.startswith("stage-")] == [f"stage-{i + 1}" for i in range(MAX_STAGES)]


def test_without_a_delivery_file_nothing_is_promoted(tmp_path: Path) -> None:
    project = _two_accounts(tmp_path)
    (project.root / "infra" / "config" / "delivery.yaml").unlink()
    assert project.settings("live").promotion.order == ()
    assert project.settings("live").promotion.previous is None
