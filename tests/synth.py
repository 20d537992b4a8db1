"""In-process synthesis exactly as app.py does it, for tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import App

from infra.compliance.packs import register_rule_packs
from infra.config.settings import Settings
from infra.platform import Platform, addon_values, build_platform
from infra.stacks.cache import CacheStack

ROOT = Path(__file__).resolve().parent.parent


def cdk_json_context() -> dict[str, Any]:
    """The context the CDK CLI passes to app.py: cdk.json's, and the CLI's own defaults (path and asset
    metadata on; cfn-lint, for one, reads the path metadata to tell a CDK template)."""
    config = json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))
    return {
        **config["context"],
        "aws:cdk:version-reporting": config["versionReporting"],
        "aws:cdk:enable-path-metadata": True,
        "aws:cdk:enable-asset-metadata": True,
    }


@dataclass
class Synthesized:
    settings: Settings
    platform: Platform
    outdir: Path
    packs: list[str]

    def template(self, stack: str) -> dict[str, Any]:
        name = f"{self.settings.stack_prefix}-{stack}"
        return dict(json.loads((self.outdir / f"{name}.template.json").read_text(encoding="utf-8")))

    def shards(self, kind: str) -> dict[str, dict[str, Any]]:
        """Templates of the sharded stacks ``<prefix>-<kind>-<n>`` (registry, services), by stack name."""
        prefix = f"{self.settings.stack_prefix}-{kind}-"
        return {
            p.name.removesuffix(".template.json"): dict(json.loads(p.read_text(encoding="utf-8")))
            for p in sorted(self.outdir.glob(f"{prefix}*.template.json"))
        }

    def manifest(self) -> dict[str, Any]:
        return dict(json.loads((self.outdir / "manifest.json").read_text(encoding="utf-8")))

    def validation_report(self) -> dict[str, Any]:
        return dict(json.loads((self.outdir / "validation-report.json").read_text(encoding="utf-8")))


def synthesize(settings: Settings, outdir: Path, helm_values: Path | None = None) -> Synthesized:
    """As app.py does; ``helm_values``: another values directory (a copy of the repository's)."""
    app = App(context=cdk_json_context(), outdir=str(outdir))
    values = addon_values(settings.environment, helm_values) if helm_values else addon_values(settings.environment)
    platform = build_platform(app, settings, addon_values=values)
    packs = register_rule_packs(app, production=settings.production)
    app.synth()
    return Synthesized(settings=settings, platform=platform, outdir=outdir, packs=packs)


def resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == resource_type}


def only(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    found = list(resources(template, resource_type).values())
    assert len(found) == 1, f"expected one {resource_type}, found {len(found)}"
    return found[0]


@dataclass
class ServiceLogGroupCalls:
    """The Logs API calls of one ``ServiceLogGroup`` (three ``Custom::AWS`` resources), read back."""

    ids: list[str]
    create: dict[str, Any]
    key: dict[str, Any]
    retention: dict[str, Any]
    delete: dict[str, Any] | None


def service_log_group(template: dict[str, Any], construct_id: str) -> ServiceLogGroupCalls:
    def call(resource: dict[str, Any], event: str) -> dict[str, Any] | None:
        raw = resource["Properties"].get(event)
        if raw is None:
            return None
        if isinstance(raw, dict):  # Fn::Join around the key ARN
            raw = "".join(
                part if isinstance(part, str) else "<ref:" + _logical_id(part) + ">" for part in raw["Fn::Join"][1]
            )
        return dict(json.loads(raw))

    by_id = {k: v for k, v in resources(template, "Custom::AWS").items() if k.startswith(construct_id)}
    (group_id,) = [
        k
        for k in by_id
        if k.startswith(construct_id) and not k.startswith((construct_id + "Key", construct_id + "Retention"))
    ]
    (key_id,) = [k for k in by_id if k.startswith(construct_id + "Key")]
    (retention_id,) = [k for k in by_id if k.startswith(construct_id + "Retention")]
    create, key, retention = (
        call(by_id[group_id], "Create"),
        call(by_id[key_id], "Update"),
        call(by_id[retention_id], "Update"),
    )
    assert create is not None
    assert key is not None
    assert retention is not None
    return ServiceLogGroupCalls(
        ids=[group_id, key_id, retention_id],
        create=create,
        key=key,
        retention=retention,
        delete=call(by_id[group_id], "Delete"),
    )


def _logical_id(reference: dict[str, Any]) -> str:
    if "Ref" in reference:
        return str(reference["Ref"])
    return str(reference["Fn::GetAtt"][0])


@dataclass
class DataTier:
    """The network, cache and observability stacks of an environment alone, synthesized with the gate
    (faster than a whole platform, for settings that change only the cache)."""

    settings: Settings
    outdir: Path
    cache: CacheStack

    def template(self, stack: str) -> dict[str, Any]:
        name = f"{self.settings.stack_prefix}-{stack}"
        return dict(json.loads((self.outdir / f"{name}.template.json").read_text(encoding="utf-8")))

    def validation_report(self) -> dict[str, Any]:
        return dict(json.loads((self.outdir / "validation-report.json").read_text(encoding="utf-8")))


def synthesize_data_tier(settings: Settings, outdir: Path) -> DataTier:
    from infra.compliance.acknowledgements import acknowledge_cache, acknowledge_network
    from infra.compliance.ledger import Ledger
    from infra.platform import cache_stack, network_stack, observability_stack

    app = App(context=cdk_json_context(), outdir=str(outdir))
    network = network_stack(app, settings)
    cache = cache_stack(app, settings, network)
    # The names the EKS and database stacks give their cluster and database (EksStack, DatabaseStack).
    prefix = settings.stack_prefix
    observability_stack(
        app, settings, network=network, cache=cache, cluster_name=prefix, database_identifier=f"{prefix}-db"
    )
    ledger = Ledger()
    acknowledge_network(network, ledger)
    acknowledge_cache(cache, ledger, retained=settings.retain_data)
    register_rule_packs(app, production=settings.production)
    app.synth()
    return DataTier(settings, outdir, cache)
