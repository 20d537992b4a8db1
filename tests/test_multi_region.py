"""An environment in several regions (setting `regions`): the tests' examples in two regions
(tests/subjects.py TWO_REGIONS), the production one with an Aurora global database, the other with no
database outside the primary, synthesized whole."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.assembly import Resource, load_templates, resources_of, stack_regions
from infra.config.project import Project
from infra.config.settings import SettingsError
from infra.stacks.database import MASTER_PASSWORD_ROTATION_DAYS
from infra.stacks.registry import lifecycle_policy
from infra.stacks.sharding import by_shard
from tests.projects import EXAMPLES, ROOT, edited_copy, load_yaml, merged, settings_of
from tests.subjects import TWO_REGIONS, Done, two_regions, two_regions_project
from tests.synth import resources
from tests.test_workflows import run_with_yq

# Synthesized by the second process: run after the tests that need nothing from it.
pytestmark = pytest.mark.needs_synth("examples-sandbox-two-regions", "examples-live-two-regions")

KINDS = ["network", "eks", "cache", "observability", "registry", "cicd"]


@pytest.fixture(scope="module")
def prod2() -> Done:
    return two_regions("live")


@pytest.fixture(scope="module")
def dev2() -> Done:
    return two_regions("sandbox")


def _templates(synth: Done) -> dict[str, dict[str, Any]]:
    return load_templates(synth.synthesized.outdir)


def _one(templates: dict[str, dict[str, Any]], stack: str, resource_type: str) -> Resource:
    found = [r for r in resources_of(templates, resource_type) if r.stack == stack]
    assert len(found) == 1, (stack, resource_type, len(found))
    return found[0]


@pytest.mark.parametrize("environment", sorted(TWO_REGIONS))
def test_each_region_has_its_stack_set_and_the_primary_keeps_its_names(environment: str) -> None:
    synth = two_regions(environment)
    regions = stack_regions(synth.synthesized.outdir)
    primary, other = TWO_REGIONS[environment]["regions"]
    prefix = f"acme-{environment}"
    names = [s.name for s in synth.synthesized.settings.services]
    shard = min(by_shard(names, names))
    for kind in ["network", "eks", "cache", "observability", "cicd", f"services-{shard}", f"registry-{shard}"]:
        assert regions[f"{prefix}-{kind}"] == primary
    for kind in [*KINDS, f"services-{shard}"]:
        assert regions[f"{prefix}-{other}-{kind}"] == other
    # The account stack (replication, OIDC provider) lives once, in the primary region.
    assert regions["acme-account"] == primary
    database = f"{prefix}-{other}-database"
    assert (database in regions) is (environment == "live")  # sandbox: database.other_regions none
    # The cluster keeps its name in every region: the deploy workflow's kubeconfig step is the same.
    templates = _templates(synth)
    for eks in (f"{prefix}-eks", f"{prefix}-{other}-eks"):
        assert _one(templates, eks, "AWS::EKS::Cluster").props["Name"] == prefix


def test_the_prod_database_is_a_global_database_with_a_key_per_region(prod2: Done) -> None:
    templates = _templates(prod2)
    primary = _one(templates, "acme-live-database", "AWS::RDS::DBCluster")
    global_cluster = _one(templates, "acme-live-database", "AWS::RDS::GlobalCluster")
    assert global_cluster.props["GlobalClusterIdentifier"] == "acme-live-global"
    assert global_cluster.target(global_cluster.props["SourceDBClusterIdentifier"]) == primary
    assert global_cluster.props["DeletionProtection"] is True
    assert global_cluster.body["DeletionPolicy"] == "Retain"
    # Converting the primary: engine, version and encryption come from it (RDS refuses them here).
    assert not {"Engine", "EngineVersion", "StorageEncrypted"} & set(global_cluster.props)
    # A global database cannot use an RDS-managed master password: a generated secret, rotated.
    assert "ManageMasterUserPassword" not in primary.props
    assert "{{resolve:secretsmanager:" in json.dumps(primary.props["MasterUserPassword"])
    (rotation,) = resources(templates["acme-live-database"], "AWS::SecretsManager::RotationSchedule").values()
    assert rotation["Properties"]["RotationRules"] == {
        "ScheduleExpression": f"rate({MASTER_PASSWORD_ROTATION_DAYS} days)"
    }

    secondary = _one(templates, "acme-live-us-west-2-database", "AWS::RDS::DBCluster")
    reference = secondary.props["GlobalClusterIdentifier"]["Fn::GetStackOutput"]
    assert reference["Region"] == "us-east-1"
    assert reference["StackName"] == "acme-live-database"
    assert secondary.target(secondary.props["GlobalClusterIdentifier"]) == global_cluster
    # Its own region's customer key; what the primary owns (credentials, database) is absent.
    assert secondary.props["StorageEncrypted"] is True
    key = secondary.target(secondary.props["KmsKeyId"])
    assert key is not None
    assert key.stack == secondary.stack
    assert key.body["Type"] == "AWS::KMS::Key"
    assert key.props["EnableKeyRotation"] is True
    assert not {"MasterUsername", "MasterUserPassword", "ManageMasterUserPassword", "DatabaseName"} & set(
        secondary.props
    )
    assert secondary.props["EngineVersion"] == primary.props["EngineVersion"]
    assert secondary.props["DeletionProtection"] is True
    assert secondary.body["DeletionPolicy"] == "Snapshot"
    assert secondary.props["EnableHttpEndpoint"] is True  # answers once a switchover promotes it
    # Services in this region write through it: Aurora forwards writes to the primary's writer.
    assert secondary.props["EnableGlobalWriteForwarding"] is True
    # No master secret (nor its key) of its own.
    assert not resources(templates[secondary.stack], "AWS::SecretsManager::Secret")
    # The first rotation waits for the writer and for the rule admitting the rotation function.
    rotation_id = next(iter(resources(templates["acme-live-database"], "AWS::SecretsManager::RotationSchedule")))
    waits = templates["acme-live-database"]["Resources"][rotation_id].get("DependsOn", [])
    writer = next(k for k, v in resources(templates["acme-live-database"], "AWS::RDS::DBInstance").items())
    assert writer in waits
    assert any(k.startswith("SecurityGroupfrom") for k in waits)
    # The users are made once the first rotation has started (its function waits out the moment the
    # database and the secret's current version disagree).
    users = resources(templates["acme-live-database"], "Custom::DatabaseUser")
    assert users
    assert all(rotation_id in user.get("DependsOn", []) for user in users.values())
    # Users replicate from the primary: no users function in the secondary.
    assert not resources(templates["acme-live-us-west-2-database"], "Custom::DatabaseUser")
    deps = prod2.synthesized.manifest()["artifacts"]["acme-live-us-west-2-database"]["dependencies"]
    assert "acme-live-database" in deps


def test_services_connect_to_their_own_regions_data_stores(prod2: Done, dev2: Done) -> None:
    def grants(synth: Done, stack: str) -> int:
        template = load_templates(synth.synthesized.outdir)[stack]
        return json.dumps(resources(template, "AWS::IAM::ManagedPolicy")).count("rds-db:connect")

    prod_templates = _templates(prod2)
    secondary_db = _one(prod_templates, "acme-live-us-west-2-database", "AWS::RDS::DBCluster")
    services = [s for s in prod_templates if s.startswith("acme-live-us-west-2-services-")]
    text = json.dumps([prod_templates[s] for s in services])
    assert f'"{secondary_db.logical_id}"' not in text  # referenced across stacks, by output
    assert "acme-live-us-west-2-database" in text
    assert "acme-live-database" not in text
    assert "acme-live-us-west-2-cache" in text
    # Dev has no database outside the primary: no database grant there, the cache grant stays.
    dev_services = [s for s in _templates(dev2) if s.startswith("acme-sandbox-eu-west-1-services-")]
    assert sum(grants(dev2, s) for s in dev_services) == 0
    assert "elasticache:Connect" in json.dumps([_templates(dev2)[s] for s in dev_services])


def test_images_replicate_from_the_primary_into_replicas_made_like_the_primarys(prod2: Done) -> None:
    templates = _templates(prod2)
    replication = _one(templates, "acme-account", "AWS::ECR::ReplicationConfiguration")
    rules = replication.props["ReplicationConfiguration"]["Rules"]
    # Every environment of several regions sharing the account, each limited to its repositories.
    assert rules == [
        {
            "Destinations": [{"Region": TWO_REGIONS[env]["regions"][1], "RegistryId": {"Ref": "AWS::AccountId"}}],
            "RepositoryFilters": [{"Filter": f"acme-{env}/", "FilterType": "PREFIX_MATCH"}],
        }
        for env in ("live", "sandbox")
    ]
    template = _one(templates, "acme-live-us-west-2-registry", "AWS::ECR::RepositoryCreationTemplate")
    # ECR appends the "/" itself: the prefix is the namespace of every replicated repository, without it.
    prefix = template.props["Prefix"]
    assert not prefix.endswith("/")
    replicated = [
        r.props["RepositoryName"]
        for r in resources_of(templates, "AWS::ECR::Repository")
        if r.stack.startswith("acme-live-")
    ]
    assert replicated
    assert all(name.startswith(f"{prefix}/") for name in replicated)
    assert all(f["Filter"] == f"{prefix}/" for f in rules[0]["RepositoryFilters"])
    assert template.props["AppliedFor"] == ["REPLICATION"]
    repository = next(r for r in resources_of(templates, "AWS::ECR::Repository") if r.stack.startswith("acme-live"))
    assert template.props["ImageTagMutability"] == repository.props["ImageTagMutability"] == "IMMUTABLE"
    assert json.loads(template.props["LifecyclePolicy"]) == json.loads(
        repository.props["LifecyclePolicy"]["LifecyclePolicyText"]
    )
    assert template.props["LifecyclePolicy"] == lifecycle_policy(prod2.synthesized.settings.registry)
    key = template.target(template.props["EncryptionConfiguration"]["KmsKey"])
    assert template.props["EncryptionConfiguration"]["EncryptionType"] == "KMS"
    assert key is not None
    assert key.stack == template.stack
    assert key.body["Type"] == "AWS::KMS::Key"
    # The role ECR assumes to create the replicas: trusted by ECR only, for these repositories and this key.
    role = template.target(template.props["CustomRoleArn"])
    assert role is not None
    assert role.props["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ecr.amazonaws.com"}
    (policy,) = resources(templates[template.stack], "AWS::IAM::ManagedPolicy").values()
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    names = sorted(json.dumps(r)[-40:] for r in statements["CreateThisEnvironmentsReplicas"]["Resource"])
    assert len(names) == len(prod2.synthesized.settings.services)
    assert all("repository/acme-live/" in n for n in names)
    assert statements["GrantsOnTheReplicasKey"]["Resource"] == {"Fn::GetAtt": [key.logical_id, "Arn"]}


def test_replication_starts_after_the_creation_templates_exist(prod2: Done) -> None:
    dependencies = prod2.synthesized.manifest()["artifacts"]["acme-account"]["dependencies"]
    assert "acme-live-us-west-2-registry" in dependencies
    template = _templates(prod2)["acme-live-us-west-2-registry"]
    (template_id,) = resources(template, "AWS::ECR::RepositoryCreationTemplate")
    (policy_id,) = resources(template, "AWS::IAM::ManagedPolicy")
    assert policy_id in template["Resources"][template_id]["DependsOn"]


def test_the_account_stack_is_the_same_in_every_environments_app(prod2: Done, dev2: Done) -> None:
    assert _templates(prod2)["acme-account"] == _templates(dev2)["acme-account"]


def test_the_one_deploy_role_has_access_to_every_regions_cluster(prod2: Done) -> None:
    templates = _templates(prod2)
    (role,) = [
        r
        for r in resources_of(templates, "AWS::IAM::Role")
        if r.stack == "acme-live-cicd" and r.logical_id.startswith("DeployRole")
    ]
    entries = {r.stack: r for r in resources_of(templates, "AWS::EKS::AccessEntry") if "cicd" in r.stack}
    assert set(entries) == {"acme-live-cicd", "acme-live-us-west-2-cicd"}
    for entry in entries.values():
        assert entry.target(entry.props["PrincipalArn"]) == role
        (policy,) = entry.props["AccessPolicies"]
        namespaces = [f"{s.name}-live" for s in prod2.synthesized.settings.services]
        assert policy["AccessScope"] == {"Type": "namespace", "Namespaces": namespaces}
    remote = entries["acme-live-us-west-2-cicd"].props["PrincipalArn"]["Fn::GetStackOutput"]
    assert remote["Region"] == "us-east-1"
    policies = resources(templates["acme-live-cicd"], "AWS::IAM::ManagedPolicy")
    statements = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    (describe_clusters,) = [s for s in statements if s["Sid"] == "FindThisEnvironmentsClusters"]
    assert ":eks:us-west-2:" in json.dumps(describe_clusters["Resource"])
    replicas = [s for s in statements if s["Sid"] == "FindAndMarkTheReplicas"]
    assert replicas
    assert all(s["Action"] == ["ecr:BatchGetImage", "ecr:DescribeImages", "ecr:PutImage"] for s in replicas)
    arns = [r for s in replicas for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]
    assert len(arns) == len(prod2.synthesized.settings.services)
    assert all(":ecr:us-west-2:" in json.dumps(arn) and ":repository/acme-live/" in json.dumps(arn) for arn in arns)


def test_names_unique_in_the_account_differ_by_region(prod2: Done) -> None:
    templates = _templates(prod2)
    dashboards = [r.props["DashboardName"] for r in resources_of(templates, "AWS::CloudWatch::Dashboard")]
    assert sorted(dashboards) == ["acme-live", "acme-live-us-west-2"]
    # IAM is global: no role or policy of the platform sets a name of its own (CloudFormation names
    # them after their stack, which differs by region).
    for kind in ("AWS::IAM::Role", "AWS::IAM::ManagedPolicy"):
        assert not [r for r in resources_of(templates, kind) if {"RoleName", "ManagedPolicyName"} & set(r.props)]


def test_the_secondary_watches_its_lag_behind_the_primary(prod2: Done) -> None:
    alarms = resources(_templates(prod2)["acme-live-us-west-2-observability"], "AWS::CloudWatch::Alarm")
    (lag,) = [a for a in alarms.values() if a["Properties"].get("MetricName") == "AuroraGlobalDBReplicationLag"]
    assert lag["Properties"]["Dimensions"] == [{"Name": "DBClusterIdentifier", "Value": "acme-live-db"}]
    assert lag["Properties"]["AlarmActions"]


def test_reports_cover_every_region(prod2: Done, tmp_path: Path) -> None:
    reports = prod2.synthesized.reports  # as app.py wrote them
    assert reports is not None
    cost = json.loads((reports / "cost.json").read_text(encoding="utf-8"))
    assert [r["region"] for r in cost["regions"]] == ["us-east-1", "us-west-2", "cross-region"]
    cross = {line["item"] for line in cost["regions"][2]["lines"]}
    assert {"ECR replication us-east-1 -> us-west-2", "Aurora global database us-east-1 -> us-west-2"} <= cross
    assert cost["total"]["idle"] == pytest.approx(sum(r["total"]["idle"] for r in cost["regions"]), abs=0.05)
    # us-west-2 has no prices in prices.yaml: said, not guessed.
    assert any("No prices for region us-west-2" in u for u in cost["regions"][1]["unknown"])
    architecture = (reports / "architecture.md").read_text(encoding="utf-8")
    assert 'subgraph region_us_west_2["us-west-2"]' in architecture
    assert "global database replication" in architecture
    assert "replicates images to" in architecture


# --- settings --------------------------------------------------------------------------------------


def _settings_with(tmp_path: Path, environment: str, **changes: Any) -> Project:
    """The examples in two regions, with ``changes`` made to one environment's file."""
    edits = {e: merged(TWO_REGIONS[e], changes if e == environment else {}) for e in TWO_REGIONS}
    return edited_copy(EXAMPLES, tmp_path / "project", edits)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"regions": ["us-east-1", "us-west-2", "us-east-1"]},
            r"'regions' = \['us-east-1', 'us-west-2', 'us-east-1'\] must list each region once, "
            r"and lists us-east-1 twice",
        ),
        (
            {"regions": ["us-east-1", "moon-1"]},
            r"'regions' = \['us-east-1', 'moon-1'\] must name AWS regions of the aws partition, "
            r"and 'moon-1' is not one",
        ),
        (
            {"regions": ["us-west-2", "us-east-1"]},
            r"first region is the primary, which is setting 'region' = 'us-east-1'; "
            r"allowed: \['us-east-1', 'us-west-2'\]",
        ),
        (
            {"database": {"other_regions": "regional"}},
            r"'database.other_regions' = 'regional' is not allowed in production.*allowed: global",
        ),
        (
            {"account_stack": {"region": "eu-west-1"}},
            r"'account_stack.region' = 'eu-west-1'.*allowed: account_stack.region: us-east-1",
        ),
        (
            {"regions": ["us-east-1", "us-west-1"]},
            r"'network.zones' = \['a', 'b', 'c'\]: an account has 2 of the zones a, b, c of us-west-1, not 3",
        ),
        (
            {"github": {"deploy_runs_on": ["self-hosted", "acme-live"]}},
            r"deploy_runs_on = \['self-hosted', 'acme-live'\]: the clusters' API endpoints are private"
            r".*\{region\}",
        ),
    ],
)
def test_invalid_regions_are_clear_errors(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        _settings_with(tmp_path, "live", **changes).settings("live")


def test_a_version_without_global_database_support_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every accepted version supports global databases today (ADR 0011); a new one may not.
    monkeypatch.setattr("infra.config.settings.rules.GLOBAL_DATABASE_VERSIONS", ("16.13",))
    with pytest.raises(SettingsError, match=r"Aurora PostgreSQL 17.9 \(setting 'database.engine_version'\) has no"):
        _settings_with(tmp_path, "live").settings("live")
    # Without a global database: no such limit.
    assert _settings_with(tmp_path, "sandbox").settings("sandbox").other_regions == ["eu-west-1"]


def test_a_region_override_moves_only_a_single_region_environment(tmp_path: Path) -> None:
    project = _settings_with(tmp_path, "live")
    with pytest.raises(SettingsError, match=r"--context region=eu-west-1: environment 'live' spans the regions"):
        project.settings("live", {"region": "eu-west-1"})
    moved = EXAMPLES.settings("live", {"region": "eu-west-1"})  # the single-region example
    assert moved.all_regions == ["eu-west-1"]


def test_one_region_is_the_default_and_names_stacks_as_before() -> None:
    settings = settings_of(EXAMPLES, "live")
    assert settings.regions is None
    assert settings.all_regions == [settings.region]
    assert settings.is_primary
    assert settings.stack_prefix == settings.name_prefix == "acme-live"
    other = two_regions_project().settings("live").in_region("us-west-2")
    assert other.stack_prefix == "acme-live-us-west-2"
    assert other.name_prefix == "acme-live"
    assert other.availability_zones == ["us-west-2a", "us-west-2b", "us-west-2c"]


# --- workflows -------------------------------------------------------------------------------------


def _step(workflow: str, name_start: str) -> dict[str, Any]:
    steps = load_yaml((ROOT / ".github/workflows" / workflow).read_text(encoding="utf-8"))["jobs"]["validate"]
    (step,) = [s for s in steps["steps"] if s["name"].startswith(name_start)]
    return dict(step)


def _run_region_check(step: dict[str, Any], regions: list[str], region: str, tmp_path: Path) -> tuple[int, str, str]:
    """The step's script, with a yq that answers `.regions // [.region]` as the settings file would."""
    done, output = run_with_yq(step, regions, tmp_path, {"AWS_REGION": region})
    return done.returncode, done.stdout, output


def test_deploy_service_accepts_exactly_the_environments_regions(tmp_path: Path) -> None:
    from tests.test_workflows import run_targets

    project = two_regions_project()
    regions = TWO_REGIONS["live"]["regions"]
    for region in regions:
        code, _, outputs = run_targets(project.root, "live", region, tmp_path, {})
        assert code == 0
        assert outputs["primary"] == "us-east-1"
    code, stdout, _ = run_targets(project.root, "live", "eu-west-1", tmp_path, {})
    assert code == 1
    assert "'eu-west-1' is not a region of this environment" in stdout


def test_build_image_pushes_only_to_the_primary_region(tmp_path: Path) -> None:
    step = _step("build-image.yml", "Check the region is the environment's primary")
    regions = TWO_REGIONS["live"]["regions"]
    assert _run_region_check(step, regions, "us-east-1", tmp_path)[0] == 0
    code, stdout, _ = _run_region_check(step, regions, "us-west-2", tmp_path)
    assert code == 1
    assert "allowed: us-east-1" in stdout


def test_each_region_deploys_with_its_own_ingress_certificate() -> None:
    steps = load_yaml((ROOT / ".github/workflows/deploy-service.yml").read_text(encoding="utf-8"))
    (helm,) = [s for s in steps["jobs"]["deploy"]["steps"] if s["name"].startswith("Helm upgrade")]
    assert helm["env"]["INGRESS_CERTIFICATE_ARNS"] == "${{ vars.INGRESS_CERTIFICATE_ARNS }}"
    choose = helm["run"].split("helm upgrade")[0] + 'echo "$INGRESS_CERTIFICATE_ARN"'
    arns = json.dumps({"us-west-2": "arn:west"})

    def chosen(region: str, mapping: str = arns) -> str:
        environ = {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",  # the job's python (deploy-tools)
            "AWS_REGION": region,
            "PRIMARY_REGION": "us-east-1",
            "INGRESS_CERTIFICATE_ARN": "arn:east",
            "INGRESS_CERTIFICATE_ARNS": mapping,
        }
        done = subprocess.run(["bash", "-e", "-c", choose], env=environ, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    assert chosen("us-east-1") == "arn:east"
    assert chosen("us-west-2") == "arn:west"
    # No certificate for that region: none (production's chart check then refuses a public ingress).
    assert chosen("us-west-2", "") == ""


def test_a_deploy_runs_on_the_runners_of_the_region_deployed_to(tmp_path: Path) -> None:
    from tests.test_workflows import run_targets

    project = two_regions_project()
    for given, regions in (("us-west-2", ["us-west-2"]), ("", TWO_REGIONS["live"]["regions"])):
        code, _, outputs = run_targets(project.root, "live", given, tmp_path, {})
        assert code == 0
        assert json.loads(outputs["runs_on"]) == {r: ["self-hosted", "linux", f"acme-live-{r}"] for r in regions}
