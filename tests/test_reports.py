"""reports/<env>/: cost estimate arithmetic and behaviour, the architecture diagram, and freshness."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from infra.assembly import load_templates, stack_dependencies, stack_regions
from infra.config.project import cdk_json_context
from infra.reports.architecture import _id, mermaid
from infra.reports.cost import ASSUMPTION_NOTES, estimate, load_prices, render_markdown
from tests.conftest import CONFIGURED
from tests.projects import EXAMPLES, settings_of
from tests.subjects import two_regions
from tests.synth import Synthesized

PRICES: dict[str, Any] = {
    "date": "2026-01-01",
    "hours_per_month": 100,
    "assumptions": {
        "nat_gb_per_month": {"idle": 10, "busy": 100},
        "endpoint_gb_per_month": {"idle": 0, "busy": 0},
        "log_gb_per_group_month": {"idle": 1, "busy": 2},
        "aurora_storage_gb": {"idle": 10, "busy": 100},
        "aurora_io_millions_per_month": {"idle": 0, "busy": 0},
        "aurora_daily_change_fraction": 0.0,
        "cache_data_gb": {"idle": 0.1, "busy": "max"},
        "cache_ecpu_per_second": {"idle": 0, "busy": "max"},
        "image_gb": 1.0,
        "images_per_repository": {"idle": 1, "busy": "max"},
    },
    "regions": {
        "xx-test-1": {
            "eks_cluster_hour": {"standard": 0.1, "extended": 0.6},
            "nat_gateway_hour": 1.0,
            "nat_gateway_gb": 0.5,
            "public_ipv4_hour": 0.25,
            "interface_endpoint_az_hour": 0.01,
            "interface_endpoint_gb": 0.01,
            "ec2_hour": {"t3.large": 2.0},
            "ebs_gp3_gb_month": 0.1,
            "aurora_acu_hour": 0.5,
            "aurora_instance_hour": {},
            "aurora_storage_gb_month": 1.0,
            "aurora_io_million": 0.0,
            "aurora_backup_gb_month": 0.0,
            "valkey_serverless_gb_hour": 1.0,
            "valkey_serverless_minimum_gb": 0.1,
            "valkey_serverless_million_ecpu": 1.0,
            "kms_key_month": 1.0,
            "logs_ingest_gb": 0.5,
            "logs_store_gb_month": 0.5,
            "ecr_gb_month": 0.1,
        }
    },
}

SMALL: dict[str, dict[str, Any]] = {
    "s": {
        "Resources": {
            "Cluster": {"Type": "AWS::EKS::Cluster", "Properties": {"Version": "1.35"}},
            "Nat": {"Type": "AWS::EC2::NatGateway"},
            "Lt": {
                "Type": "AWS::EC2::LaunchTemplate",
                "Properties": {"LaunchTemplateData": {"BlockDeviceMappings": [{"Ebs": {"VolumeSize": 20}}]}},
            },
            "Nodes": {
                "Type": "AWS::EKS::Nodegroup",
                "Properties": {
                    "InstanceTypes": ["t3.large"],
                    "ScalingConfig": {"MinSize": 1, "DesiredSize": 2, "MaxSize": 3},
                    "LaunchTemplate": {"Id": {"Ref": "Lt"}},
                },
            },
            "Db": {
                "Type": "AWS::RDS::DBCluster",
                "Properties": {"ServerlessV2ScalingConfiguration": {"MinCapacity": 0.5, "MaxCapacity": 4}},
            },
            "Writer": {
                "Type": "AWS::RDS::DBInstance",
                "Properties": {"DBClusterIdentifier": {"Ref": "Db"}, "DBInstanceClass": "db.serverless"},
            },
            "Cache": {
                "Type": "AWS::ElastiCache::ServerlessCache",
                "Properties": {
                    "CacheUsageLimits": {
                        "DataStorage": {"Maximum": 2, "Unit": "GB"},
                        "ECPUPerSecond": {"Maximum": 1000},
                    }
                },
            },
            "Key": {"Type": "AWS::KMS::Key"},
            "Logs": {"Type": "AWS::Logs::LogGroup"},
        }
    }
}


def test_cost_arithmetic_on_a_small_template_with_known_prices() -> None:
    result = estimate(SMALL, environment="t", region="xx-test-1", prices=PRICES)
    lines = {line.item.split(" (")[0].split(" x")[0]: (line.idle, line.busy) for line in result.lines}
    assert lines["EKS control plane"] == (10.0, 10.0)  # 0.1 x 100 h
    assert lines["NAT gateways"] == (130.0, 175.0)  # (1.0 + 0.25) x 100 + 0.5 x 10 / x 100
    assert lines["EKS nodes t3.large"] == (404.0, 606.0)  # (2.0 x 100 + 20 GB x 0.1) x 2 / x 3
    assert lines["Aurora Serverless v2"] == (25.0, 200.0)  # 1 x 0.5 / 4 ACU x 0.5 x 100
    assert lines["Aurora storage, I/O and backups"] == (10.0, 100.0)  # 10 / 100 GB x 1.0
    # max(0.1 GB minimum, 0.1) x 1.0 x 100 / 2 GB x 100 + 1000 ECPU/s x 360000 s / 1e6 x 1.0
    assert lines["ElastiCache Serverless"] == (10.0, 560.0)
    assert lines["KMS keys"] == (1.0, 1.0)
    assert lines["CloudWatch Logs, 1 log groups"] == (1.0, 2.0)
    assert result.idle == 591.0
    assert result.busy == 1654.0
    assert result.unknown == []


def test_extended_support_is_priced_when_the_version_has_left_standard_support() -> None:
    old = copy.deepcopy(SMALL)
    old["s"]["Resources"]["Cluster"]["Properties"]["Version"] = "1.29"
    (line,) = [
        x for x in estimate(old, environment="t", region="xx-test-1", prices=PRICES).lines if "EKS control" in x.item
    ]
    assert line.item == "EKS control plane (1.29, extended support)"
    assert line.idle == 60.0


def test_an_unknown_region_says_so_instead_of_guessing() -> None:
    result = estimate(SMALL, environment="t", region="ap-south-2", prices=load_prices())
    assert result.lines == []
    (message,) = result.unknown
    assert "No prices for region ap-south-2" in message
    assert "us-east-1" in message


def test_the_price_file_is_dated_and_sourced_for_both_regions() -> None:
    prices = load_prices()
    assert prices["date"]
    assert set(prices["regions"]) >= {"us-east-1", "eu-west-1"}
    assert all(url.startswith("https://aws.amazon.com/") for url in prices["sources"].values())
    # The one known gap: no confirmed Aurora replicated write I/O price for eu-west-1 (reported as unknown).
    assert set(prices["regions"]["us-east-1"]) - set(prices["regions"]["eu-west-1"]) == {
        "aurora_replicated_write_io_million"
    }
    assert set(prices["regions"]["eu-west-1"]) <= set(prices["regions"]["us-east-1"])


@pytest.mark.needs_synth("examples-sandbox-two-regions")
def test_spot_nodes_are_priced_at_the_assumed_fraction_and_the_report_says_so() -> None:
    """The non-production example runs Spot nodes (tests/subjects.py, in two regions; its primary's stacks)."""
    done = two_regions("sandbox").synthesized
    regions = stack_regions(done.outdir)
    templates = {k: v for k, v in load_templates(done.outdir).items() if regions[k] == done.settings.region}
    prices = load_prices()
    cost = estimate(templates, environment="sandbox", region=done.settings.region, prices=prices)
    (nodes,) = [line for line in cost.lines if line.item.startswith("EKS nodes")]
    fraction = prices["assumptions"]["spot_price_fraction"]
    node_group = done.settings.eks.node_group
    assert node_group.capacity_type == "spot"
    hourly = prices["regions"][done.settings.region]["ec2_hour"][node_group.instance_types[0]]
    assert "Spot" in nodes.item
    assert f"Spot, assumed at {fraction:.0%} of the ${hourly}/h on-demand price" in nodes.basis
    disk = node_group.disk_size_gib * prices["regions"][done.settings.region]["ebs_gp3_gb_month"]
    expected = round(node_group.desired_size * (hourly * fraction * prices["hours_per_month"] + disk), 2)
    assert nodes.idle == expected < node_group.desired_size * (hourly * prices["hours_per_month"] + disk)


def test_one_more_nat_gateway_raises_the_estimate_by_exactly_its_price(tmp_path: Path) -> None:
    from aws_cdk import App, Environment

    from infra.stacks.network import NetworkStack

    settings = settings_of(EXAMPLES, "sandbox")
    prices = load_prices()

    def cost(nat_gateways: int) -> tuple[float, float]:
        # The network stack alone, without the platform's acknowledgements: findings must not stop synth.
        context = {**cdk_json_context(), "@aws-cdk/core:failSynthOnValidationErrors": False}
        app = App(outdir=str(tmp_path / str(nat_gateways)), context=context)
        network = settings.network.model_copy(update={"nat_gateways": nat_gateways})
        NetworkStack(
            app,
            "n",
            env=Environment(region=settings.region),
            zones=settings.availability_zones,
            network=network,
            name_prefix="t",
            retain_data=False,
        )
        outdir = Path(app.synth().directory)
        result = estimate(load_templates(outdir), environment="t", region=settings.region, prices=prices)
        return result.idle, result.busy

    (idle1, busy1), (idle2, busy2) = cost(1), cost(2)
    region, gb = prices["regions"][settings.region], prices["assumptions"]["nat_gb_per_month"]
    fixed = round((region["nat_gateway_hour"] + region["public_ipv4_hour"]) * prices["hours_per_month"], 2)
    assert round(idle2 - idle1, 2) == round(fixed + gb["idle"] * region["nat_gateway_gb"], 2)
    assert round(busy2 - busy1, 2) == round(fixed + gb["busy"] * region["nat_gateway_gb"], 2)


def test_the_diagram_names_every_stack_and_every_dependency(env: Synthesized) -> None:
    dependencies = stack_dependencies(env.outdir)
    diagram = mermaid(load_templates(env.outdir), dependencies)
    assert diagram.startswith("flowchart LR")
    for stack, deps in dependencies.items():
        assert f'subgraph {_id(stack)}["{stack}"]' in diagram
        for dep in deps:
            assert f"{_id(stack)} -. waits for .-> {_id(dep)}" in diagram
    assert sum(len(d) for d in dependencies.values()) == diagram.count("-. waits for .->")


def test_the_diagram_shows_who_reaches_the_data_stores_on_which_port(env: Synthesized) -> None:
    diagram = mermaid(load_templates(env.outdir), stack_dependencies(env.outdir))
    prefix = env.settings.stack_prefix
    nodes = _id(f"{prefix}-eks", "ClusterNodegroupNodes417D2EBB")
    cache = {"serverless": "Valkey26DD46EF", "replication-group": "ValkeyReplicationGroup77C9E011"}
    assert f"{nodes} -->|tcp 5432| {_id(f'{prefix}-database', 'ClusterEB0386A7')}" in diagram
    assert f"{nodes} -->|tcp 6379| {_id(f'{prefix}-cache', cache[env.settings.cache.kind])}" in diagram


@pytest.mark.parametrize("name", ["compliance.md", "compliance.json", "cost.md", "cost.json", "architecture.md"])
def test_committed_reports_are_what_make_synth_writes(configured: Synthesized, name: str) -> None:
    """The README links these files; they must never drift from the code or the settings. The
    session's synth of each environment wrote its reports as `make synth` does, elsewhere."""
    env = configured
    assert env.reports is not None
    committed = env.project.reports / env.settings.environment / name
    command = f"make synth ENV={env.settings.environment} (or make reports, for every environment)"
    assert committed.exists(), f"{committed} is missing: run {command}"
    assert committed.read_text(encoding="utf-8") == (env.reports / name).read_text(encoding="utf-8"), (
        f"{committed} is stale: run {command} and commit it"
    )


def test_no_report_is_committed_for_an_environment_that_does_not_exist() -> None:
    for project in {s.project for s in CONFIGURED}:
        environments = set(project.environment_names())
        assert {p.name for p in project.reports.iterdir() if p.is_dir()} <= environments, project.root


def test_the_diagram_shows_readable_values_and_the_services_of_each_shard(env: Synthesized) -> None:
    text = mermaid(load_templates(env.outdir), stack_dependencies(env.outdir))
    assert "Fn::" not in text
    assert "'Ref'" not in text
    for stack, template in env.shards("services").items():
        names = sorted(
            s.name for s in env.settings.services if f"{s.name}-{env.settings.environment}" in json.dumps(template)
        )
        expected = ", ".join(f"{n}-{env.settings.environment}" for n in names)
        identity = "Pod Identity" if env.settings.eks.workload_identity == "pod-identity" else "IRSA"
        assert f'{_id(stack, "namespaces")}["namespaces + {identity} service accounts: {expected}"]' in text
    eks = f"{env.settings.stack_prefix}-eks"
    karpenter = env.settings.eks.karpenter
    if karpenter is None:
        assert "Karpenter" not in text
        return
    assert (
        f'{_id(eks, "nodepool")}["Karpenter NodePool default: {"/".join(karpenter.instance_families)} x '
        f"{'/'.join(karpenter.instance_sizes)}, {' and '.join(karpenter.capacity_types)}, up to "
        f'{karpenter.max_vcpus} vCPUs"]'
    ) in text


def _assumption_rows(markdown: str) -> list[list[str]]:
    """The cells of each row of the cost report's assumptions table."""
    section = markdown.split("\n## Assumptions\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert rows[0] == "| assumption | value | source / note |"
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip().strip("|"))] for row in rows[1:]]


