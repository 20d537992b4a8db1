"""`make check-versions`: the pins checked against AWS and the chart repositories (here with canned answers)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence

from infra.stacks.eks_addons import EKS_MANAGED_ADDONS
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
        minor, name = command[command.index("--kubernetes-version") + 1], command[-1]
        return _describe(EKS_MANAGED_ADDONS[minor][name] or "v0.0.0-eksbuild.1")

    problems, report = check(fake)
    aws = [c for c in asked if c[0] == "aws"]
    assert len(aws) == sum(len(a) for a in EKS_MANAGED_ADDONS.values())
    assert [c[4] for c in asked if c[0] == "helm"] == [
        "https://kubernetes-sigs.github.io/metrics-server/",
        "https://kubernetes.github.io/autoscaler",
        "https://aws.github.io/eks-charts",
    ]
    assert problems == ["chart metrics-server 3.13.0 not found in https://kubernetes-sigs.github.io/metrics-server/"]
    assert any(line.endswith("ok (default None)") for line in report)
