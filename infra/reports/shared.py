"""Reports that describe more than their own environment: the account stack environments share.

Every environment's app includes the ``<project>-account`` stack, and it holds the image replication
rules of every environment of several regions in the account, so one environment's change (prod gets
a second region) changes what the others' architecture reports draw. After a synth, this says which
committed reports of the other environments no longer draw the account stack as it now is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from infra.config.settings import Settings, environments_sharing_account


def account_stack_section(architecture: str, stack_name: str) -> str:
    """The lines of the account stack's box in an architecture report's diagram ("" if none)."""
    lines = architecture.splitlines()
    for i, line in enumerate(lines):
        if re.fullmatch(rf'\s*subgraph \S+\["{re.escape(stack_name)}"\]', line):
            indent = line[: len(line) - len(line.lstrip())]
            end = next(j for j in range(i + 1, len(lines)) if lines[j] == f"{indent}end")
            return "\n".join(x.strip() for x in lines[i : end + 1])
    return ""


def stale_reports(settings: Settings, reports_root: Path) -> list[Path]:
    """The other environments' committed architecture reports whose account stack differs from the one
    this environment's report (just written to ``reports_root/<env>/``) draws."""
    mine = (reports_root / settings.environment / "architecture.md").read_text(encoding="utf-8")
    section = account_stack_section(mine, settings.account_stack_name)
    stale = []
    for _, environment, _ in environments_sharing_account(settings):
        path = reports_root / environment / "architecture.md"
        if environment == settings.environment or not path.exists():
            continue
        theirs = account_stack_section(path.read_text(encoding="utf-8"), settings.account_stack_name)
        if theirs != section:
            stale.append(path)
    return stale


def stale_report_notes(settings: Settings, reports_root: Path, relative: Callable[[Path], str]) -> list[str]:
    """What `make synth` says after writing this environment's reports: one line per other environment's
    report that the change made stale (``relative``: a path as the user names it)."""
    return [
        f"note: {relative(path)} draws the account stack {settings.account_stack_name} (shared by the environments "
        "of the account) as it was before this change: run `make reports` to refresh every environment's reports "
        f"(or `make synth ENV={path.parent.name}`)"
        for path in stale_reports(settings, reports_root)
    ]
