#!/usr/bin/env python3
"""`make upgrade-readiness ENV=<env>`: may this environment's clusters move to the next Kubernetes minor?

For each region of the environment, with read-only credentials (eks:DescribeCluster, eks:ListInsights,
eks:DescribeInsight):

- the cluster's running version (`aws eks describe-cluster`) and the next minor the settings accept
  (`EKS_STANDARD_SUPPORT`), with its kubectl layer installed and its add-ons pinned;
- EKS's upgrade insights for that next minor (`aws eks list-insights --filter
  categories=UPGRADE_READINESS,kubernetesVersions=<next>`): each one's status, and for any that is
  not PASSING its recommendation (`aws eks describe-insight`), e.g. the deprecated APIs still called
  and by whom.

Exit 0: every insight for the next minor is PASSING (set `eks.kubernetes_version` to it: docs/operations.md,
"Upgrading Kubernetes"); 1: something to fix or review first (or no next minor); 2: the check could
not run (no AWS CLI, no credentials, no such environment).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
Run = Callable[[Sequence[str]], str]


def run(command: Sequence[str]) -> str:
    return subprocess.run(list(command), capture_output=True, text=True, check=True).stdout


@dataclass(frozen=True)
class Cluster:
    name: str
    region: str


def next_minor(version: str, accepted: Sequence[str]) -> str | None:
    """The accepted minor right after ``version`` (``1.35`` -> ``1.36``), if the settings accept it."""
    major, minor = version.split(".")
    following = f"{major}.{int(minor) + 1}"
    return following if following in accepted else None


def prerequisites(version: str) -> list[str]:
    """What the repository itself needs before a cluster can move to ``version``."""
    from infra.stacks.eks_addons import CLUSTER_AUTOSCALER_IMAGE, EKS_MANAGED_ADDONS

    missing = []
    module = f"aws_cdk.lambda_layer_kubectl_v{version.split('.')[1]}"
    if importlib.util.find_spec(module) is None:
        missing.append(f"the kubectl layer package for {version} is not installed (make setup)")
    if version not in EKS_MANAGED_ADDONS or version not in CLUSTER_AUTOSCALER_IMAGE:
        missing.append(f"no add-on pins for {version} in infra/stacks/eks_addons.py")
    return missing


def readiness(cluster: Cluster, accepted: Sequence[str], run_command: Run = run) -> tuple[bool, list[str]]:
    """(ready, report lines) for one cluster."""
    where = ["--region", cluster.region]
    running = run_command(
        [
            "aws",
            "eks",
            "describe-cluster",
            "--name",
            cluster.name,
            *where,
            "--query",
            "cluster.version",
            "--output",
            "text",
        ]
    ).strip()
    target = next_minor(running, accepted)
    head = f"{cluster.name} ({cluster.region}): Kubernetes {running}"
    if target is None:
        return False, [f"{head}; no later minor is accepted by the settings ({', '.join(accepted)})"]
    lines = [f"{head} -> {target}"]
    ready = True
    for problem in prerequisites(target):
        lines.append(f"  not ready: {problem}")
        ready = False
    listed = json.loads(
        run_command(
            [
                "aws",
                "eks",
                "list-insights",
                "--cluster-name",
                cluster.name,
                *where,
                "--output",
                "json",
                "--filter",
                json.dumps({"categories": ["UPGRADE_READINESS"], "kubernetesVersions": [target]}),
            ]
        )
    )
    insights = listed.get("insights", [])
    if not insights:
        lines.append(f"  not ready: EKS lists no upgrade insights for {target} yet (they refresh daily); try later")
        return False, lines
    for insight in sorted(insights, key=lambda i: i.get("name", "")):
        status = insight.get("insightStatus", {}).get("status", "UNKNOWN")
        lines.append(f"  {status:<8} {insight.get('name', insight.get('id'))}")
        if status == "PASSING":
            continue
        ready = False
        detail = json.loads(
            run_command(
                ["aws", "eks", "describe-insight", "--cluster-name", cluster.name, *where, "--id", insight["id"]]
            )
        ).get("insight", {})
        reason = detail.get("insightStatus", {}).get("reason") or insight.get("insightStatus", {}).get("reason")
        if reason:
            lines.append(f"           {reason}")
        if detail.get("recommendation"):
            lines.append(f"           recommendation: {detail['recommendation']}")
        for deprecation in detail.get("categorySpecificSummary", {}).get("deprecationDetails", []):
            clients = ", ".join(
                f"{c.get('userAgent', '?')} ({c.get('numberOfRequestsLast30Days', '?')} calls)"
                for c in deprecation.get("clientStats", [])
            )
            lines.append(
                f"           {deprecation.get('usage')} -> {deprecation.get('replacedWith') or 'removed'}"
                + (f"; called by {clients}" if clients else "")
            )
    return ready, lines


def clusters(environment: str) -> list[Cluster]:
    sys.path.insert(0, str(ROOT))
    from infra.config.project import REPOSITORY

    settings = REPOSITORY.settings(environment)
    # Every region's cluster has the environment's name (EksStack: cluster name = name prefix).
    return [Cluster(settings.in_region(r).name_prefix, r) for r in settings.all_regions]


def main(argv: Sequence[str] = sys.argv[1:]) -> int:
    if len(argv) != 1:
        print("usage: upgrade_readiness.py <environment>", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    from infra.config.settings import EKS_STANDARD_SUPPORT, SettingsError

    try:
        found = clusters(argv[0])
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if shutil.which("aws") is None:
        print("upgrade-readiness: the AWS CLI is not installed", file=sys.stderr)
        return 2
    try:
        run(["aws", "sts", "get-caller-identity"])
    except subprocess.CalledProcessError:
        print(
            "upgrade-readiness: needs AWS credentials (read-only: eks:DescribeCluster, eks:ListInsights, "
            "eks:DescribeInsight)",
            file=sys.stderr,
        )
        return 2
    ready = True
    for cluster in found:
        ok, lines = readiness(cluster, sorted(EKS_STANDARD_SUPPORT))
        print("\n".join(lines))
        ready = ready and ok
    print("ready: set eks.kubernetes_version to the next minor" if ready else "not ready: see above")
    return 0 if ready else 1


if __name__ == "__main__":
    sys.exit(main())
