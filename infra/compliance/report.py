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
        production=platform.settings.production,
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
    production: bool,
    rules: Sequence[Rule] = (),
) -> dict[str, Any]:
    """``rules``: our own rules this environment is checked against (``rules_for(production=...)``),
    listed in their pack's section with which of them only production environments get.

    Acknowledgements are grouped by pack, then by reason: each reason once, with the findings (rule and
    construct path) it covers under it; a reason may cover several rules (one managed policy, one
    wildcard, ...). Sorted, so the report does not move with the order constructs are built in.
    """
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

    own_rules = PLUGIN_NAME in packs
    production_only = production_only_rules()
    sections: list[dict[str, Any]] = []
    known = [*packs, CFN_VALIDATE]
    for pack_name in [*known, *sorted(set(findings_by_plugin) - set(known))]:
        acks = [a for a in acknowledgements if _section_of_rule(a.rule_id) == pack_name]
        section: dict[str, Any] = {}
        if pack_name == PLUGIN_NAME:
            checked = {r.id for r in rules}
            section["rules"] = [_rule_entry(r, r.id in production_only) for r in rules]
            section["production_only_rules_not_checked"] = [
                _rule_entry(r, True) for r in production_only.values() if r.id not in checked
            ]
        sections.append(
            {
                **section,
                "pack": pack_name,
                "findings": findings_by_plugin.get(pack_name, []),
                "acknowledgements": group_acknowledgements(acks),
            }
        )
    checked_ids = [r.id for r in rules]
    return {
        "environment": environment,
        "production": production,
        # Our own rules that only production environments are checked against: which of them this
        # environment is checked against (production), or is not (any other environment).
        "production_only_rules": {
            "checked": [i for i in production_only if i in checked_ids] if own_rules else [],
            "not_checked": [i for i in production_only if i not in checked_ids] if own_rules else [],
        },
        "packs": sections,
        "summary": {
            "findings": sum(len(s["findings"]) for s in sections),
            "acknowledgements": {
                # Findings acknowledged (one rule on one construct), the reasons given for them (each
                # counted once in each pack's section) and the resources they are on (each counted once).
                "findings": sum(len(acknowledged(s)) for s in sections),
                "reasons": sum(len(s["acknowledgements"]) for s in sections),
                "resources": len({a.construct_path for s in sections for a in acknowledged(s)}),
            },
        },
    }


def production_only_rules() -> dict[str, Rule]:
    """Our own rules that apply to production environments only (``rules_for`` decides), by id."""
    everywhere = {r.id for r in rules_for(production=False)}
    return {r.id: r for r in rules_for(production=True) if r.id not in everywhere}


def _rule_entry(rule: Rule, production_only: bool) -> dict[str, Any]:
    return {
        "id": rule.id,
        "requirement": rule.requirement,
        "reason": rule.reason,
        "link": rule.link,
        "production_only": production_only,
    }


def group_acknowledgements(acknowledgements: Sequence[Acknowledged]) -> list[dict[str, Any]]:
    """``[{reason, rules: [{rule, construct_paths}]}]``: each reason once; rules and paths sorted, and
    the reasons by their first rule, then their text."""
    by_reason: dict[str, dict[str, set[str]]] = {}
    for a in acknowledgements:
        by_reason.setdefault(a.reason, {}).setdefault(a.rule_id, set()).add(a.construct_path)
    groups = [
        {
            "reason": reason,
            "rules": [{"rule": rule, "construct_paths": sorted(paths[rule])} for rule in sorted(paths)],
        }
        for reason, paths in by_reason.items()
    ]
    return sorted(groups, key=lambda g: ([r["rule"] for r in g["rules"]], g["reason"]))


def acknowledged(section: dict[str, Any]) -> list[Acknowledged]:
    """The acknowledgements of a report's pack section, one per rule and construct (the ledger's entries)."""
    return [
        Acknowledged(path, rule["rule"], group["reason"])
        for group in section["acknowledgements"]
        for rule in group["rules"]
        for path in rule["construct_paths"]
    ]


def _section_of_rule(rule_id: str) -> str:
    if rule_id.startswith(CFN_VALIDATE_PREFIX):
        return CFN_VALIDATE
    return rule_id.split("-", 1)[0]


def write_report(report: dict[str, Any], report_dir: Path) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "compliance.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (report_dir / "compliance.md").write_text(render_markdown(report), encoding="utf-8")


