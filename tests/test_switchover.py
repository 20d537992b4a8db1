"""A global database's writer moves (switchover or failover) and back by one setting, database.writer_region:
the stacks keep their names and regions, nothing is replaced, only what follows the writer changes
(docs/regions.md, "Switchover and failover"; ADR 0014)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.assembly import load_templates
from infra.config.settings import SettingsError
from tests.conftest import subject
from tests.projects import example_settings
from tests.replacements import Change, deploy_changes
from tests.subjects import SWITCHED, SWITCHED_REGION, synth, two_regions
from tests.synth import Synthesized, resources

KMS_ALIAS = "AWS::KMS::Alias"
pytestmark = pytest.mark.needs_synth("examples-live-two-regions", SWITCHED)

# What may come and go with the writer: the master password's rotation (it runs only in the primary
# region's VPC, so it pauses while the writer is away) and the lag alarm (in the regions that are not
# the writer).
COME_AND_GO = {
    "AWS::SecretsManager::RotationSchedule",
    "AWS::SecretsManager::ResourcePolicy",
    "AWS::Serverless::Application",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::SecurityGroupIngress",
    "AWS::CloudWatch::Alarm",
}
UPDATED = {
    "AWS::RDS::DBCluster": {"EnableGlobalWriteForwarding"},  # the demoted primary-region cluster's writes
    "Custom::DatabaseUser": {"ClusterArn", "SecretArn", "Region"},  # made on the writer, wherever it is
    "AWS::IAM::ManagedPolicy": {"PolicyDocument"},  # the users function may reach that writer
    "AWS::CloudWatch::Dashboard": {"DashboardBody"},  # the lag graph follows the alarm
    # The services' ConfigMap: the writer's region writes through its cluster endpoint, the others through
    # their reader endpoint.
    "Custom::AWSCDK-EKS-KubernetesResource": {"Manifest"},
}


@pytest.fixture(scope="module")
def home() -> Synthesized:
    return two_regions("live").synthesized


@pytest.fixture(scope="module")
def away() -> Synthesized:
    return synth(subject(SWITCHED))


def _named(template: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """Every physical name a template fixes: string properties named *Name or *Identifier."""
    return {
        (logical_id, key): value
        for logical_id, resource in template.get("Resources", {}).items()
        for key, value in resource.get("Properties", {}).items()
        if isinstance(value, str) and (key.endswith("Name") or key.endswith("Identifier"))
    }


def _check(before: Synthesized, after: Synthesized, found: list[Change]) -> None:
    assert set(load_templates(before.outdir)) == set(load_templates(after.outdir)), "the same stacks"
    assert not [c for c in found if c.action == "replace"]
    assert {c.resource_type for c in found if c.action in ("add", "delete")} <= COME_AND_GO, found
    for change in (c for c in found if c.action == "update" and c.properties):
        assert set(change.properties) <= UPDATED.get(change.resource_type, set()), change
    for stack, template in load_templates(after.outdir).items():
        before_named = _named(load_templates(before.outdir)[stack])
        for key, value in _named(template).items():
            assert before_named.get(key, value) == value, (stack, key)


def test_a_switchover_renames_nothing_and_replaces_nothing(home: Synthesized, away: Synthesized) -> None:
    assert (home.settings.writer_region, away.settings.writer_region) == (home.settings.region, SWITCHED_REGION)
    _check(home, away, deploy_changes(home.outdir, away.outdir))


def test_the_way_back_is_the_same_change_reversed(home: Synthesized, away: Synthesized) -> None:
    forth = deploy_changes(home.outdir, away.outdir)
    back = deploy_changes(away.outdir, home.outdir)
    _check(away, home, back)
    flipped = {"add": "delete", "delete": "add", "update": "update"}
    assert {(c.stack, c.logical_id, flipped[c.action]) for c in forth} == {
        (c.stack, c.logical_id, c.action) for c in back
    }


def test_the_users_are_made_on_the_writer_through_its_regions_copy_of_the_secret(away: Synthesized) -> None:
    primary = away.template("database")
    users = resources(primary, "Custom::DatabaseUser")
    assert users
    for user in users.values():
        props = user["Properties"]
        assert props["Region"] == SWITCHED_REGION
        assert f":rds:{SWITCHED_REGION}:" in str(props["ClusterArn"]) or SWITCHED_REGION in str(props["ClusterArn"])
        assert SWITCHED_REGION in str(props["SecretArn"])
    (secret,) = resources(primary, "AWS::SecretsManager::Secret").values()
    replicas = secret["Properties"]["ReplicaRegions"]
    assert [r["Region"] for r in replicas] == away.settings.other_regions
    # Each copy's key is made by that region's network stack, which the primary's database waits for.
    network = f"{away.settings.in_region(SWITCHED_REGION).stack_prefix}-network"
    aliases = [
        a["Properties"]["AliasName"] for a in resources(away.template_named(network), "AWS::KMS::Alias").values()
    ]
    assert {r["KmsKeyId"] for r in replicas} <= set(aliases)
    # Secrets Manager writes each rotated version into the copy as whoever rotated it: the key lets the
    # account's principals use it through Secrets Manager in that region, and nothing else.
    (alias,) = [
        a
        for a in resources(away.template_named(network), KMS_ALIAS).values()
        if "secret" in a["Properties"]["AliasName"]
    ]
    key = away.template_named(network)["Resources"][alias["Properties"]["TargetKeyId"]["Fn::GetAtt"][0]]
    statements = {s.get("Sid"): s for s in key["Properties"]["KeyPolicy"]["Statement"]}
    through = statements["SecretsManagerOfThisAccount"]
    assert through["Principal"] == {"AWS": "*"}
    assert through["Condition"]["StringEquals"]["kms:ViaService"] == f"secretsmanager.{SWITCHED_REGION}.amazonaws.com"
    assert "kms:CallerAccount" in through["Condition"]["StringEquals"]
    assert network in away.manifest()["artifacts"][f"{away.settings.stack_prefix}-database"]["dependencies"]


def test_rotation_pauses_while_the_writer_is_away_and_the_gate_says_why(home: Synthesized, away: Synthesized) -> None:
    assert resources(home.template("database"), "AWS::SecretsManager::RotationSchedule")
    assert not resources(away.template("database"), "AWS::SecretsManager::RotationSchedule")
    reasons = [a.reason for a in away.acknowledgements() if a.rule_id == "AwsSolutions-SMG4"]
    assert reasons
    assert all(SWITCHED_REGION in r and "resumes" in r for r in reasons)


def test_every_member_answers_the_data_api_and_forwards_writes_once_demoted(
    home: Synthesized, away: Synthesized
) -> None:
    for synthesized in (home, away):
        for region in synthesized.settings.all_regions:
            view = synthesized.settings.in_region(region)
            (cluster,) = resources(
                synthesized.template_named(f"{view.stack_prefix}-database"), "AWS::RDS::DBCluster"
            ).values()
            assert cluster["Properties"]["EnableHttpEndpoint"] is True
            forwarding = cluster["Properties"].get("EnableGlobalWriteForwarding", False)
            created_as_primary = region == synthesized.settings.region
            assert forwarding == (not created_as_primary or region != synthesized.settings.writer_region), region


@pytest.mark.parametrize(
    ("database", "message"),
    [
        ({"writer_region": "eu-west-3"}, r"'database.writer_region' = 'eu-west-3' is not a region of this environment"),
        ({"secondary_engine_version": "16.13"}, r"'database.secondary_engine_version' = '16.13': step one of a minor"),
    ],
)
def test_writer_and_upgrade_settings_are_checked(tmp_path: Path, database: dict[str, str], message: str) -> None:
    from tests.subjects import TWO_REGIONS

    with pytest.raises(SettingsError, match=message):
        example_settings(tmp_path, "live", {**TWO_REGIONS["live"], "database": database})


def test_a_single_region_has_no_writer_to_move(tmp_path: Path) -> None:
    with pytest.raises(
        SettingsError, match=r"'database.writer_region' = 'us-east-1' applies to a global database only"
    ):
        example_settings(tmp_path, "live", {"database": {"writer_region": "us-east-1"}})


def test_services_write_through_the_writers_cluster_endpoint_or_their_regions_reader_endpoint(
    home: Synthesized, away: Synthesized
) -> None:
    """A global database has one active cluster endpoint, the writer's; a secondary's is inactive, and its
    services reach the database through its reader endpoint, which forwards their writes (write forwarding).
    Moving the writer moves which region's services use which."""
    from tests.test_services import _manifests, _output_value

    for synthesized in (home, away):
        for region in synthesized.settings.all_regions:
            view = synthesized.settings.in_region(region)
            hosts = {
                json_text
                for name, template in synthesized.templates().items()
                if name.startswith(f"{view.stack_prefix}-services-")
                for document in _manifests(template)
                if document["kind"] == "ConfigMap" and (json_text := document["data"].get("DATABASE_HOST"))
            }
            assert hosts, region
            expected = "Endpoint.Address" if region == synthesized.settings.writer_region else "ReadEndpoint.Address"
            for host in hosts:
                attribute = _output_value(synthesized, host)["Fn::GetAtt"][1]
                assert attribute == expected, (synthesized.label, region, host)
