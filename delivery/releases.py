"""Helm releases: which revision a rollback returns to, and what a deploy summary links.

``helm history <release> -o json`` lists revisions oldest first, each with its status and description;
``helm get values <release> --revision N -o json`` gives the values a revision was installed with, whose
``image.digest`` and ``image.tag`` the deploy workflow set.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from delivery.registry import DeliveryError

COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class Revision:
    number: int
    status: str
    description: str
    digest: str | None
    tag: str | None


def _image(values: dict[str, Any]) -> tuple[str | None, str | None]:
    image = values.get("image") or {}
    return image.get("digest"), image.get("tag")


def revisions(history: list[dict[str, Any]], values_of: Callable[[int], dict[str, Any]]) -> list[Revision]:
    out = []
    for entry in history:
        digest, tag = _image(values_of(int(entry["revision"])))
        out.append(
            Revision(int(entry["revision"]), str(entry["status"]), str(entry.get("description", "")), digest, tag)
        )
    return out


def rollback_target(found: list[Revision], revision: int | None = None) -> tuple[Revision, Revision]:
    """(the deployed revision, the one to return to): ``revision`` when given, else the newest earlier
    revision that ran another image than the deployed one (a values-only change ran the same image)."""
    deployed = [r for r in found if r.status == "deployed"]
    if not deployed:
        raise DeliveryError("the release has no deployed revision (helm history): deploy it first")
    current = deployed[-1]
    if revision is not None:
        chosen = [r for r in found if r.number == revision]
        if not chosen or revision == current.number:
            raise DeliveryError(
                f"revision {revision} is not an earlier revision of the release; allowed: "
                + ", ".join(str(r.number) for r in found if r.number != current.number and r.digest)
            )
        if not chosen[0].digest:
            raise DeliveryError(
                f"revision {revision} has no image digest in its values; allowed: a revision deployed by digest"
            )
        return current, chosen[0]
    for earlier in reversed([r for r in found if r.number < current.number]):
        if earlier.digest and earlier.digest != current.digest and earlier.status in ("superseded", "deployed"):
            return current, earlier
    raise DeliveryError(
        f"no earlier revision ran another image than revision {current.number} ({current.digest}): "
        "nothing to roll back to"
    )


def helm_json(helm: str, *args: str) -> Any:
    result = subprocess.run([helm, *args, "-o", "json"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DeliveryError(f"helm {' '.join(args)}: {result.stderr.strip()}")
    return json.loads(result.stdout or "null")


def release_revisions(helm: str, release: str, namespace: str) -> list[Revision]:
    history = helm_json(helm, "history", release, "--namespace", namespace, "--max", "20")
    return revisions(
        history,
        lambda number: (
            helm_json(helm, "get", "values", release, "--namespace", namespace, "--revision", str(number)) or {}
        ),
    )


def summary(
    *,
    title: str,
    repository_uri: str,
    region: str,
    digest: str,
    tag: str | None,
    server: str,
    repository: str,
    previous: Revision | None,
    namespace: str,
) -> str:
    """Markdown for the job summary: the image (a link to it in the ECR console), its commit, the release before."""
    account = repository_uri.partition(".dkr.ecr.")[0]
    name = repository_uri.split("/", 1)[1]
    console = (
        f"https://{region}.console.aws.amazon.com/ecr/repositories/private/{account}/{name}/_/image/{digest}/details"
        f"?region={region}"
    )
    lines = [f"### {title}", f"- image: [`{repository_uri}@{digest}`]({console})"]
    if tag and COMMIT.fullmatch(tag):
        lines.append(f"- commit: [`{tag[:12]}`]({server}/{repository}/commit/{tag})")
    elif tag:
        lines.append(f"- tag: `{tag}`")
    lines.append(f"- namespace: `{namespace}`")
    if previous is not None:
        commit = f" (commit `{previous.tag[:12]}`)" if previous.tag and COMMIT.fullmatch(previous.tag) else ""
        lines.append(
            f"- previous release: revision {previous.number}, `{previous.digest}`{commit}: {previous.description}"
        )
    else:
        lines.append("- previous release: none (first install)")
    return "\n".join(lines) + "\n"
