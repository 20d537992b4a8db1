"""A Kubernetes upgrade is one settings change: each environment at its version, then at the next minor
the settings accept, compared as CloudFormation would deploy the second over the first (ADR 0014)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from infra.config.settings import Settings
from tests.conftest import UPGRADES, subject
from tests.projects import example_settings
from tests.replacements import Change, deploy_changes
from tests.subjects import Subject, synth
from tests.synth import Synthesized, only, resources

# What a minor-version change may touch, and how: nothing that holds data or names is replaced.
ALLOWED_UPDATES: dict[str, set[str]] = {
    "AWS::EKS::Cluster": {"Version"},
    "AWS::EKS::Nodegroup": {"Version"},
    "AWS::EKS::Addon": {"AddonVersion"},  # the add-ons pinned per minor (kube-proxy, CoreDNS, ...)
    "Custom::AWSCDK-EKS-HelmChart": {"Values", "Version"},  # the cluster autoscaler's image follows the minor
    "AWS::Lambda::Function": {"Layers"},  # the kubectl provider's handler, onto the new layer
}
# The kubectl/helm layer of the new minor is a new layer version (a Lambda layer version cannot change).
REPLACEABLE = {"AWS::Lambda::LayerVersion"}


def _base(upgrade: Subject) -> Synthesized:
    return synth(subject(upgrade.environment))


@pytest.fixture(scope="module", params=[s.label for s in UPGRADES] or [""])
def upgrade(request: pytest.FixtureRequest) -> tuple[Synthesized, Synthesized, list[Change]]:
    if not request.param:
        pytest.skip("every environment runs the newest Kubernetes version the settings accept")
    after = synth(subject(str(request.param)))
    before = _base(subject(str(request.param)))
    return before, after, deploy_changes(before.outdir, after.outdir)


def test_an_upgrade_replaces_nothing_and_changes_only_versions(
    upgrade: tuple[Synthesized, Synthesized, list[Change]],
) -> None:
    before, after, found = upgrade
    assert after.settings.eks.kubernetes_version != before.settings.eks.kubernetes_version
    assert not [c for c in found if c.action in ("add", "delete")], "the same resources, the same stacks"
    replaced = [c for c in found if c.action == "replace"]
    assert {c.resource_type for c in replaced} <= REPLACEABLE, replaced
    for change in (c for c in found if c.action == "update"):
        allowed = ALLOWED_UPDATES.get(change.resource_type, set())
        assert set(change.properties) <= allowed, change
    # The control plane and every node group move to the new minor.
    changed = Counter(c.resource_type for c in found if c.action == "update")
    assert changed["AWS::EKS::Cluster"] == len(after.settings.all_regions)
    assert changed["AWS::EKS::Nodegroup"] == len(after.settings.all_regions)


def test_nodes_follow_the_control_plane_and_the_networking_add_ons(
    upgrade: tuple[Synthesized, Synthesized, list[Change]],
) -> None:
    """CloudFormation updates a resource after those it depends on: the control plane (the node group
    names it), then the VPC CNI and kube-proxy, then the nodes; the charts wait for the nodes."""
    _, after, _ = upgrade
    for region in after.settings.all_regions:
        template = after.template_named(f"{after.settings.in_region(region).stack_prefix}-eks")
        cluster_id = next(iter(resources(template, "AWS::EKS::Cluster")))
        nodegroup_id, nodegroup = next(iter(resources(template, "AWS::EKS::Nodegroup").items()))
        assert nodegroup["Properties"]["Version"] == after.settings.eks.node_version
        assert nodegroup["Properties"]["ClusterName"] == {"Ref": cluster_id}
        addons = {a["Properties"]["AddonName"]: k for k, a in resources(template, "AWS::EKS::Addon").items()}
        assert {addons["vpc-cni"], addons["kube-proxy"]} <= set(nodegroup["DependsOn"])
        for chart in resources(template, "Custom::AWSCDK-EKS-HelmChart").values():
            assert nodegroup_id in chart.get("DependsOn", []), chart["Properties"]["Release"]
        cluster = only(template, "AWS::EKS::Cluster")
        assert cluster["Properties"]["Version"] == after.settings.eks.kubernetes_version


@pytest.mark.background
def test_the_upgraded_environment_has_no_cfn_lint_errors(
    upgrade: tuple[Synthesized, Synthesized, list[Change]],
) -> None:
    from scripts.forms import cfn_lint_problems, describe
    from tests.subjects import synthesized

    _, after, _ = upgrade
    for region, lint in synthesized(subject(after.label)).lints.items():
        assert [describe(p) for p in cfn_lint_problems(lint.stdout())] == [], region


def test_the_upgraded_environment_passes_the_gate(upgrade: tuple[Synthesized, Synthesized, list[Change]]) -> None:
    """The second process wrote its compliance report as `make synth` does: the gate passed."""
    _, after, _ = upgrade
    assert after.reports is not None
    report = json.loads((after.reports / "compliance.json").read_text(encoding="utf-8"))
    assert sum(len(pack["findings"]) for pack in report["packs"]) == 0


# --- The reading of CloudFormation's schemas itself ------------------------------------------------


def _nodegroup(**properties: object) -> dict[str, Any]:
    return {
        "Resources": {
            "Layer": {"Type": "AWS::Lambda::LayerVersion", "Properties": {"Content": {"S3Key": "a.zip"}}},
            "Nodes": {
                "Type": "AWS::EKS::Nodegroup",
                "Properties": {"ClusterName": "c", "InstanceTypes": ["m6i.large"], "Version": "1.35", **properties},
            },
            "Handler": {"Type": "AWS::Lambda::Function", "Properties": {"Layers": [{"Ref": "Layer"}]}},
        }
    }


def test_a_create_only_property_replaces_and_others_update() -> None:
    from tests.replacements import changes

    before = {"s": _nodegroup()}
    found = changes(before, {"s": _nodegroup(Version="1.36")}, {"s": "us-east-1"})
    assert [(c.logical_id, c.action, c.properties) for c in found] == [("Nodes", "update", ("Version",))]
    found = changes(before, {"s": _nodegroup(InstanceTypes=["m7i.large"])}, {"s": "us-east-1"})
    assert [(c.logical_id, c.action) for c in found] == [("Nodes", "replace")]
    assert found[0].properties == ("/properties/InstanceTypes",)


def test_removed_resources_and_stacks_are_deletions_and_new_ones_additions() -> None:
    from tests.replacements import changes

    after = {"s": _nodegroup(), "t": {"Resources": {"Key": {"Type": "AWS::KMS::Key", "Properties": {}}}}}
    del after["s"]["Resources"]["Handler"]
    found = changes({"s": _nodegroup()}, after, {"s": "us-east-1", "t": "us-east-1"})
    assert {(c.stack, c.logical_id, c.action) for c in found} == {("s", "Handler", "delete"), ("t", "Key", "add")}


def test_a_replacement_spreads_to_create_only_properties_that_refer_to_it() -> None:
    from tests.replacements import changes

    def template(key: str) -> dict[str, Any]:
        return {
            "Resources": {
                "Layer": {"Type": "AWS::Lambda::LayerVersion", "Properties": {"Content": {"S3Key": key}}},
                "Permission": {
                    "Type": "AWS::Lambda::LayerVersionPermission",
                    "Properties": {"LayerVersionArn": {"Ref": "Layer"}, "Action": "lambda:GetLayerVersion"},
                },
            }
        }

    found = changes({"s": template("a.zip")}, {"s": template("b.zip")}, {"s": "us-east-1"})
    assert {(c.logical_id, c.action) for c in found} == {("Layer", "replace"), ("Permission", "replace")}


# --- Aurora engine upgrades --------------------------------------------------------------------------


def _database_tier(settings: Settings, outdir: Path) -> Path:
    """The network and database stacks of every region of ``settings``, synthesized (no gate: the
    platforms the session synthesizes pass it); what an engine version change touches."""
    from aws_cdk import App

    from infra.config.project import cdk_json_context
    from infra.platform import database_stack, network_stack

    # CloudFormation's own validation (a cdk.json flag) flags the tier's zones, as it does the platform's,
    # where the gate acknowledges them; here only the templates matter.
    context = {k: v for k, v in cdk_json_context().items() if "Validat" not in k}
    app = App(context=context, outdir=str(outdir))
    primary = database_stack(app, settings, network_stack(app, settings), primary=None)
    for region in settings.other_regions:
        view = settings.in_region(region)
        database_stack(app, view, network_stack(app, view), primary=primary)
    app.synth()
    return outdir


def _versions_with_a_minor_upgrade() -> tuple[str, str]:
    from infra.config.settings import AURORA_POSTGRES_VERSIONS, minor_upgrades

    base = next(v for v in AURORA_POSTGRES_VERSIONS if minor_upgrades(v))
    return base, minor_upgrades(base)[-1]


def _engine_changes(changes: list[Change]) -> list[tuple[str, str, str, tuple[str, ...]]]:
    return [(c.stack, c.resource_type, c.action, c.properties) for c in changes]


def test_a_single_region_minor_upgrade_is_one_change_in_place(tmp_path: Path) -> None:
    base, later = _versions_with_a_minor_upgrade()
    before = example_settings(tmp_path / "a", "live", {"database": {"engine_version": base}})
    after = example_settings(tmp_path / "b", "live", {"database": {"engine_version": later}})
    found = deploy_changes(_database_tier(before, tmp_path / "1"), _database_tier(after, tmp_path / "2"))
    assert _engine_changes(found) == [
        (f"{before.stack_prefix}-database", "AWS::RDS::DBCluster", "update", ("EngineVersion",))
    ]


def test_a_single_region_major_upgrade_replaces_only_the_parameter_group(tmp_path: Path) -> None:
    """The family follows the major: a new parameter group, named to the cluster in the same update as
    the version (what `modify-db-cluster --allow-major-version-upgrade` needs)."""
    from infra.config.settings import AURORA_POSTGRES_VERSIONS

    majors = sorted({int(v.split(".")[0]) for v in AURORA_POSTGRES_VERSIONS})
    if len(majors) < 2:
        pytest.skip("one major accepted")
    older = max(v for v in AURORA_POSTGRES_VERSIONS if int(v.split(".")[0]) == majors[-2])
    newer = max(v for v in AURORA_POSTGRES_VERSIONS if int(v.split(".")[0]) == majors[-1])
    before = example_settings(tmp_path / "a", "sandbox", {"database": {"engine_version": older}})
    after = example_settings(tmp_path / "b", "sandbox", {"database": {"engine_version": newer}})
    found = deploy_changes(_database_tier(before, tmp_path / "1"), _database_tier(after, tmp_path / "2"))
    stack = f"{before.stack_prefix}-database"
    assert sorted(_engine_changes(found)) == [
        (stack, "AWS::RDS::DBCluster", "update", ("EngineVersion",)),
        (stack, "AWS::RDS::DBClusterParameterGroup", "replace", ("/properties/Family",)),
    ]
    # The cluster names the group by Ref: the new group's name goes with the version, in one update.
    (group,) = [c.logical_id for c in found if c.action == "replace"]
    template = json.loads((tmp_path / "2" / f"{stack}.template.json").read_text(encoding="utf-8"))
    (cluster,) = resources(template, "AWS::RDS::DBCluster").values()
    assert cluster["Properties"]["DBClusterParameterGroupName"] == {"Ref": group}


def test_a_global_minor_upgrade_is_two_changes_secondaries_first(tmp_path: Path) -> None:
    """AWS upgrades a global database's secondaries before its primary; CloudFormation's RDS provider
    sends EngineVersion only when the template's changes, so each step touches one side only."""
    from tests.subjects import TWO_REGIONS

    base, later = _versions_with_a_minor_upgrade()
    regions = TWO_REGIONS["live"]
    steps = [
        {"database": {"engine_version": base}},
        {"database": {"engine_version": base, "secondary_engine_version": later}},
        {"database": {"engine_version": later}},
    ]
    outs = [
        _database_tier(example_settings(tmp_path / str(i), "live", {**regions, **edits}), tmp_path / f"out{i}")
        for i, edits in enumerate(steps)
    ]
    settings = example_settings(tmp_path / "view", "live", regions)
    primary = f"{settings.stack_prefix}-database"
    secondaries = [f"{settings.in_region(r).stack_prefix}-database" for r in settings.other_regions]
    update = ("AWS::RDS::DBCluster", "update", ("EngineVersion",))
    assert _engine_changes(deploy_changes(outs[0], outs[1])) == [(s, *update) for s in secondaries]
    assert _engine_changes(deploy_changes(outs[1], outs[2])) == [(primary, *update)]
