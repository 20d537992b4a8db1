"""Which instance and node types each region offers: the dated table ``instance_types.json``.

Synth checks ``eks.node_group.instance_types``, ``cache.node_type`` and ``database.instance_class``
against it, offline, and suggests the nearest names for a typo. scripts/instance_types.py writes it
from the pinned cfn-lint's data (built from the AWS Price List); a region the table does not know is
not checked (a newer region than the table: the deploy is then the check).
"""

from __future__ import annotations

import difflib
import functools
import json
from pathlib import Path
from typing import Any

TABLE = Path(__file__).resolve().parent / "instance_types.json"
KINDS = {
    "ec2": "an EC2 instance type",
    "elasticache": "an ElastiCache node type",
    "aurora_postgresql": "an Aurora PostgreSQL instance class",
}


@functools.cache
def _table() -> dict[str, Any]:
    return dict(json.loads(TABLE.read_text(encoding="utf-8")))


def table_date() -> str:
    return str(_table()["date"])


@functools.cache
def offered_in(kind: str, region: str) -> tuple[str, ...] | None:
    """The names ``region`` offers, or None when the table does not know the region."""
    entry = _table()[kind]
    mask = entry["regions"].get(region)
    if mask is None:
        return None
    bits = int(mask, 16)
    return tuple(name for i, name in enumerate(entry["names"]) if bits >> i & 1)


def unavailable(kind: str, name: str, regions: list[str]) -> str | None:
    """Why ``name`` cannot be used in ``regions`` (the first region that lacks it, and the nearest names
    it offers), or None."""
    for region in regions:
        names = offered_in(kind, region)
        if names is None or name in names:
            continue
        near = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        suggestion = f"; did you mean {' or '.join(near)}?" if near else ""
        return (
            f"{name!r} is not {KINDS[kind]} offered in {region} (table of {table_date()}, "
            f"infra/config/instance_types.json){suggestion}"
        )
    return None


def family_unavailable(family: str, sizes: list[str], regions: list[str]) -> str | None:
    """Why no ``family.size`` of ``sizes`` can be launched in one of ``regions`` (the first that offers
    none, and the sizes of the family it does offer), or None."""
    for region in regions:
        names = offered_in("ec2", region)
        if names is None or any(f"{family}.{size}" in names for size in sizes):
            continue
        offered = sorted(n.split(".", 1)[1] for n in names if n.split(".", 1)[0] == family)
        what = f"offers only {', '.join(offered)}" if offered else "offers no such family"
        return (
            f"{family!r} has none of the sizes {sizes} in {region}, which {what} (table of {table_date()}, "
            "infra/config/instance_types.json)"
        )
    return None
