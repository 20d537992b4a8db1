"""The compliance gate: rule packs on every environment, every acknowledgement justified."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_logs as logs

from infra.compliance.ledger import Acknowledged, Ledger
from infra.compliance.packs import register_rule_packs
from infra.compliance.report import build_report, render_markdown, write_report
from infra.config.project import cdk_json_context
from tests.synth import Synthesized

PACKS = ["AwsSolutions", "NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"]
EXACT_RULE_ID = re.compile(r"^(AwsSolutions|NIST\.800\.53\.R5|HIPAA\.Security|PCI\.DSS\.321)-[A-Za-z0-9]+(\[.+\])?$")


def test_no_unacknowledged_findings(env: Synthesized) -> None:
    report = env.validation_report()
    open_findings = [v for plugin in report["pluginReports"] for v in plugin["violations"]]
    assert open_findings == []
    assert all(plugin["conclusion"] == "success" for plugin in report["pluginReports"])


def test_every_acknowledgement_has_an_exact_rule_and_a_real_reason(env: Synthesized) -> None:
    assert env.acknowledgements()
    for entry in env.acknowledgements():
        assert EXACT_RULE_ID.match(entry.rule_id) or entry.rule_id.startswith("CloudFormation-Validate::W")
        assert len(entry.reason.split()) >= 12, entry


def test_acknowledgements_sit_on_resources_not_on_stacks(env: Synthesized) -> None:
    for entry in env.acknowledgements():
        assert entry.construct_path.count("/") >= 2, entry


def test_acknowledged_template_findings_appear_as_suppressed(env: Synthesized) -> None:
    suppressed = [
        v for plugin in env.validation_report()["pluginReports"] for v in plugin.get("suppressedViolations", [])
    ]
    assert {v["acknowledgedId"] for v in suppressed} == {"CloudFormation-Validate::W3010"}
    assert all(v["reason"] for v in suppressed)


def test_ledger_refuses_wildcards_and_empty_reasons() -> None:
    app = App()
    stack = Stack(app, "S")
    with pytest.raises(ValueError, match="exact finding id"):
        Ledger().acknowledge(stack, "AwsSolutions-*", "some reason")
    with pytest.raises(ValueError, match="exact finding id"):
        Ledger().acknowledge(stack, "AwsSolutions-IAM4", "  ")


def test_gate_fails_synth_on_a_finding(tmp_path: Path) -> None:
    app = App(context=cdk_json_context(), outdir=str(tmp_path))
    stack = Stack(app, "Broken")
    logs.LogGroup(stack, "Unencrypted", retention=logs.RetentionDays.ONE_WEEK)
    register_rule_packs(app, production=True)
    with pytest.raises(RuntimeError, match=r"CloudWatchLogGroupEncrypted"):
        app.synth()


def test_report_lists_findings_and_acknowledgements_per_pack(tmp_path: Path) -> None:
    validation = {
        "pluginReports": [
            {
                "pluginName": "AwsSolutions",
                "conclusion": "failure",
                "violations": [
                    {
                        "ruleName": "AwsSolutions-EC23",
                        "severity": "error",
                        "description": "open | ingress",
                        "violatingConstructs": [{"constructPath": "s/a"}, {"constructPath": "s/b"}],
                    }
                ],
            }
        ]
    }
    acks = [Acknowledged("s/r/Resource", "HIPAA.Security-VPCNoUnrestrictedRouteToIGW", "because")]
    report = build_report(environment="qa", validation=validation, packs=PACKS, acknowledgements=acks)
    by_pack = {s["pack"]: s for s in report["packs"]}
    assert list(by_pack) == [*PACKS, "CloudFormation Validate"]
    assert [f["construct_path"] for f in by_pack["AwsSolutions"]["findings"]] == ["s/a", "s/b"]
    assert by_pack["HIPAA.Security"]["acknowledgements"] == [
        {"construct_path": "s/r/Resource", "rule": "HIPAA.Security-VPCNoUnrestrictedRouteToIGW", "reason": "because"}
    ]
    assert report["summary"] == {"findings": 2, "acknowledgements": 1}
    markdown = render_markdown(report)
    assert "| AwsSolutions | 2 | 0 |" in markdown
    assert "open \\| ingress" in markdown
    write_report(report, tmp_path / "qa")
    assert (tmp_path / "qa" / "compliance.json").exists()
    assert (tmp_path / "qa" / "compliance.md").read_text(encoding="utf-8") == markdown


def test_report_of_a_clean_environment_has_every_pack_and_zero_findings(env: Synthesized) -> None:
    report = build_report(
        environment=env.settings.environment,
        validation=env.validation_report(),
        packs=PACKS,
        acknowledgements=env.acknowledgements(),
    )
    assert report["summary"]["findings"] == 0
    assert report["summary"]["acknowledgements"] == len(env.acknowledgements())
    assert {s["pack"] for s in report["packs"]} >= set(PACKS)