def test_every_assumption_of_the_price_file_says_what_it_means() -> None:
    assert list(load_prices()["assumptions"]) == list(ASSUMPTION_NOTES)
    assert all(description and note for description, _, note in ASSUMPTION_NOTES.values())


def test_the_assumptions_read_as_a_table_of_values_not_as_python() -> None:
    prices = copy.deepcopy(PRICES)
    prices["assumptions"]["not_explained_yet"] = {"idle": 1, "busy": "a | b"}
    e = estimate(SMALL, environment="t", region="xx-test-1", prices=prices)
    rows = _assumption_rows(render_markdown(e))
    assert [row[2].rsplit("(`", 1)[1].rstrip("`)") for row in rows] == list(prices["assumptions"])
    for row, value in zip(rows, prices["assumptions"].values(), strict=True):
        assert not any(c in row[1] for c in "{}'\""), row
        for level in value if isinstance(value, dict) else []:
            assert f"{level} " in row[1]
    by_name = {row[2].rsplit("(`", 1)[1].rstrip("`)"): row for row in rows}
    assert by_name["nat_gb_per_month"][:2] == [
        "Data processed by each NAT gateway",
        "idle 10 GB a month; busy 100 GB a month",
    ]
    assert by_name["cache_data_gb"][1] == "idle 0.1 GB; busy the limit in the template"
    assert by_name["aurora_daily_change_fraction"][1] == "0%"
    assert by_name["not_explained_yet"][1] == "idle 1; busy a \\| b"


