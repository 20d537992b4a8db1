"""`make check-versions`: the pins checked against AWS and the chart repositories (here with canned answers)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

from infra.stacks.eks_addons import EKS_MANAGED_ADDONS, KARPENTER
from scripts.check_versions import addon_problems, check


def _describe(*versions: str, default: str | None = None) -> str:
    return json.dumps(
        {
            "addons": [
                {
                    "addonVersions": [
                        {"addonVersion": v, "compatibilities": [{"defaultVersion": v == default}]} for v in versions
                    ]
                }
            ]
        }
    )


def test_a_pin_aws_does_not_offer_for_the_minor_is_a_problem() -> None:
    problems, _ = addon_problems("1.36", "coredns", "v9.9.9-eksbuild.1", _describe("v1.14.3-eksbuild.3"))
    assert problems == [
        "1.36 coredns: pinned v9.9.9-eksbuild.1 is not offered for 1.36 (offered: v1.14.3-eksbuild.3, ...)"
    ]


def test_an_unpinned_add_on_reports_what_eks_would_install() -> None:
    problems, line = addon_problems(
        "1.35", "vpc-cni", None, _describe("v1.21.1-eksbuild.3", "v1.20.0-eksbuild.1", default="v1.21.1-eksbuild.3")
    )
    assert problems == []
    assert line == "1.35 vpc-cni: not pinned; EKS installs v1.21.1-eksbuild.3"


def test_every_pin_and_chart_is_asked_about() -> None:
    asked: list[list[str]] = []

    def fake(command: Sequence[str]) -> str:
        asked.append(list(command))
        if command[0] == "helm":
            if "metrics-server" in command:
                raise subprocess.CalledProcessError(1, list(command))
            return "apiVersion: v2\n"
        if command[:2] == ["aws", "ssm"]:  # a pinned Karpenter AMI of the user's settings, if any
            return ""
        minor, name = command[command.index("--kubernetes-version") + 1], command[-1]
        return _describe(EKS_MANAGED_ADDONS[minor][name] or "v0.0.0-eksbuild.1")

    problems, report = check(fake)
    aws = [c for c in asked if c[:2] == ["aws", "eks"]]
    assert len(aws) == sum(len(a) for a in EKS_MANAGED_ADDONS.values())
    helm = [c for c in asked if c[0] == "helm"]
    assert [c[4] for c in helm if c[3] == "--repo"] == [
        "https://kubernetes-sigs.github.io/metrics-server/",
        "https://kubernetes.github.io/autoscaler",
        "https://aws.github.io/eks-charts",
    ]
    # OCI charts by reference (helm rejects --repo for them), Karpenter's CRDs beside its controller.
    assert [c[3:] for c in helm if c[3] != "--repo"] == [
        ["oci://public.ecr.aws/karpenter/karpenter", "--version", KARPENTER.version],
        ["oci://public.ecr.aws/karpenter/karpenter-crd", "--version", KARPENTER.version],
    ]
    assert problems == ["chart metrics-server 3.13.0 not found in https://kubernetes-sigs.github.io/metrics-server/"]
    assert any(line.endswith("ok (default None)") for line in report)


# --- make upgrade-readiness ------------------------------------------------------------------------


def _eks(
    running: str, insights: list[dict[str, Any]], details: dict[str, dict[str, Any]] | None = None
) -> tuple[Callable[[Sequence[str]], str], list[list[str]]]:
    asked: list[list[str]] = []

    def fake(command: Sequence[str]) -> str:
        asked.append(list(command))
        if command[2] == "describe-cluster":
            return running + "\n"
        if command[2] == "list-insights":
            return json.dumps({"insights": insights})
        insight_id = command[command.index("--id") + 1]
        return json.dumps({"insight": (details or {}).get(insight_id, {})})

    return fake, asked


def _insight(name: str, status: str, insight_id: str = "i-1") -> dict[str, Any]:
    return {"id": insight_id, "name": name, "insightStatus": {"status": status}}


def test_every_insight_passing_for_the_next_minor_is_ready() -> None:
    from infra.config.settings import EKS_STANDARD_SUPPORT
    from scripts.upgrade_readiness import Cluster, readiness

    accepted = sorted(EKS_STANDARD_SUPPORT)
    fake, asked = _eks(accepted[0], [_insight("Deprecated APIs removed", "PASSING")])
    ready, lines = readiness(Cluster("acme-live", "us-east-1"), accepted, fake)
    assert ready
    assert lines[0] == f"acme-live (us-east-1): Kubernetes {accepted[0]} -> {accepted[1]}"
    listing = next(c for c in asked if c[2] == "list-insights")
    assert json.loads(listing[listing.index("--filter") + 1]) == {
        "categories": ["UPGRADE_READINESS"],
        "kubernetesVersions": [accepted[1]],
    }
    assert listing[listing.index("--region") + 1] == "us-east-1"


def test_a_failing_insight_is_not_ready_and_says_who_calls_what() -> None:
    from infra.config.settings import EKS_STANDARD_SUPPORT
    from scripts.upgrade_readiness import Cluster, readiness

    accepted = sorted(EKS_STANDARD_SUPPORT)
    detail = {
        "insightStatus": {"status": "ERROR", "reason": "Deprecated API usage detected within last 30 days."},
        "recommendation": "Update manifests and API clients to use newer Kubernetes APIs.",
        "categorySpecificSummary": {
            "deprecationDetails": [
                {
                    "usage": "/apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas",
                    "replacedWith": "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas",
                    "clientStats": [{"userAgent": "old-operator", "numberOfRequestsLast30Days": 12}],
                }
            ]
        },
    }
    fake, _ = _eks(accepted[0], [_insight("Deprecated APIs removed", "ERROR", "i-9")], {"i-9": detail})
    ready, lines = readiness(Cluster("acme-live", "us-east-1"), accepted, fake)
    assert not ready
    text = "\n".join(lines)
    assert "ERROR    Deprecated APIs removed" in text
    assert "recommendation: Update manifests" in text
    assert (
        "v1beta3/flowschemas -> /apis/flowcontrol.apiserver.k8s.io/v1/flowschemas; called by old-operator (12" in text
    )


def test_no_insights_yet_or_no_later_minor_is_not_ready() -> None:
    from infra.config.settings import EKS_STANDARD_SUPPORT
    from scripts.upgrade_readiness import Cluster, readiness

    accepted = sorted(EKS_STANDARD_SUPPORT)
    fake, _ = _eks(accepted[0], [])
    ready, lines = readiness(Cluster("c", "eu-west-1"), accepted, fake)
    assert not ready
    assert "no upgrade insights" in lines[-1]
    fake, asked = _eks(accepted[-1], [])
    ready, lines = readiness(Cluster("c", "eu-west-1"), accepted, fake)
    assert not ready
    assert "no later minor is accepted" in lines[0]
    assert [c[2] for c in asked] == ["describe-cluster"]


def test_upgrade_readiness_needs_a_known_environment() -> None:
    from scripts.upgrade_readiness import main

    assert main(["nosuchenv"]) == 2


def test_a_pinned_karpenter_ami_release_is_asked_of_ssm_in_every_region(tmp_path: Any) -> None:
    """An environment with Karpenter on a pinned release: SSM is asked for the parameter Karpenter resolves it
    by (per region of the environment, for its Kubernetes minor); one it lacks is a problem."""
    from tests.projects import EXAMPLES, edited_copy

    project = edited_copy(
        EXAMPLES,
        tmp_path / "project",
        {
            "live": {
                "regions": ["us-east-1", "us-west-2"],
                "github": {"deploy_runs_on": ["self-hosted", "linux", "acme-live-{region}"]},
                "eks": {
                    "autoscaling": "karpenter",
                    "karpenter": {
                        "instance_families": ["m7i"],
                        "instance_sizes": ["xlarge"],
                        "max_vcpus": 64,
                        "max_memory_gib": 256,
                        "ami_family": "bottlerocket",
                        "ami_version": "v1.50.0",
                    },
                },
            },
            "sandbox": {
                "eks": {
                    "autoscaling": "karpenter",
                    "node_group": {"min_size": 2},
                    "karpenter": {
                        "instance_families": ["m7i"],
                        "instance_sizes": ["large"],
                        "max_vcpus": 8,
                        "max_memory_gib": 32,
                    },
                }
            },
        },
    )
    asked: list[list[str]] = []

    def fake(command: Sequence[str]) -> str:
        asked.append(list(command))
        if command[:3] == ["aws", "ssm", "get-parameter"] and command[-1] == "us-west-2":
            raise subprocess.CalledProcessError(1, list(command))
        if command[0] == "aws" and command[1] == "eks":
            minor, name = command[command.index("--kubernetes-version") + 1], command[-1]
            return _describe(EKS_MANAGED_ADDONS[minor][name] or "v0.0.0-eksbuild.1")
        return ""

    problems, _ = check(fake, project)
    version = project.settings("live").eks.kubernetes_version
    parameter = f"/aws/service/bottlerocket/aws-k8s-{version}/x86_64/1.50.0/image_id"
    # Only the pinned release (the sandbox's is latest), in each of the live environment's regions.
    assert [c for c in asked if c[:2] == ["aws", "ssm"]] == [
        ["aws", "ssm", "get-parameter", "--name", parameter, "--region", region]
        for region in ("us-east-1", "us-west-2")
    ]
    assert problems == [
        f"live: eks.karpenter.ami_version 'v1.50.0' has no bottlerocket AMI for Kubernetes {version} in us-west-2 "
        f"({parameter})"
    ]


def test_the_al2023_release_parameter_is_the_one_karpenter_resolves() -> None:
    from infra.config.settings import KarpenterSettings

    settings = KarpenterSettings(
        instance_families=["m7i"], instance_sizes=["large"], max_vcpus=8, max_memory_gib=32, ami_version="v20251120"
    )
    assert settings.ami_parameter("1.35") == (
        "/aws/service/eks/optimized-ami/1.35/amazon-linux-2023/x86_64/standard/"
        "amazon-eks-node-al2023-x86_64-standard-1.35-v20251120/image_id"
    )
    assert settings.model_copy(update={"ami_version": "latest"}).ami_parameter("1.35") is None
