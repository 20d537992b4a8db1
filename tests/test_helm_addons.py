"""Add-ons installed as Helm charts: pinned charts, layered values, bad values files rejected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.config.helm_values import deep_merge, layered_values, load_addon_values
from infra.config.project import cdk_json_context
from infra.config.settings import SettingsError
from infra.platform import addon_values
from infra.stacks.eks_addons import (
    ALB_CONTROLLER,
    CLUSTER_AUTOSCALER,
    KARPENTER,
    METRICS_SERVER,
    METRICS_SERVER_DEFAULT_ARGS,
    eks_image_repository,
)
from tests.projects import EXAMPLES, settings_of
from tests.synth import Synthesized, helm_release, helm_values, resources


def _user_values(env: Synthesized, addon: str) -> dict[str, Any]:
    """What the environment's values file of ``addon`` says (helm_values/<env>/<addon>.yaml)."""
    return dict(addon_values(env.settings.environment, env.project.helm_values)[addon])


def _chart(env: Synthesized, release: str) -> dict[str, Any]:
    return helm_release(env.template("eks"), release)[1]


def test_metrics_server_chart_is_pinned_in_kube_system(env: Synthesized) -> None:
    chart = _chart(env, "metrics-server")["Properties"]
    assert chart["Chart"] == "metrics-server"
    assert chart["Version"] == METRICS_SERVER.version == "3.13.0"
    assert chart["Repository"] == "https://kubernetes-sigs.github.io/metrics-server/"
    assert chart["Namespace"] == "kube-system"
    assert chart["Wait"] is True


def test_metrics_server_waits_for_the_nodes(env: Synthesized) -> None:
    depends_on = _chart(env, "metrics-server")["DependsOn"]
    assert any(d.startswith("ClusterNodegroupNodes") for d in depends_on)


def test_metrics_server_values_are_the_defaults_in_code_under_the_values_file(env: Synthesized) -> None:
    values = json.loads(_chart(env, "metrics-server")["Properties"]["Values"])
    assert values == deep_merge(METRICS_SERVER.defaults, _user_values(env, "metrics-server"))


def test_metrics_server_is_not_given_a_flag_the_chart_already_passes(env: Synthesized) -> None:
    values = json.loads(_chart(env, "metrics-server")["Properties"]["Values"])
    chart_flags = {arg.split("=", 1)[0] for arg in METRICS_SERVER_DEFAULT_ARGS}
    assert not {arg.split("=", 1)[0] for arg in values.get("args", [])} & chart_flags


def test_deep_merge_merges_nested_keys_without_mutating_inputs() -> None:
    base = {"a": {"b": 1, "c": 2}, "list": [1]}
    override = {"a": {"c": 3}, "list": [2]}
    assert deep_merge(base, override) == {"a": {"b": 1, "c": 3}, "list": [2]}
    assert base == {"a": {"b": 1, "c": 2}, "list": [1]}
    assert override == {"a": {"c": 3}, "list": [2]}


