"""``python -m delivery <command>``: the steps of the delivery workflows (.github/workflows/).

Outputs go to ``$GITHUB_OUTPUT`` (``key=value`` lines) when it is set, else to standard output; a
failure is one ``::error::`` line naming what is wrong and exit code 1.

  plan            --before SHA --after SHA       what a push ships (delivery/plan.py)
  targets         --environment E [--region R]   regions to deploy (all when R is empty) and their runners
  image           --service S --environment E --region R [--tag T] [--promote-from P]
                                                 the image to deploy: resolved, copied (promotion), scan-gated,
                                                 replicated to R
  image-uri       --service S --environment E --region R
                                                 the service's repository URI in R
  mark-deployed   --service S --environment E --region R --digest D
                                                 deployed-<run>-<attempt> on it, in the primary region and R
  kubeconfig      --cluster C --region R         writes $KUBECONFIG (kubectl runs `python -m delivery token`)
  token           --cluster C --region R         the EKS token, as a kubectl exec plugin prints it
  rollback-target --release N --namespace NS [--revision K]
                                                 the revision a rollback returns to (helm history)
  summary         ...                            the job summary of a deploy or a rollback
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from delivery import eks, registry, releases
from delivery.plan import changed_paths, plan
from delivery.project import Project, ProjectError
from delivery.registry import DeliveryError, Repository


def _emit(outputs: dict[str, str]) -> None:
    target = os.environ.get("GITHUB_OUTPUT")
    lines = "".join(f"{key}={value}\n" for key, value in outputs.items())
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(lines)
    print(lines, end="")


def _session() -> Any:
    import boto3

    return boto3.session.Session()


def _account(session: Any) -> str:
    return str(session.client("sts").get_caller_identity()["Account"])


def _repository(session: Any, account: str, region: str, name: str) -> Repository:
    return Repository(session.client("ecr", region_name=region), name, account, region)


def cmd_plan(args: argparse.Namespace, project: Project) -> None:
    found = plan(project, changed_paths(project.root, args.before, args.after))
    for service in found.skipped:
        print(f"::notice title=services/{service}::no Dockerfile: nothing to build for {service}")
    _emit(found.outputs())


def cmd_targets(args: argparse.Namespace, project: Project) -> None:
    """The deploy or rollback jobs of an environment: one per region (every region when none is given), on
    the runner labels its settings name (github.deploy_runs_on: a private API endpoint is reachable only
    from runners inside the VPC; {run_id} and {run_attempt} fill in CodeBuild-hosted runners' per-run
    labels, {region} the region deployed to), with the cluster's Kubernetes version for the pinned tools."""
    environment = project.environment(args.environment)
    if args.region and args.region not in environment.regions:
        raise ProjectError(
            f"'{args.region}' is not a region of this environment; allowed: {json.dumps(list(environment.regions))} "
            f"(setting regions, or region, in {environment.settings_file})"
        )
    regions = [args.region] if args.region else list(environment.regions)
    run_id, attempt = os.environ.get("GITHUB_RUN_ID", "0"), os.environ.get("GITHUB_RUN_ATTEMPT", "1")
    runs_on = {r: environment.labels(r, run_id, attempt) for r in regions}
    print(f"deploy jobs: {json.dumps(runs_on)}")
    _emit(
        {
            "regions": json.dumps(regions),
            "primary": environment.primary,
            "project": environment.project,
            "runs_on": json.dumps(runs_on),
            "kubernetes_version": environment.kubernetes_version,
        }
    )


def cmd_image(args: argparse.Namespace, project: Project) -> None:
    environment = project.environment(args.environment)
    session = _session()
    account = _account(session)
    home = _repository(session, account, environment.primary, environment.repository(args.service))
    tag = args.tag or None
    if args.promote_from:
        source_env = project.environment(args.promote_from)
        source = _repository(
            session, source_env.account or account, source_env.primary, source_env.repository(args.service)
        )
        now = registry.running(source)
        if now is None:
            raise DeliveryError(
                f"{source.uri}: {source_env.name} has run no image of {args.service} yet; deploy it there first"
            )
        digest = str(now["imageDigest"])
        built = registry.digest_of(source, tag) if tag is not None else digest
        if built != digest:
            raise DeliveryError(
                f"{source_env.name} no longer runs {args.service}:{tag} ({built}) but "
                f"{digest} ({registry.version_tag(now)}): a newer deploy superseded it there; promote that one"
            )
        tag = tag or registry.version_tag(now)
        uploaded = registry.copy_image(source, home, digest, tag)
        print(f"{source.uri}@{digest} -> {home.uri}:{tag} ({uploaded} layers uploaded)")
    else:
        if tag is None:
            raise DeliveryError("image_tag is empty: name the tag build-image pushed (the commit SHA)")
        digest = registry.digest_of(home, tag)
    counts = registry.scan_gate(home, digest)
    print(f"scan of {home.uri}@{digest}: {counts or 'no findings'}")
    here = home
    if args.region != environment.primary:
        here = _repository(session, account, args.region, environment.repository(args.service))
        registry.wait_for(here, digest)
    _emit({"digest": digest, "tag": tag or "", "repository": here.uri, "primary_repository": home.uri})


