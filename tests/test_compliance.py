"""The compliance gate: rule packs on every environment, every acknowledgement justified."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_logs as logs

from infra.compliance.ledger import Acknowledged, Ledger
from infra.compliance.packs import register_rule_packs
from infra.compliance.platform_rules import PLUGIN_NAME, rules_for
from infra.compliance.report import acknowledged, build_report, gate_failure_message, render_markdown, write_report
from infra.config.project import cdk_json_context
from tests.conftest import subject
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
    acks = [Acknowledged("s/r/Resource", "HIPAA.Security-VPCNoUnrestrictedRouteToIGW", "because | why")]
    report = build_report(environment="qa", validation=validation, packs=PACKS, acknowledgements=acks, production=False)
    by_pack = {s["pack"]: s for s in report["packs"]}
    assert list(by_pack) == [*PACKS, "CloudFormation Validate"]
    assert [f["construct_path"] for f in by_pack["AwsSolutions"]["findings"]] == ["s/a", "s/b"]
    assert acknowledged(by_pack["HIPAA.Security"]) == acks
    assert report["summary"] == {"findings": 2, "acknowledgements": {"findings": 1, "reasons": 1, "resources": 1}}
    markdown = render_markdown(report)
    assert "| AwsSolutions | 2 | 0 | 0 | 0 |" in markdown
    assert "open \\| ingress" in markdown
    assert "because \\| why" in markdown
    write_report(report, tmp_path / "qa")
    assert (tmp_path / "qa" / "compliance.json").exists()
    assert (tmp_path / "qa" / "compliance.md").read_text(encoding="utf-8") == markdown


def _ledger() -> list[Acknowledged]:
    """A reason shared by two rules and several constructs, a rule under two reasons, two packs."""
    shared = "AWS keeps this managed policy current with the service."
    return [
        Acknowledged("s/b/Resource", "AwsSolutions-IAM4[Policy::B]", shared),
        Acknowledged("s/a/Resource", "AwsSolutions-IAM4[Policy::A]", shared),
        Acknowledged("s/c/Resource", "AwsSolutions-IAM4[Policy::A]", shared),
        Acknowledged("s/a/Resource", "AwsSolutions-IAM5[Resource::*]", "The action names no resource."),
        Acknowledged("s/d/Resource", "AwsSolutions-IAM5[Resource::*]", "Generated names, conditioned on a tag."),
        Acknowledged("s/a/Resource", "NIST.800.53.R5-IAMNoInlinePolicy", shared),
        Acknowledged("s/n/Subnet", "CloudFormation-Validate::W3010", "Zones are written in by design."),
        Acknowledged("s/m/Subnet", "CloudFormation-Validate::W3010", "Zones are written in by design."),
    ]


def _sections(markdown: str) -> dict[str, str]:
    """The markdown of each pack's section, by pack."""
    parts = re.split(r"^## (.+)$", markdown, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def assert_acknowledgements_grouped_by_reason(report: dict[str, Any], ledger: list[Acknowledged] | None) -> None:
    """Each reason once in its pack's section (JSON and markdown), every acknowledgement exactly once
    under its reason; with ``ledger``, exactly the ledger's acknowledgements."""
    markdown = _sections(render_markdown(report))
    listed: list[Acknowledged] = []
    for section in report["packs"]:
        reasons = [group["reason"] for group in section["acknowledgements"]]
        assert len(reasons) == len(set(reasons)), section["pack"]
        covered = acknowledged(section)
        assert len(covered) == len(set(covered)), section["pack"]
        listed += covered
        # The section's reasons, each followed by its table of rules and resources.
        blocks = re.split(r"^\*\*Reason \d+\.\*\* ", markdown[section["pack"]], flags=re.MULTILINE)[1:]
        stated = [block.split("\n", 1)[0] for block in blocks]
        assert stated == [" ".join(r.split()).replace("|", "\\|") for r in reasons], section["pack"]
        for group, block in zip(section["acknowledgements"], blocks, strict=True):
            rows = [line for line in block.splitlines() if line.startswith("| `")]
            assert len(rows) == len(group["rules"])
            for rule, row in zip(group["rules"], rows, strict=True):
                assert row.startswith(f"| `{rule['rule']}` |")
                assert row.count("`") == 2 + 2 * len(rule["construct_paths"])
                assert all(f"`{path}`" in row for path in rule["construct_paths"])
    if ledger is not None:
        assert sorted(listed, key=repr) == sorted(set(ledger), key=repr)
    summary = report["summary"]["acknowledgements"]
    assert summary["findings"] == len(listed)
    assert summary["reasons"] == sum(len(s["acknowledgements"]) for s in report["packs"])
    assert summary["resources"] == len({a.construct_path for a in listed})


def test_each_reason_is_stated_once_with_what_it_covers_under_it() -> None:
    ledger = _ledger()
    report = build_report(environment="qa", validation={}, packs=PACKS, acknowledgements=ledger, production=False)
    assert_acknowledgements_grouped_by_reason(report, ledger)
    (shared,) = [g for g in report["packs"][0]["acknowledgements"] if len(g["rules"]) > 1]
    assert shared["rules"] == [
        {"rule": "AwsSolutions-IAM4[Policy::A]", "construct_paths": ["s/a/Resource", "s/c/Resource"]},
        {"rule": "AwsSolutions-IAM4[Policy::B]", "construct_paths": ["s/b/Resource"]},
    ]
    assert report["summary"]["acknowledgements"] == {"findings": 8, "reasons": 5, "resources": 6}


def test_the_grouping_does_not_depend_on_the_order_of_the_ledger() -> None:
    ledger = _ledger()

    def report(entries: list[Acknowledged]) -> dict[str, Any]:
        return build_report(environment="qa", validation={}, packs=PACKS, acknowledgements=entries, production=True)

    assert report(ledger) == report(list(reversed(ledger))) == report(ledger[3:] + ledger[:3])


def test_the_report_states_each_reason_once_and_every_acknowledgement_under_it(env: Synthesized) -> None:
    assert env.reports is not None
    report = json.loads((env.reports / "compliance.json").read_text(encoding="utf-8"))
    assert (env.reports / "compliance.md").read_text(encoding="utf-8") == render_markdown(report)
    # Exactly the platform's own ledger, as the second process kept it; the report as written for the
    # synth through the CDK CLI (its Python objects are in the CLI's child process).
    assert env.ledger_file is not None or subject(env.label).via_cli
    assert_acknowledgements_grouped_by_reason(report, env.ledger())


def test_the_report_says_which_rules_only_production_gets(env: Synthesized) -> None:
    assert env.reports is not None
    report = json.loads((env.reports / "compliance.json").read_text(encoding="utf-8"))
    production = env.settings.production
    only = {r.id for r in rules_for(production=True)} - {r.id for r in rules_for(production=False)}
    assert only, "no production-only rule: the report has nothing to say"
    assert report["production"] is production
    (own,) = [s for s in report["packs"] if s["pack"] == PLUGIN_NAME]
    assert {r["id"] for r in own["rules"]} == {r.id for r in rules_for(production=production)}
    assert {r["id"] for r in own["rules"] if r["production_only"]} == (only if production else set())
    assert {r["id"] for r in own["production_only_rules_not_checked"]} == (set() if production else only)
    assert set(report["production_only_rules"]["checked" if production else "not_checked"]) == only
    assert report["production_only_rules"]["not_checked" if production else "checked"] == []
    markdown = render_markdown(report)
    header = markdown.split("\n## ", 1)[0]
    assert ("is a production environment" if production else "is not a production environment") in header
    assert all(rule in header for rule in only)
    table = _sections(markdown)[PLUGIN_NAME]
    for rule in rules_for(production=True):
        (row,) = [line for line in table.splitlines() if line.startswith(f"| {rule.id} |")]
        scope = "production only" if rule.id in only else "every environment"
        checked = "yes" if production or rule.id not in only else "no"
        assert f"| {scope} | {checked} |" in row


def test_report_of_a_clean_environment_has_every_pack_and_zero_findings(env: Synthesized) -> None:
    report = build_report(
        environment=env.settings.environment,
        validation=env.validation_report(),
        packs=PACKS,
        acknowledgements=env.acknowledgements(),
        production=env.settings.production,
    )
    assert report["summary"]["findings"] == 0
    assert report["summary"]["acknowledgements"]["findings"] == len(env.acknowledgements())
    assert {s["pack"] for s in report["packs"]} >= set(PACKS)


def test_the_gate_failure_message_lists_each_finding_and_points_at_the_report() -> None:
    validation = {
        "pluginReports": [
            {
                "pluginName": "AwsSolutions",
                "violations": [
                    {
                        "ruleName": "AwsSolutions-EC23",
                        "description": "The Security Group allows for 0.0.0.0/0 inbound access. Long detail.",
                        "violatingConstructs": [{"constructPath": "s/a"}, {}],
                    }
                ],
            }
        ]
    }
    report = build_report(
        environment="qa", validation=validation, packs=PACKS, acknowledgements=_ledger(), production=False
    )
    message = gate_failure_message(report, Path("out/compliance.md"), "Validation failed").splitlines()
    assert message == [
        "error: compliance gate failed for qa: 2 unacknowledged finding(s)",
        "  AwsSolutions-EC23  s/a",
        "      The Security Group allows for 0.0.0.0/0 inbound access",
        "  AwsSolutions-EC23  (no construct)",
        "      The Security Group allows for 0.0.0.0/0 inbound access",
        "full report: out/compliance.md",
    ]
    clean = build_report(environment="qa", validation={}, packs=PACKS, acknowledgements=[], production=True)
    assert gate_failure_message(clean, Path("r.md"), "synthesis failed").splitlines()[1:] == [
        "  synthesis failed",
        "full report: r.md",
    ]
