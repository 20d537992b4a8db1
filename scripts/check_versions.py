#!/usr/bin/env python3
"""`make check-versions`: every pinned version checked against what AWS and the chart repositories serve.

- EKS managed add-ons (infra/stacks/eks_addons.py): with AWS credentials, `aws eks
  describe-addon-versions --kubernetes-version <minor> --addon-name <name>` must list each pin for its
  minor; for an unpinned add-on it prints the version EKS would install by default.
- Helm charts (metrics-server, cluster-autoscaler, aws-load-balancer-controller, and Karpenter's two
  from Amazon ECR Public): `helm show chart --repo <repository> <chart> --version <pin>` (an OCI chart:
  `helm show chart oci://<registry>/<chart> --version <pin>`) must find the pinned version (no
  credentials needed).
- Karpenter's pinned AMI release (an environment's `eks.karpenter.ami_version`, not `latest`): `aws ssm
  get-parameter` of the public parameter Karpenter resolves it by, in each of the environment's regions.

Needs the AWS CLI with credentials that may call eks:DescribeAddonVersions and ssm:GetParameter (read-only),
and helm.
Exit 0: every pin exists; 1: a pin does not; 2: the check could not run (no credentials, no tool).
Run on a schedule by .github/workflows/infra-ci.yml when a read-only role is configured.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
Run = Callable[[Sequence[str]], str]


def run(command: Sequence[str]) -> str:
    return subprocess.run(list(command), capture_output=True, text=True, check=True).stdout


def addon_problems(minor: str, name: str, pinned: str | None, describe: str) -> tuple[list[str], str]:
    """(problems, summary line) for one add-on, from `describe-addon-versions` JSON output."""
    versions = [
        (version["addonVersion"], any(c.get("defaultVersion") for c in version.get("compatibilities", [])))
        for addon in json.loads(describe).get("addons", [])
        for version in addon.get("addonVersions", [])
    ]
    available = [v for v, _ in versions]
    default = next((v for v, is_default in versions if is_default), None)
    if pinned is None:
        return [], f"{minor} {name}: not pinned; EKS installs {default or 'no default listed'}"
    if pinned not in available:
        newest = ", ".join(available[:3]) or "none"
        return [f"{minor} {name}: pinned {pinned} is not offered for {minor} (offered: {newest}, ...)"], ""
    return [], f"{minor} {name}: {pinned} ok (default {default})"


def ami_problems(project: Any, run_command: Run) -> tuple[list[str], list[str]]:
    """Each environment's pinned Karpenter AMI release (eks.karpenter.ami_version), asked of SSM in each of
    its regions for its Kubernetes minor: Karpenter never becomes Ready with a release that is not there."""
    problems: list[str] = []
    report: list[str] = []
    for environment in project.environment_names():
        settings = project.settings(environment)
        karpenter = settings.eks.karpenter
        parameter = karpenter.ami_parameter(settings.eks.kubernetes_version) if karpenter else None
        if karpenter is None or parameter is None:
            continue
        for region in settings.all_regions:
            try:
                run_command(["aws", "ssm", "get-parameter", "--name", parameter, "--region", region])
                report.append(f"{environment} {region} AMI {karpenter.ami_alias}: ok")
            except subprocess.CalledProcessError:
                problems.append(
                    f"{environment}: eks.karpenter.ami_version {karpenter.ami_version!r} has no {karpenter.ami_family} "
                    f"AMI for Kubernetes {settings.eks.kubernetes_version} in {region} ({parameter})"
                )
    return problems, report


def check(run_command: Run = run, project: Any = None) -> tuple[list[str], list[str]]:
    sys.path.insert(0, str(ROOT))
    from infra.config.project import REPOSITORY
    from infra.stacks.eks_addons import EKS_MANAGED_ADDONS, HELM_ADDONS, KARPENTER_CRD

    problems: list[str] = []
    report: list[str] = []
    for minor, addons in EKS_MANAGED_ADDONS.items():
        for name, pinned in addons.items():
            describe = run_command(
                ["aws", "eks", "describe-addon-versions", "--kubernetes-version", minor, "--addon-name", name]
            )
            found, line = addon_problems(minor, name, pinned, describe)
            problems += found
            report += [line] if line else []
    for chart in (*HELM_ADDONS, KARPENTER_CRD):
        # Helm takes an OCI chart by its reference; --repo is for chart repositories (index.yaml) only.
        where = (
            [chart.repository] if chart.repository.startswith("oci://") else ["--repo", chart.repository, chart.chart]
        )
        try:
            run_command(["helm", "show", "chart", *where, "--version", chart.version])
            report.append(f"chart {chart.chart} {chart.version}: ok")
        except subprocess.CalledProcessError:
            problems.append(f"chart {chart.chart} {chart.version} not found in {chart.repository}")
    found, lines = ami_problems(project or REPOSITORY, run_command)
    return problems + found, report + lines


def main() -> int:
    for tool in ("aws", "helm"):
        if shutil.which(tool) is None:
            print(f"check-versions: `{tool}` is not installed", file=sys.stderr)
            return 2
    try:
        run(["aws", "sts", "get-caller-identity"])
    except subprocess.CalledProcessError:
        print("check-versions: needs AWS credentials (read-only: eks:DescribeAddonVersions)", file=sys.stderr)
        return 2
    problems, report = check()
    print("\n".join(report))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
