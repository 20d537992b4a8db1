"""What a synthesis left on disk, read back for tests; the data tier alone, synthesized in this process."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk import App

from infra.compliance.ledger import Acknowledged
from infra.compliance.packs import register_rule_packs
from infra.config.project import REPOSITORY, Project, cdk_json_context
from infra.config.settings import Settings
from infra.stacks.cache import CacheStack

ROOT = REPOSITORY.root


@dataclass
class Synthesized:
    settings: Settings
    outdir: Path
    packs: list[str]
    # Which synthesis this is (a test id), and the project whose files it read.
    label: str = ""
    project: Project = REPOSITORY
    # reports/<env>/ as this synth wrote them (as `make synth` does), or None.
    reports: Path | None = None
    # The platform's ledger of acknowledgements as the second process wrote it (tests/synth_worker.py);
    # None for a synth through the CDK CLI, whose Python objects no test process holds.
    ledger_file: Path | None = None
    _templates: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def template(self, stack: str) -> dict[str, Any]:
        """The template of this region's ``<stack prefix>-<stack>`` (parsed once; do not mutate it)."""
        name = f"{self.settings.stack_prefix}-{stack}"
        return self.template_named(name)

    def template_named(self, name: str) -> dict[str, Any]:
        if name not in self._templates:
            self._templates[name] = json.loads((self.outdir / f"{name}.template.json").read_text(encoding="utf-8"))
        return self._templates[name]

    def templates(self) -> dict[str, dict[str, Any]]:
        """Every template of this synthesis (all its regions and the account stack), by stack name."""
        return {
            p.name.removesuffix(".template.json"): self.template_named(p.name.removesuffix(".template.json"))
            for p in sorted(self.outdir.glob("*.template.json"))
        }

    def shards(self, kind: str) -> dict[str, dict[str, Any]]:
        """Templates of the sharded stacks ``<prefix>-<kind>-<n>`` (registry, services), by stack name."""
        prefix = f"{self.settings.stack_prefix}-{kind}-"
        return {
            p.name.removesuffix(".template.json"): self.template_named(p.name.removesuffix(".template.json"))
            for p in sorted(self.outdir.glob(f"{prefix}*.template.json"))
        }

    def manifest(self) -> dict[str, Any]:
        return dict(json.loads((self.outdir / "manifest.json").read_text(encoding="utf-8")))

    def validation_report(self) -> dict[str, Any]:
        return dict(json.loads((self.outdir / "validation-report.json").read_text(encoding="utf-8")))

    def acknowledgements(self) -> list[Acknowledged]:
        """Every acknowledged finding, as the compliance report this synth wrote lists it."""
        assert self.reports is not None
        from infra.compliance.report import acknowledged

        report = json.loads((self.reports / "compliance.json").read_text(encoding="utf-8"))
        return [a for section in report["packs"] for a in acknowledged(section)]

    def ledger(self) -> list[Acknowledged] | None:
        """The acknowledgements the platform's constructs recorded while it was built (its ``Ledger``)."""
        if self.ledger_file is None:
            return None
        return [Acknowledged(**entry) for entry in json.loads(self.ledger_file.read_text(encoding="utf-8"))]

    @property
    def global_primary(self) -> bool:
        """Whether the database is the primary of an Aurora global database (it holds the global cluster)."""
        return bool(resources(self.template("database"), "AWS::RDS::GlobalCluster"))


def resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == resource_type}


def kept(resource: dict[str, Any]) -> bool:
    """Whether a resource outlives its stack's deletion and its own replacement, yet is deleted when the
    operation that created it rolls back (``infra/constructs/removal.py``)."""
    return bool(
        resource.get("DeletionPolicy") == "RetainExceptOnCreate" and resource.get("UpdateReplacePolicy") == "Retain"
    )


def deleted(resource: dict[str, Any]) -> bool:
    """Whether a resource goes with its stack (CloudFormation's default when no policy is set)."""
    return bool(resource.get("DeletionPolicy", "Delete") == "Delete")


def only(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    found = list(resources(template, resource_type).values())
    assert len(found) == 1, f"expected one {resource_type}, found {len(found)}"
    return found[0]


def helm_release(template: dict[str, Any], release: str) -> tuple[str, dict[str, Any]]:
    """The one Helm chart custom resource of ``release`` in an EKS stack's template: its logical id and body."""
    found = [
        (logical_id, chart)
        for logical_id, chart in resources(template, "Custom::AWSCDK-EKS-HelmChart").items()
        if chart["Properties"]["Release"] == release
    ]
    assert len(found) == 1, f"expected one Helm release {release}, found {len(found)}"
    return found[0]


def helm_values(template: dict[str, Any], release: str) -> dict[str, Any]:
    """The values of ``release``'s Helm chart in an EKS stack's template, with what CloudFormation resolves
    at deploy written ``<ref:LogicalId>`` (``<ref:output>`` for another stack's output)."""
    raw = helm_release(template, release)[1]["Properties"]["Values"]
    if isinstance(raw, str):
        return dict(json.loads(raw))
    text = "".join(
        p if isinstance(p, str) else f"<ref:{(p.get('Fn::GetAtt') or [p.get('Ref', 'output')])[0]}>"
        for p in raw["Fn::Join"][1]
    )
    return dict(json.loads(text))


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
    cache: CacheStack | None  # None for the second process's

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


def text(value: Any) -> str:
    """A value as CloudFormation would join it, with what it only knows at deploy written in angle
    brackets: ``<AWS::AccountId>``, ``<Logical.Attribute>``, ``<stack/Output>``. Lets a test compare an
    ARN whatever CDK merged or split (a literal account from ``--context account=`` merges)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Ref" in value:
            return f"<{value['Ref']}>"
        if "Fn::GetAtt" in value:
            return "<" + ".".join(value["Fn::GetAtt"]) + ">"
        if "Fn::GetStackOutput" in value:
            output = value["Fn::GetStackOutput"]
            return f"<{output['StackName']}/{output['OutputName']}>"
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return str(separator).join(text(p) for p in parts)
    raise ValueError(f"cannot render {value!r}")
