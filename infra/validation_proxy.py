"""CDK's template validation, run by its engine's own process (infra/validation_engine.py).

:class:`ValidationProxy` is registered where CDK's ``CloudFormationValidatePlugin`` would be: it gives
CDK the plugin's own name, version and rules as that process reports them, hands it CDK's validation
context (each stack's template path, account and region) and returns the plugin's report unchanged, as
the struct CDK reads. If the process fails, CDK's own plugin runs in the jsii runtime instead, on the
same context, and that is the report (so an error of the plugin itself reaches CDK as it would have).
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

import jsii
from aws_cdk import (
    CloudFormationValidatePlugin,
    IPolicyValidationContext,
    IPolicyValidationPlugin,
    PolicyValidationPluginReport,
    PolicyViolatingResource,
    PolicyViolation,
)


class Engine(Protocol):
    """The engine's process (infra/validation_engine.py's ``EngineProcess``): RuntimeError when it fails."""

    def ready(self) -> dict[str, Any]: ...

    def validate(self, stack_templates: list[dict[str, str]]) -> dict[str, Any]: ...


def report_from(report: dict[str, Any]) -> PolicyValidationPluginReport:
    """The plugin's report (JSON of aws-cdk-lib's own object) as the struct the jsii runtime passes on."""
    return PolicyValidationPluginReport(
        success=report["success"],
        violations=[
            PolicyViolation(
                rule_name=violation["ruleName"],
                description=violation["description"],
                severity=violation.get("severity"),
                fix=violation.get("fix"),
                rule_metadata=violation.get("ruleMetadata"),
                violating_resources=[
                    PolicyViolatingResource(
                        locations=resource.get("locations", []),
                        construct_path=resource.get("constructPath"),
                        resource_logical_id=resource.get("resourceLogicalId"),
                        template_path=resource.get("templatePath"),
                    )
                    for resource in violation["violatingResources"]
                ],
            )
            for violation in report["violations"]
        ],
        metadata=report.get("metadata"),
        plugin_version=report.get("pluginVersion"),
    )


# What a failing process or an answer that is not a report can raise (EngineError is a RuntimeError).
FAILURES = (RuntimeError, ValueError, KeyError, TypeError, OSError)


@jsii.implements(IPolicyValidationPlugin)
class ValidationProxy:
    """CDK's CloudFormation validation, its engine in another process, for one validation. If that
    process fails, or for a second validation, CDK's own plugin runs in the runtime."""

    def __init__(self, engine: Engine) -> None:
        self._engine: Engine | None = engine
        self._described_as: dict[str, Any] | None = None
        self._in_runtime: CloudFormationValidatePlugin | None = None

    def _runtime_plugin(self, failure: Exception | None = None) -> CloudFormationValidatePlugin:
        if failure is not None:
            print(
                f"note: CDK's template validation runs in the jsii runtime; its process failed: {failure}",
                file=sys.stderr,
            )
        self._engine = None
        if self._in_runtime is None:
            self._in_runtime = CloudFormationValidatePlugin()
        return self._in_runtime

    def _described(self) -> dict[str, Any]:
        """The plugin's name, version and rules: as the process reported them, else the runtime's plugin's."""
        if self._described_as is None and self._engine is not None:
            try:
                self._described_as = self._engine.ready()
            except FAILURES as failure:
                self._runtime_plugin(failure)
        if self._described_as is None:
            plugin = self._runtime_plugin()
            self._described_as = {"name": plugin.name, "version": plugin.version, "ruleIds": plugin.rule_ids}
        return self._described_as

    @property
    def name(self) -> str:
        return str(self._described()["name"])

    @property
    def version(self) -> str | None:
        version = self._described().get("version")
        return None if version is None else str(version)

    @property
    def rule_ids(self) -> list[str] | None:
        rule_ids = self._described().get("ruleIds")
        return None if rule_ids is None else [str(rule) for rule in rule_ids]

    def validate(self, context: IPolicyValidationContext) -> PolicyValidationPluginReport:
        # CDK reads the name and the version after the report: the process's, kept before it ends.
        self._described()
        engine, self._engine = self._engine, None
        if engine is not None:
            stacks = [
                {
                    key: value
                    for key, value in (
                        ("stackConstructPath", stack.stack_construct_path),
                        ("templatePath", stack.template_path),
                        ("accountId", stack.account_id),
                        ("region", stack.region),
                    )
                    if value is not None
                }
                for stack in context.stack_templates
            ]
            try:
                return report_from(engine.validate(stacks))
            except FAILURES as failure:
                return self._runtime_plugin(failure).validate(context)
        return self._runtime_plugin().validate(context)
