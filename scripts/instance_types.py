#!/usr/bin/env python3
"""Writes infra/config/instance_types.json: which EC2 instance types, ElastiCache node types and Aurora
PostgreSQL instance classes each region offers, as the pinned cfn-lint's data says (cfn-lint builds it
from the AWS Price List). Synth checks the settings against it, offline.

    .venv/bin/python scripts/instance_types.py            # rewrite the table (after a cfn-lint upgrade)
    .venv/bin/python scripts/instance_types.py us-east-1  # list what one region offers

A test keeps the committed table equal to what this script makes from the installed cfn-lint.
Format: per kind, the sorted names offered anywhere, and per region a hex bit mask over that list
(bit i set: the region offers names[i]): about 40 KB for every region instead of 600 KB of names.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "infra" / "config" / "instance_types.json"


def _cfn_lint_data() -> Path:
    spec = importlib.util.find_spec("cfnlint")  # its data files, without importing it
    assert spec is not None
    assert spec.origin is not None
    return Path(spec.origin).parent / "data" / "schemas" / "extensions"


def offered() -> dict[str, dict[str, list[str]]]:
    """kind -> region -> the names that region offers."""
    data = _cfn_lint_data()
    ec2 = json.loads((data / "aws_ec2_instance" / "instancetype_enum.json").read_text(encoding="utf-8"))
    cache = json.loads((data / "aws_elasticache_cachecluster" / "cachenodetype_enum.json").read_text(encoding="utf-8"))
    rds = json.loads((data / "aws_rds_dbinstance" / "dbinstanceclass_enum.json").read_text(encoding="utf-8"))

    def aurora_postgresql(region: dict[str, Any]) -> list[str]:
        for clause in region.get("allOf", []):
            if clause["if"]["properties"].get("Engine", {}).get("const") == "aurora-postgresql":
                return list(clause["then"]["properties"]["DBInstanceClass"]["enum"])
        return []

    return {
        "ec2": {r: sorted(v["enum"]) for r, v in ec2.items() if isinstance(v, dict)},
        "elasticache": {r: sorted(v["enum"]) for r, v in cache.items() if isinstance(v, dict)},
        "aurora_postgresql": {r: sorted(aurora_postgresql(v)) for r, v in rds.items() if isinstance(v, dict)},
    }


def table(date: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "date": date,
        "source": f"cfn-lint {importlib.metadata.version('cfn-lint')} data (built from the AWS Price List)",
    }
    for kind, regions in offered().items():
        names = sorted(set().union(*regions.values()))
        index = {name: i for i, name in enumerate(names)}
        masks = {}
        for region, listed in sorted(regions.items()):
            bits = 0
            for name in listed:
                bits |= 1 << index[name]
            masks[region] = format(bits, "x")
        out[kind] = {"names": names, "regions": masks}
    return out


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        sys.path.insert(0, str(ROOT))
        from infra.config.instance_types import offered_in

        for kind in ("ec2", "elasticache", "aurora_postgresql"):
            print(f"{kind}: {' '.join(offered_in(kind, argv[1]) or ['(no data)'])}")
        return 0
    from datetime import date

    TABLE.write_text(json.dumps(table(date.today().isoformat()), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {TABLE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
