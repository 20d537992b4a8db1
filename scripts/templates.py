#!/usr/bin/env python3
"""Templates byte-identical across a refactor: ``record FILE`` before it, ``compare FILE`` after.

Synthesizes every environment in every form ``make forms`` checks (no account, an account from
``--context`` or from ``CDK_DEFAULT_ACCOUNT``, and in another region), plus every environment of the
test examples, exactly as the CDK CLI runs the app (cdk.json's app command, ``CDK_CONTEXT_JSON``
with cdk.json's context, ``CDK_OUTDIR``), and records the SHA-256 of every template and asset file.
``compare`` prints each file that differs, appeared or vanished, and exits 1 if any did. Reports are
not compared: they are documents, not what CloudFormation deploys.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.forms import Form, app_command, cli_environment, forms_of, other_region  # noqa: E402


def _subjects() -> list[tuple[str, Path | None, Form]]:
    from infra.config.project import REPOSITORY, Project

    subjects: list[tuple[str, Path | None, Form]] = []
    for environment in REPOSITORY.environment_names():
        for form in forms_of(environment, other_region(REPOSITORY, environment)):
            subjects.append((form.name, None, form))
    examples = Project(ROOT / "tests" / "examples")
    for environment in examples.environment_names():
        subjects.append((f"examples-{environment}", examples.root, Form(environment)))
    return subjects


def _synth(name: str, project: Path | None, form: Form, work: Path) -> dict[str, str]:
    outdir = work / name
    context = dict(json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))["context"])
    context.update(form.context())
    context["reports_dir"] = str(outdir / "reports")
    if project is not None:
        context["project"] = str(project)
    environ = cli_environment({"CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(outdir), **form.environ()})
    run = subprocess.run(app_command(), cwd=ROOT, env=environ, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise SystemExit(f"{name}: synth failed ({run.returncode}):\n{run.stderr[-4000:]}")
    digests = {}
    for path in sorted(outdir.rglob("*")):
        relative = path.relative_to(outdir)
        if path.is_file() and (path.name.endswith(".template.json") or relative.parts[0].startswith("asset.")):
            digests[f"{name}/{relative}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def digests() -> dict[str, str]:
    result: dict[str, str] = {}
    with (
        tempfile.TemporaryDirectory(prefix="cloud-ops-templates-") as work,
        ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool,
    ):
        futures = [pool.submit(_synth, name, project, form, Path(work)) for name, project, form in _subjects()]
        for future in futures:
            result.update(future.result())
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("record", "compare"):
        print("usage: scripts/templates.py record|compare FILE", file=sys.stderr)
        return 2
    command, file = argv[0], Path(argv[1])
    current = digests()
    if command == "record":
        file.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"recorded {len(current)} files in {file}")
        return 0
    recorded: dict[str, str] = json.loads(file.read_text(encoding="utf-8"))
    changed = sorted(k for k in recorded.keys() & current.keys() if recorded[k] != current[k])
    gone, new = sorted(recorded.keys() - current.keys()), sorted(current.keys() - recorded.keys())
    for label, names in (("differs", changed), ("vanished", gone), ("appeared", new)):
        for name in names:
            print(f"{label}: {name}")
    print(f"{len(current)} files compared: {'identical' if not (changed or gone or new) else 'NOT identical'}")
    return 1 if changed or gone or new else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