def test_computed_values_win_and_may_not_be_contradicted() -> None:
    merged = layered_values(addon="x", defaults={"replicas": 1}, user={"replicas": 3}, computed={"clusterName": "c"})
    assert merged == {"replicas": 3, "clusterName": "c"}
    computed = {"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn"}}}
    extra = layered_values(
        addon="x", defaults={}, user={"serviceAccount": {"annotations": {"team": "a"}}}, computed=computed
    )
    assert extra["serviceAccount"]["annotations"] == {"team": "a", "eks.amazonaws.com/role-arn": "arn"}
    with pytest.raises(
        SettingsError, match=r"key 'serviceAccount.annotations.eks.amazonaws.com/role-arn' is computed by the stack"
    ):
        layered_values(
            addon="x",
            defaults={},
            user={"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "other"}}},
            computed=computed,
        )


def test_a_values_file_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "qa").mkdir()
    (tmp_path / "qa" / "metrics-server.yaml").write_text("- replicas: 2\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"metrics-server.yaml: Helm values must be a mapping .* got list"):
        load_addon_values("qa", "metrics-server", tunable=METRICS_SERVER.tunable, directory=tmp_path)


def test_a_malformed_values_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "qa").mkdir()
    (tmp_path / "qa" / "metrics-server.yaml").write_text("replicas: [2\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"metrics-server.yaml: not valid YAML"):
        load_addon_values("qa", "metrics-server", tunable=METRICS_SERVER.tunable, directory=tmp_path)


def test_a_missing_or_empty_values_file_means_no_overrides(tmp_path: Path) -> None:
    assert load_addon_values("qa", "metrics-server", tunable=METRICS_SERVER.tunable, directory=tmp_path) == {}
    (tmp_path / "qa").mkdir()
    (tmp_path / "qa" / "metrics-server.yaml").write_text("# nothing\n", encoding="utf-8")
    assert load_addon_values("qa", "metrics-server", tunable=METRICS_SERVER.tunable, directory=tmp_path) == {}


def test_an_unknown_top_level_key_is_rejected_with_what_is_allowed(tmp_path: Path) -> None:
    (tmp_path / "qa").mkdir()
    (tmp_path / "qa" / "metrics-server.yaml").write_text("replica: 2\n", encoding="utf-8")
    with pytest.raises(
        SettingsError, match=r"key 'replica' is not a tunable value of metrics-server; allowed: .*replicas"
    ):
        load_addon_values("qa", "metrics-server", tunable=METRICS_SERVER.tunable, directory=tmp_path)


def test_every_committed_values_file_belongs_to_an_add_on_or_a_service() -> None:
    from tests.conftest import CONFIGURED

    addons = {a.name for a in (METRICS_SERVER, CLUSTER_AUTOSCALER, ALB_CONTROLLER)}
    for project in {s.project for s in CONFIGURED} | {EXAMPLES}:
        for path in project.helm_values.glob("*/*.yaml"):
            assert path.stem in addons, f"{path} matches no add-on"
        for path in project.helm_values.glob("*"):
            assert path.name in project.environment_names(), f"{path}: no environment of that name"


def _values(env: Synthesized, release: str) -> dict[str, Any]:
    return helm_values(env.template("eks"), release)


def _installed(env: Synthesized, addon: Any) -> bool:
    """Whether the environment installs ``addon``: the autoscaler of eks.autoscaling only (then asserting
    that the other is not installed)."""
    if addon.name in ("cluster-autoscaler", "karpenter") and addon.name != env.settings.eks.autoscaling:
        releases = [
            r["Properties"]["Release"] for r in resources(env.template("eks"), "Custom::AWSCDK-EKS-HelmChart").values()
        ]
        assert addon.name not in releases
        return False
    return True


@pytest.mark.parametrize("addon", [METRICS_SERVER, CLUSTER_AUTOSCALER, ALB_CONTROLLER, KARPENTER], ids=lambda a: a.name)
def test_every_add_on_chart_is_pinned_and_waits_for_the_nodes(env: Synthesized, addon: Any) -> None:
    if not _installed(env, addon):
        return
    chart = _chart(env, addon.name)
    assert chart["Properties"]["Chart"] == addon.chart
    assert chart["Properties"]["Version"] == addon.version
    assert chart["Properties"]["Repository"] == addon.repository
    assert chart["Properties"]["Namespace"] == "kube-system"
    assert chart["Properties"]["Wait"] is True
    assert any(d.startswith("ClusterNodegroupNodes") for d in chart["DependsOn"])
    assert "CoreDnsAddon" in chart["DependsOn"]


@pytest.mark.parametrize("addon", [METRICS_SERVER, CLUSTER_AUTOSCALER, KARPENTER], ids=lambda a: a.name)
def test_charts_that_create_services_wait_for_the_load_balancer_controller(env: Synthesized, addon: Any) -> None:
    # Its webhook refuses every new Service while its pods are not ready.
    if not _installed(env, addon):
        return
    charts = resources(env.template("eks"), "Custom::AWSCDK-EKS-HelmChart")
    (controller_id,) = [k for k, v in charts.items() if v["Properties"]["Release"] == ALB_CONTROLLER.name]
    assert controller_id in _chart(env, addon.name)["DependsOn"]


def test_load_balancer_controller_image_comes_from_the_clusters_region(env: Synthesized) -> None:
    image = _values(env, ALB_CONTROLLER.name)["image"]
    assert image == {
        "repository": f"602401143452.dkr.ecr.{env.settings.region}.amazonaws.com/amazon/aws-load-balancer-controller",
        "tag": f"v{ALB_CONTROLLER.version}",
    }


def test_load_balancer_controller_image_registry_per_region() -> None:
    assert eks_image_repository("eu-west-1", "amazon/x") == "602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon/x"
    assert eks_image_repository("af-south-1", "amazon/x") == "877085696533.dkr.ecr.af-south-1.amazonaws.com/amazon/x"


def test_cluster_autoscaler_discovers_this_clusters_groups_through_its_role(env: Synthesized) -> None:
    if not _installed(env, CLUSTER_AUTOSCALER):
        return
    values = _values(env, "cluster-autoscaler")
    cluster_name = env.settings.stack_prefix
    assert values["autoDiscovery"] == {"clusterName": cluster_name}
    assert values["awsRegion"] == env.settings.region
    assert values["cloudProvider"] == "aws"
    # The autoscaler's minor version follows the cluster's.
    assert values["image"] == {"tag": "v" + env.settings.eks.kubernetes_version + ".2"}
    account = values["rbac"]["serviceAccount"]
    assert account["create"] is True
    assert account["name"] == "cluster-autoscaler"
    # IRSA: the role's annotation; Pod Identity: none (its association names the role: tests/test_eks.py).
    if env.settings.eks.workload_identity == "pod-identity":
        assert "annotations" not in account
        assert any(
            d.startswith("ClusterAutoscalerRoleAssociation") for d in _chart(env, "cluster-autoscaler")["DependsOn"]
        )
    else:
        assert account["annotations"]["eks.amazonaws.com/role-arn"].startswith("<ref:ClusterAutoscalerRole")


def test_cluster_autoscaler_arguments_are_the_defaults_in_code_under_the_values_file(env: Synthesized) -> None:
    if not _installed(env, CLUSTER_AUTOSCALER):
        return
    args = _values(env, "cluster-autoscaler")["extraArgs"]
    assert args == deep_merge(
        CLUSTER_AUTOSCALER.defaults["extraArgs"], _user_values(env, "cluster-autoscaler").get("extraArgs", {})
    )
    # Defaults from code that matter to the platform, unless a values file says otherwise.
    assert "expander" in args
    assert "balance-similar-node-groups" in args


def test_cluster_autoscaler_may_resize_only_groups_tagged_for_this_cluster(env: Synthesized) -> None:
    if not _installed(env, CLUSTER_AUTOSCALER):
        return
    template = env.template("eks")
    (policy,) = [
        p["Properties"]
        for k, p in resources(template, "AWS::IAM::ManagedPolicy").items()
        if k.startswith("ClusterAutoscalerPolicy")
    ]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    resize = statements["ResizeThisClustersNodeGroups"]
    assert sorted(resize["Action"]) == [
        "autoscaling:SetDesiredCapacity",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
    ]
    assert resize["Condition"] == {
        "StringEquals": {
            f"aws:ResourceTag/k8s.io/cluster-autoscaler/{env.settings.stack_prefix}": "owned",
            "aws:ResourceTag/k8s.io/cluster-autoscaler/enabled": "true",
        }
    }
    describe = statements["DescribeScalingInputs"]
    assert all(":Describe" in a or ":Get" in a for a in describe["Action"])
    assert "Condition" not in describe
    nodegroups = statements["DescribeThisClustersNodeGroups"]
    assert nodegroups["Action"] == "eks:DescribeNodegroup"
    assert nodegroups["Resource"]["Fn::Join"][1][-1].endswith(f":nodegroup/{env.settings.stack_prefix}/*")
    assert set(statements) == {
        "ResizeThisClustersNodeGroups",
        "DescribeScalingInputs",
        "DescribeThisClustersNodeGroups",
    }


def test_load_balancer_controller_values_are_the_stacks_over_the_values_file(env: Synthesized) -> None:
    values = _values(env, "aws-load-balancer-controller")
    assert values["clusterName"].startswith("<ref:Cluster")
    assert values["serviceAccount"] == {"create": False, "name": "aws-load-balancer-controller"}
    assert values["region"] == env.settings.region
    assert values["vpcId"] == "<ref:output>"
    assert values["image"]["tag"] == "v" + ALB_CONTROLLER.version
    assert values["defaultTargetType"] == "ip"
    # An upgrade keeps the webhooks' certificate: no window where they serve one their CA does not sign.
    assert values["keepTLSSecret"] is True
    for key, value in _user_values(env, "aws-load-balancer-controller").items():
        expected = deep_merge(ALB_CONTROLLER.defaults.get(key, {}), value) if isinstance(value, dict) else value
        assert values[key] == expected, key


@pytest.mark.needs_synth("examples-live-two-regions")
def test_the_examples_spread_the_production_controller_over_zones() -> None:
    """What the production example's values file asks for (helm_values/live/), as the chart gets it."""
    from tests.subjects import two_regions

    values = _values(two_regions("live").synthesized, "aws-load-balancer-controller")
    assert values["replicaCount"] == 2
    assert values["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"


def test_load_balancer_controller_values_may_not_override_what_the_stack_sets(tmp_path: Path) -> None:
    from aws_cdk import App

    from infra.platform import build_platform

    values = addon_values("sandbox", EXAMPLES.helm_values)
    values["aws-load-balancer-controller"] = {**values["aws-load-balancer-controller"], "vpcId": "vpc-123"}
    app = App(outdir=str(tmp_path), context=cdk_json_context())
    with pytest.raises(SettingsError, match=r"aws-load-balancer-controller: key 'vpcId' is computed by the stack"):
        build_platform(app, settings_of(EXAMPLES, "sandbox"), addon_values=values)


@pytest.mark.parametrize(("addon", "key"), [(ALB_CONTROLLER, "clusterName"), (CLUSTER_AUTOSCALER, "awsRegion")])
def test_a_computed_key_in_a_values_file_is_named_as_computed(tmp_path: Path, addon: Any, key: str) -> None:
    (tmp_path / "qa").mkdir()
    (tmp_path / "qa" / f"{addon.name}.yaml").write_text(f"{key}: x\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=rf"key '{key}' is computed by the stack and cannot be set"):
        load_addon_values("qa", addon.name, tunable=addon.tunable, computed=addon.computed, directory=tmp_path)


@pytest.mark.parametrize("addon", [CLUSTER_AUTOSCALER, ALB_CONTROLLER, KARPENTER], ids=lambda a: a.name)
def test_the_keys_declared_computed_are_the_ones_the_stack_sets(env: Synthesized, addon: Any) -> None:
    if not _installed(env, addon):
        return
    values = _values(env, addon.name)
    assert addon.computed <= set(values)
    assert not addon.computed & addon.tunable
