"""Builds one environment's stacks from its settings. Only app.py and tests call this."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_cdk import App, Environment, Tags

from infra.compliance.acknowledgements import acknowledge_platform
from infra.compliance.ledger import Ledger
from infra.config.helm_values import load_addon_values
from infra.config.settings import Settings
from infra.stacks.eks import EksStack
from infra.stacks.eks_addons import HELM_ADDONS
from infra.stacks.network import NetworkStack


@dataclass
class Platform:
    settings: Settings
    network: NetworkStack
    eks: EksStack
    ledger: Ledger


def addon_values(environment: str) -> dict[str, dict[str, Any]]:
    """Every add-on's ``helm_values/<environment>/<addon>.yaml``, checked against what it may tune."""
    return {a.name: load_addon_values(environment, a.name, tunable=a.tunable) for a in HELM_ADDONS}


def build_platform(app: App, settings: Settings, *, addon_values: Mapping[str, Mapping[str, Any]]) -> Platform:
    """``addon_values``: Helm values per add-on from ``helm_values/<env>/`` (see infra.config.helm_values)."""
    env = Environment(account=settings.account, region=settings.region)
    prefix = settings.stack_prefix

    network = NetworkStack(
        app,
        f"{prefix}-network",
        stack_name=f"{prefix}-network",
        description=f"{prefix}: VPC, subnets, NAT gateways, flow logs, endpoints",
        env=env,
        termination_protection=settings.retain_data,
        network=settings.network,
        name_prefix=prefix,
        retain_data=settings.retain_data,
    )

    eks = EksStack(
        app,
        f"{prefix}-eks",
        stack_name=f"{prefix}-eks",
        description=f"{prefix}: EKS cluster, managed nodes, access entries, IRSA per service",
        env=env,
        termination_protection=settings.production,
        vpc=network.vpc,
        zones=settings.network.availability_zones,
        eks_settings=settings.eks,
        services=settings.services,
        environment_name=settings.environment,
        name_prefix=prefix,
        retain_data=settings.retain_data,
        addon_values=addon_values,
    )

    for key, value in (("project", settings.project), ("environment", settings.environment), ("managed-by", "cdk")):
        Tags.of(app).add(key, value)

    platform = Platform(settings=settings, network=network, eks=eks, ledger=Ledger())
    acknowledge_platform(platform)
    return platform
