"""Add-ons installed as Helm charts: pinned charts, layered values, bad values files rejected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.config.helm_values import deep_merge, layered_values, load_addon_values
from infra.config.settings import SettingsError
from infra.stacks.eks import METRICS_SERVER
from tests.synth import Synthesized, resources


def _chart(env: Synthesized, release: str) -> dict[str, Any]:
    charts = [
        r
        for r in resources(env.template("eks"), "Custom::AWSCDK-EKS-HelmChart").values()
        if r["Properties"]["Release"] == release
    ]
    assert len(charts) == 1
    return charts[0]


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


def test_metrics_server_values_per_environment(dev: Synthesized, prod: Synthesized) -> None:
    dev_values = json.loads(_chart(dev, "metrics-server")["Properties"]["Values"])
    prod_values = json.loads(_chart(prod, "metrics-server")["Properties"]["Values"])
    assert dev_values["replicas"] == 1
    assert dev_values["podDisruptionBudget"] == {"enabled": False}
    assert prod_values["replicas"] == 2
    assert prod_values["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}
    # Defaults from code survive the merge.
    for values in (dev_values, prod_values):
        assert values["args"] == ["--kubelet-preferred-address-types=InternalIP"]
        assert values["resources"] == {"requests": {"cpu": "100m", "memory": "200Mi"}}


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
        load_addon_values("qa", "metrics-server", directory=tmp_path)


def test_a_malformed_values_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "qa").mkdir()
    (tmp_path / "qa" / "metrics-server.yaml").write_text("replicas: [2\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"metrics-server.yaml: not valid YAML"):
        load_addon_values("qa", "metrics-server", directory=tmp_path)


def test_a_missing_or_empty_values_file_means_no_overrides(tmp_path: Path) -> None:
    assert load_addon_values("qa", "metrics-server", directory=tmp_path) == {}
    (tmp_path / "qa").mkdir()
    (tmp_path / "qa" / "metrics-server.yaml").write_text("# nothing\n", encoding="utf-8")
    assert load_addon_values("qa", "metrics-server", directory=tmp_path) == {}