@pytest.mark.parametrize("name", ["cost.md", "cost.json"])
def test_the_written_cost_report_states_every_assumption_once(configured: Synthesized, name: str) -> None:
    env = configured
    assert env.reports is not None
    prices = load_prices()
    if name == "cost.md":
        rows = _assumption_rows((env.reports / name).read_text(encoding="utf-8"))
        assert [row[2].rsplit("(`", 1)[1].rstrip("`)") for row in rows] == list(prices["assumptions"])
        return
    cost = json.loads((env.reports / name).read_text(encoding="utf-8"))
    assert {"idle", "busy"} <= set(cost["total"])  # scripts/bench.py reads these
    for estimate_ in cost.get("regions", [cost]):
        assert {a["name"]: a["value"] for a in estimate_["assumptions"]} == prices["assumptions"]
        assert all(a["description"] and a["note"] for a in estimate_["assumptions"])


def test_a_synth_of_other_settings_or_another_region_leaves_the_committed_reports_alone(tmp_path: Path) -> None:
    """The committed reports describe the settings files as they are: a synth for another region or
    of another settings directory (make bench's, an experiment's) reports beside its templates."""
    import app

    committed, outdir = tmp_path / "reports", tmp_path / "cdk.out"
    nothing: dict[str, str] = {}
    assert app.reports_directory(nothing.get, outdir, committed) == committed
    assert app.reports_directory({"region": "us-west-2"}.get, outdir, committed) == outdir / "reports"
    assert app.reports_directory({"settings_dir": str(tmp_path)}.get, outdir, committed) == outdir / "reports"
    chosen = {"reports_dir": str(tmp_path / "mine"), "settings_dir": str(tmp_path)}
    assert app.reports_directory(chosen.get, outdir, committed) == tmp_path / "mine"