def cmd_pushed(args: argparse.Namespace, project: Project) -> None:
    """``digest=`` the service's image ``tag`` already in the environment's registry (empty: not pushed)."""
    environment = project.environment(args.environment)
    session = _session()
    home = _repository(session, _account(session), environment.primary, environment.repository(args.service))
    _emit({"digest": registry.pushed(home, args.tag) or ""})


def cmd_image_uri(args: argparse.Namespace, project: Project) -> None:
    environment = project.environment(args.environment)
    session = _session()
    print(_repository(session, _account(session), args.region, environment.repository(args.service)).uri)


def cmd_mark_deployed(args: argparse.Namespace, project: Project) -> None:
    environment = project.environment(args.environment)
    session = _session()
    account = _account(session)
    regions = list(dict.fromkeys([environment.primary, args.region]))
    repositories = [_repository(session, account, r, environment.repository(args.service)) for r in regions]
    tag = registry.mark_deployed(
        repositories, args.digest, os.environ.get("GITHUB_RUN_ID", "0"), os.environ.get("GITHUB_RUN_ATTEMPT", "1")
    )
    _emit({"deployed_tag": tag})


def cmd_kubeconfig(args: argparse.Namespace, project: Project) -> None:
    path = Path(os.environ.get("KUBECONFIG") or Path.home() / ".kube" / "config")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(eks.kubeconfig(args.cluster, args.region, sys.executable, _session()), encoding="utf-8")
    path.chmod(0o600)
    print(f"kubeconfig for {args.cluster} in {args.region}: {path}")


def cmd_token(args: argparse.Namespace, project: Project) -> None:
    print(eks.exec_credential(args.cluster, args.region, _session()))


def cmd_rollback_target(args: argparse.Namespace, project: Project) -> None:
    found = releases.release_revisions(args.helm, args.release, args.namespace)
    current, target = releases.rollback_target(found, args.revision)
    _emit(
        {
            "current_revision": str(current.number),
            "revision": str(target.number),
            "digest": target.digest or "",
            "tag": target.tag or "",
        }
    )


def cmd_summary(args: argparse.Namespace, project: Project) -> None:
    found = releases.release_revisions(args.helm, args.release, args.namespace)
    deployed = [r for r in found if r.status == "deployed"]
    earlier = [r for r in found if deployed and r.number < deployed[-1].number]
    text = releases.summary(
        title=args.title,
        repository_uri=args.repository_uri,
        region=args.region,
        digest=args.digest,
        tag=args.tag,
        server=os.environ.get("GITHUB_SERVER_URL", "https://github.com"),
        repository=os.environ.get("GITHUB_REPOSITORY", ""),
        previous=earlier[-1] if earlier else None,
        namespace=args.namespace,
    )
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(text)
    print(text, end="")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m delivery", description=__doc__.split("\n\n")[0])
    top.add_argument("--root", default=".", help="the repository's root")
    commands = top.add_subparsers(dest="command", required=True)

    def command(name: str, *options: str, **flags: dict[str, Any]) -> argparse.ArgumentParser:
        sub = commands.add_parser(name)
        for option in options:
            sub.add_argument(f"--{option}", required=True)
        for option, extra in flags.items():
            sub.add_argument(f"--{option.replace('_', '-')}", **extra)
        return sub

    command("plan", "before", "after")
    command("targets", "environment", region={"default": ""})
    command("image", "service", "environment", "region", tag={"default": ""}, promote_from={"default": ""})
    command("pushed", "service", "environment", "tag")
    command("image-uri", "service", "environment", "region")
    command("mark-deployed", "service", "environment", "region", "digest")
    command("kubeconfig", "cluster", "region")
    command("token", "cluster", "region")
    command(
        "rollback-target", "release", "namespace", revision={"type": int, "default": None}, helm={"default": "helm"}
    )
    command(
        "summary",
        "title",
        "release",
        "namespace",
        "region",
        "repository-uri",
        "digest",
        tag={"default": ""},
        helm={"default": "helm"},
    )
    return top


HANDLERS = {
    "plan": cmd_plan,
    "targets": cmd_targets,
    "image": cmd_image,
    "pushed": cmd_pushed,
    "image-uri": cmd_image_uri,
    "mark-deployed": cmd_mark_deployed,
    "kubeconfig": cmd_kubeconfig,
    "token": cmd_token,
    "rollback-target": cmd_rollback_target,
    "summary": cmd_summary,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        HANDLERS[args.command](args, Project(Path(args.root)))
    except (DeliveryError, ProjectError) as error:
        print(f"::error title=delivery {args.command}::{error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