def render_markdown(report: dict[str, Any]) -> str:
    summary = report["summary"]
    acks = summary["acknowledgements"]
    lines = [
        f"# Compliance report: {report['environment']}",
        "",
        "Generated by `make synth`. Any unacknowledged finding fails synth.",
        "",
        *_production_only_summary(report),
        f"Unacknowledged findings: {summary['findings']}. Acknowledged: {acks['findings']} finding(s) on "
        f"{acks['resources']} resource(s), for {acks['reasons']} reason(s); each pack's section states each "
        "reason once, with the rules and resources it covers under it.",
        "",
        "| rule pack | findings | acknowledged findings | reasons | resources |",
        "|---|---:|---:|---:|---:|",
    ]
    for section in report["packs"]:
        covered = acknowledged(section)
        lines.append(
            f"| {section['pack']} | {len(section['findings'])} | {len(covered)} | {len(section['acknowledgements'])} "
            f"| {len({a.construct_path for a in covered})} |"
        )
    lines += [
        f"| **total** | **{summary['findings']}** | **{acks['findings']}** | **{acks['reasons']}** "
        f"| **{acks['resources']}** |",
        "",
        "Resources: the constructs with at least one acknowledged finding (in the total, a resource "
        "acknowledged in several packs counts once).",
    ]
    for section in report["packs"]:
        lines += ["", f"## {section['pack']}", ""]
        if "rules" in section:
            lines += _own_rules(report, section)
        lines += ["### Findings", ""]
        if section["findings"]:
            lines += ["| rule | severity | construct | description |", "|---|---|---|---|"]
            lines += [
                f"| {_cell(f['rule'])} | {f['severity']} | {_code(f['construct_path'])} | {_cell(f['description'])} |"
                for f in section["findings"]
            ]
        else:
            lines.append("None.")
        lines += ["", "### Acknowledgements", ""]
        lines += _acknowledgements(section)
    return "\n".join(lines) + "\n"


def _production_only_summary(report: dict[str, Any]) -> list[str]:
    rules = report["production_only_rules"]
    environment = report["environment"]
    if report["production"] and rules["checked"]:
        listed = ", ".join(rules["checked"])
        return [
            f"{environment} is a production environment: besides the rules every environment is checked "
            f"against, it is checked against the rules only production environments get: {listed} "
            f"(see [{PLUGIN_NAME}](#{PLUGIN_NAME.lower()})).",
            "",
        ]
    if not report["production"] and rules["not_checked"]:
        listed = ", ".join(rules["not_checked"])
        return [
            f"{environment} is not a production environment: it is not checked against the rules only "
            f"production environments get: {listed} (see [{PLUGIN_NAME}](#{PLUGIN_NAME.lower()})).",
            "",
        ]
    return []


def _own_rules(report: dict[str, Any], section: dict[str, Any]) -> list[str]:
    """Every rule this environment is checked against, and for another than production the
    production-only rules it is not, in the order infra/compliance/platform_rules.py lists them."""
    order = {r.id: n for n, r in enumerate(rules_for(production=True))}
    checked = [(r, True) for r in section["rules"]]
    unchecked = [(r, False) for r in section.get("production_only_rules_not_checked", [])]
    listed = sorted([*checked, *unchecked], key=lambda pair: order.get(pair[0]["id"], len(order)))
    here = "production" if report["production"] else "non-production"
    lines = [
        "Our own rules, for what cdk-nag cannot see (infra/compliance/platform_rules.py). Applies to: "
        "every environment, or production environments only (`rules_for` decides); "
        f"{report['environment']} is a {here} environment.",
        "",
        "| rule | requires | why | applies to | checked here | guideline |",
        "|---|---|---|---|---|---|",
    ]
    for rule, is_checked in listed:
        scope = "production only" if rule["production_only"] else "every environment"
        lines.append(
            f"| {rule['id']} | {_cell(rule['requirement'])} | {_cell(rule['reason'])} | {scope} "
            f"| {'yes' if is_checked else 'no'} | {_cell(rule['link'])} |"
        )
    return [*lines, ""]


def _acknowledgements(section: dict[str, Any]) -> list[str]:
    groups = section["acknowledgements"]
    if not groups:
        return ["None."]
    covered = acknowledged(section)
    resources = len({a.construct_path for a in covered})
    lines = [f"{len(covered)} finding(s) on {resources} resource(s), for {len(groups)} reason(s)."]
    for number, group in enumerate(groups, start=1):
        lines += [
            "",
            f"**Reason {number}.** {_cell(group['reason'])}",
            "",
            "| rule | resources |",
            "|---|---|",
        ]
        lines += [
            f"| {_code(rule['rule'])} | {'<br>'.join(_code(p) for p in rule['construct_paths'])} |"
            for rule in group["rules"]
        ]
    return lines


def _code(text: str) -> str:
    """A code span in a table cell (``|`` escaped: GitHub splits cells before it reads code spans)."""
    return f"`{_cell(text)}`" if text else "(no construct)"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
