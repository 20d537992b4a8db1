"""Synthesizes an app and writes ``reports/<env>/compliance.{json,md}``.

Findings come from the validation report CDK writes into the cloud assembly
(``validation-report.json``); acknowledgements come from the :class:`Ledger`, because
cdk-nag drops acknowledged findings before CDK sees them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aws_cdk import App
from jsii.errors import JSIIError

from infra.assembly import Template
from infra.compliance.ledger import Acknowledged
from infra.compliance.platform_rules import PLUGIN_NAME, Rule, rules_for

if TYPE_CHECKING:
    from infra.platform import Platform

VALIDATION_REPORT = "validation-report.json"
# CDK's built-in template validation (cfn-lint rules); its findings are acknowledged as
# ``CloudFormation-Validate::<rule>``.
CFN_VALIDATE = "CloudFormation Validate"
CFN_VALIDATE_PREFIX = "CloudFormation-Validate::"
# Where a failing synth's compliance report goes: inside the cloud assembly, never over the committed one.
FAILED_REPORTS = "failed-reports"


def synth_with_report(app: App, platform: Platform, packs: list[str], report_dir: Path) -> int:
    """Synthesize and return a process exit code.

    A passing synth writes its reports to ``report_dir``. A failing one leaves ``report_dir`` as it
    was (the committed reports describe a passing platform) and writes its compliance report into
    the cloud assembly instead; the console lists every unacknowledged finding.
    """
    failure: str | None = None
    try:
        outdir = Path(app.synth().directory)
    except (JSIIError, RuntimeError) as error:  # jsii raises the validation failure as a RuntimeError
        failure = str(error).strip().splitlines()[0] if str(error).strip() else "synthesis failed"
        outdir = Path(app.outdir)
    environment = platform.settings.environment
    report = build_report(
        environment=environment,
        validation=read_validation_report(outdir),
        packs=packs,
        acknowledgements=platform.ledger.entries,
        rules=rules_for(production=platform.settings.production),
    )
    if not failure and not report["summary"]["findings"]:
        write_report(report, report_dir)
        write_environment_reports(outdir, report_dir, platform)
        return 0
    failed_dir = outdir / FAILED_REPORTS / environment
    write_report(report, failed_dir)
    print(gate_failure_message(report, failed_dir / "compliance.md", failure), file=sys.stderr)
    return 1


def gate_failure_message(report: dict[str, Any], report_path: Path, failure: str | None) -> str:
    """One line per unacknowledged finding (rule, construct, the rule's one-line message), then the report."""
    findings = [f for section in report["packs"] for f in section["findings"]]
    lines = [f"error: compliance gate failed for {report['environment']}: {len(findings)} unacknowledged finding(s)"]
    for finding in findings:
        lines.append(f"  {finding['rule']}  {finding['construct_path'] or '(no construct)'}")
        lines.append(f"      {_first_line(finding['description'])}")
    if failure and not findings:
        lines.append(f"  {failure}")
    lines.append(f"full report: {report_path}")
    return "\n".join(lines)


def _first_line(text: str) -> str:
    words = " ".join(text.split())
    sentence = words.split(". ", 1)[0]
    return sentence if len(sentence) <= 200 else sentence[:197] + "..."


def write_environment_reports(outdir: Path, report_dir: Path, platform: Platform) -> None:
    """``cost.{md,json}`` and ``architecture.md`` beside the compliance report, from the assembly."""
    from infra.assembly import load_templates, stack_dependencies, stack_regions
    from infra.reports.architecture import write_architecture
    from infra.reports.cost import estimate_regions, load_prices, write_cost_report

    templates = load_templates(outdir)
    settings = platform.settings
    regions = stack_regions(outdir)
    by_region: dict[str, dict[str, Template]] = {r: {} for r in settings.all_regions}
    for stack, template in templates.items():
        # A stack outside the environment's regions (the account stack elsewhere) counts with the primary.
        by_region.get(regions[stack], by_region[settings.primary_region])[stack] = template
    cost = estimate_regions(
        by_region,
        environment=settings.environment,
        prices=load_prices(),
        global_database=bool(settings.other_regions) and settings.database.other_regions == "global",
    )
    write_cost_report(cost, report_dir)
    region_of = regions if settings.other_regions else {}
    write_architecture(templates, stack_dependencies(outdir), settings.environment, report_dir, regions=region_of)


def read_validation_report(outdir: Path) -> dict[str, Any]:
    path = outdir / VALIDATION_REPORT
    if not path.exists():
        return {"pluginReports": []}
    return dict(json.loads(path.read_text(encoding="utf-8")))


def build_report(
    *,
    environment: str,
    validation: dict[str, Any],
    packs: list[str],
    acknowledgements: list[Acknowledged],
    rules: Sequence[Rule] = (),
) -> dict[str, Any]:
    """``rules``: our own rules (infra.compliance.platform_rules), listed in their pack's section."""
    findings_by_plugin: dict[str, list[dict[str, Any]]] = {}
    for plugin in validation.get("pluginReports", []):
        findings = findings_by_plugin.setdefault(plugin["pluginName"], [])
        for violation in plugin.get("violations", []):
            for construct in violation.get("violatingConstructs", []) or [{}]:
                findings.append(
                    {
                        "rule": violation.get("ruleName", ""),
                        "severity": violation.get("severity", ""),
                        "description": violation.get("description", ""),
                        "construct_path": construct.get("constructPath", ""),
                    }
                )

    sections: list[dict[str, Any]] = []
    known = [*packs, CFN_VALIDATE]
    for pack_name in [*known, *sorted(set(findings_by_plugin) - set(known))]:
        acks = [a for a in acknowledgements if _section_of_rule(a.rule_id) == pack_name]
        section: dict[str, Any] = {}
        if pack_name == PLUGIN_NAME:
            section["rules"] = [
                {"id": r.id, "requirement": r.requirement, "reason": r.reason, "link": r.link} for r in rules
            ]
        sections.append(
            {
                **section,
                "pack": pack_name,
                "findings": findings_by_plugin.get(pack_name, []),
                "acknowledgements": [
                    {"construct_path": a.construct_path, "rule": a.rule_id, "reason": a.reason} for a in acks
                ],
            }
        )
    return {
        "environment": environment,
        "packs": sections,
        "summary": {
            "findings": sum(len(s["findings"]) for s in sections),
            "acknowledgements": len(acknowledgements),
        },
    }


def _section_of_rule(rule_id: str) -> str:
    if rule_id.startswith(CFN_VALIDATE_PREFIX):
        return CFN_VALIDATE
    return rule_id.split("-", 1)[0]


def write_report(report: dict[str, Any], report_dir: Path) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "compliance.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (report_dir / "compliance.md").write_text(render_markdown(report), encoding="utf-8")


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Compliance report: {report['environment']}",
        "",
        "Generated by `make synth`. Any unacknowledged finding fails synth.",
        "",
        "| rule pack | findings | acknowledgements |",
        "|---|---:|---:|",
    ]
    for section in report["packs"]:
        lines.append(f"| {section['pack']} | {len(section['findings'])} | {len(section['acknowledgements'])} |")
    lines.append(f"| **total** | **{report['summary']['findings']}** | **{report['summary']['acknowledgements']}** |")
    for section in report["packs"]:
        lines += ["", f"## {section['pack']}", ""]
        if "rules" in section:
            lines += [
                "Our own rules, for what cdk-nag cannot see (infra/compliance/platform_rules.py):",
                "",
                "| rule | requires | why | guideline |",
                "|---|---|---|---|",
            ]
            lines += [
                f"| {r['id']} | {_cell(r['requirement'])} | {_cell(r['reason'])} | {r['link']} |"
                for r in section["rules"]
            ]
            lines.append("")
        lines += ["### Findings", ""]
        if section["findings"]:
            lines += ["| rule | severity | construct | description |", "|---|---|---|---|"]
            lines += [
                f"| {f['rule']} | {f['severity']} | `{f['construct_path']}` | {_cell(f['description'])} |"
                for f in section["findings"]
            ]
        else:
            lines.append("None.")
        lines += ["", "### Acknowledgements", ""]
        if section["acknowledgements"]:
            lines += ["| rule | construct | reason |", "|---|---|---|"]
            lines += [
                f"| {a['rule']} | `{a['construct_path']}` | {_cell(a['reason'])} |" for a in section["acknowledgements"]
            ]
        else:
            lines.append("None.")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
