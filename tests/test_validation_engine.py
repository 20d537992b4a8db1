"""CDK's template validation in a process of its own (infra/validation_engine.py) is CDK's own check.

- the engine's process runs the aws-cdk-lib the jsii runtime loaded (the very copy in jsii's package
  cache), so a jsii upgrade that moves that copy fails here instead of slowing every synth unnoticed;
- it runs below the app's priority (it is to take the idle core, not slow the app);
- its report, as the app hands it to CDK, is the report of CDK's own plugin in the runtime, for every
  environment the user has and for a template with findings of every shape (on a resource, on the stack);
- a process that fails leaves the check to CDK's own plugin in the runtime, with a note;
- where there is no complete copy (jsii's cache turned off, an entry not marked complete) or jsii would
  not trust its cache's directory, nothing is started; only the engine's own lines are answers, and a
  silent engine times out.
The CLI forms (tests/test_deploy_path.py) synthesize through it: their compliance reports, which hold
this plugin's acknowledged findings, are the committed ones.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import jsii
import pytest
from aws_cdk import (
    CloudFormationValidatePlugin,
    IPolicyValidationContext,
    PolicyValidationPluginReport,
    PolicyValidationStack,
)
from constructs import IConstruct

from infra import validation_engine, validation_proxy
from infra.validation_engine import EngineProcess, package_directory
from infra.validation_proxy import ValidationProxy, report_from
from tests.conftest import CONFIGURED
from tests.subjects import synth
from tests.synth import Synthesized

# A template with findings on resources (a wrong type, an unknown property) and on the stack itself (an
# output referring to nothing, a malformed condition): the tests' own example.
BROKEN = {
    "Resources": {
        "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": 5, "Unknown": True}},
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"DelaySeconds": "soon"}},
    },
    "Outputs": {"Missing": {"Value": {"Ref": "Nothing"}}},
    "Conditions": {"Broken": {"Fn::Equals": ["one"]}},
}


@jsii.implements(IPolicyValidationContext)
class _Context:
    """CDK's validation context for some templates, as the app's synth hands it to a plugin."""

    def __init__(self, stacks: list[dict[str, str]]) -> None:
        self._stacks = stacks

    @property
    def stack_templates(self) -> list[PolicyValidationStack]:
        return [
            PolicyValidationStack(
                stack_construct_path=s["stackConstructPath"],
                template_path=s["templatePath"],
                account_id=s.get("accountId"),
                region=s.get("region"),
            )
            for s in self._stacks
        ]

    @property
    def template_paths(self) -> list[str]:
        return [s["templatePath"] for s in self._stacks]

    @property
    def account_id(self) -> str | None:
        return None

    @property
    def region(self) -> str | None:
        return None

    @property
    def app_construct(self) -> IConstruct:
        raise NotImplementedError("no plugin of CDK's reads it")


def _as_data(report: PolicyValidationPluginReport) -> dict[str, Any]:
    """Everything CDK reads of a report."""
    return {
        "success": report.success,
        "violations": [
            {
                "rule": v.rule_name,
                "description": v.description,
                "severity": v.severity,
                "fix": v.fix,
                "metadata": dict(v.rule_metadata or {}),
                "resources": [
                    (r.resource_logical_id, r.construct_path, r.template_path, list(r.locations))
                    for r in v.violating_resources
                ],
            }
            for v in report.violations
        ],
        "metadata": dict(report.metadata or {}),
        "version": report.plugin_version,
    }


def _stacks(synthesized: Synthesized) -> list[dict[str, str]]:
    """Each stack of a synthesis as CDK describes it to a validation plugin."""
    manifest = json.loads((synthesized.outdir / "manifest.json").read_text(encoding="utf-8"))
    stacks = []
    for name, artifact in manifest["artifacts"].items():
        if artifact["type"] != "aws:cloudformation:stack":
            continue
        account, region = artifact["environment"].removeprefix("aws://").split("/")
        stack = {"stackConstructPath": name, "templatePath": str(synthesized.outdir / f"{name}.template.json")}
        stack |= {"accountId": account} if account != "unknown-account" else {}
        stack |= {"region": region} if region != "unknown-region" else {}
        stacks.append(stack)
    return stacks


def _engine() -> EngineProcess:
    found = package_directory()
    assert found is not None, "no copy of aws-cdk-lib in jsii's package cache, though the runtime loaded it"
    return EngineProcess(*found)


@pytest.fixture(scope="module")
def in_runtime() -> CloudFormationValidatePlugin:
    return CloudFormationValidatePlugin()


def test_the_engine_runs_the_aws_cdk_lib_the_jsii_runtime_loaded() -> None:
    import aws_cdk

    if os.environ.get("JSII_RUNTIME_PACKAGE_CACHE", "enabled").lower() != "enabled":
        pytest.skip("jsii's package cache is turned off here: the engine runs in the runtime")
    found = package_directory()
    assert found is not None
    directory, version = found
    manifest = json.loads((directory / "package.json").read_text(encoding="utf-8"))
    assert (manifest["name"], manifest["version"]) == ("aws-cdk-lib", version)
    assert (
        validation_engine.bundled_tarball()
        == Path(aws_cdk.__file__).parent / "_jsii" / f"aws-cdk-lib@{version}.jsii.tgz"
    )
    # jsii's runtime marks each entry it uses: this one, by this session's runtime.
    marker = directory / ".jsii-runtime-package-cache"
    assert marker.stat().st_mtime > time.time() - 24 * 3600


@pytest.mark.needs_synth("*configured")
def test_the_engines_report_is_cdks_own(in_runtime: CloudFormationValidatePlugin, tmp_path: Path) -> None:
    broken = tmp_path / "broken.template.json"
    broken.write_text(json.dumps(BROKEN), encoding="utf-8")
    stacks = [stack for form in CONFIGURED for stack in _stacks(synth(form))]
    stacks.append({"stackConstructPath": "Broken", "templatePath": str(broken), "region": "eu-west-1"})
    engine = _engine()
    hello = engine.ready()
    _assert_below_the_apps_priority(engine.pid)
    assert (hello["name"], hello["version"], hello["ruleIds"]) == (
        in_runtime.name,
        in_runtime.version,
        in_runtime.rule_ids,
    )
    answer = engine.validate(stacks)
    # No field is null (which the struct could not tell from absent, and validation-report.json could).
    assert "null" not in json.dumps(answer)
    theirs = report_from(answer)
    ours = in_runtime.validate(_Context(stacks))
    assert _as_data(theirs) == _as_data(ours)
    # Findings of every shape were compared: on resources and on a stack, in the example and the platform.
    resources = [r for v in _as_data(ours)["violations"] for r in v["resources"]]
    assert any(logical_id is None and path == "Broken" for logical_id, path, *_ in resources)
    assert any(logical_id is not None and template == str(broken) for logical_id, _, template, _ in resources)
    assert any(template != str(broken) for *_, template, _ in resources)


def _stub(directory: Path, name: str, body: str) -> Path:
    """A stand-in for infra/validation-engine.js: ``answer(message)`` writes one of its lines."""
    script = directory / name
    prefix = json.dumps(validation_engine.PREFIX)
    script.write_text(f"const answer = (m) => console.log({prefix} + JSON.stringify(m));\n{body}\n", encoding="utf-8")
    return script


def test_the_proxy_starts_no_engine_in_the_runtime_when_its_process_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CDK asks for the plugin's name and version after its report: the process's, not a second engine's."""
    hello = {"name": "CloudFormation Validate", "version": "9.9.9", "ruleIds": ["E1"]}
    body = (
        f"answer({json.dumps(hello)});\n"
        'process.stdin.once("data", () => answer({report: {success: true, violations: []}}));'
    )
    monkeypatch.setattr(validation_engine, "SCRIPT", _stub(tmp_path, "answers.js", body))
    proxy = ValidationProxy(EngineProcess(tmp_path, "9.9.9"))
    assert proxy.validate(_Context([])).success
    assert (proxy.name, proxy.version, proxy.rule_ids) == ("CloudFormation Validate", "9.9.9", ["E1"])
    assert proxy._in_runtime is None


def _assert_below_the_apps_priority(pid: int) -> None:
    """Every thread of the process (Linux gives each its own priority) runs at nice 10 or lower."""
    tasks = Path(f"/proc/{pid}/task")
    if not tasks.is_dir():
        pytest.skip("reads each thread's priority from Linux's /proc")
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    for task in tasks.iterdir():
        fields = (task / "stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
        assert int(fields[16]) >= max(validation_engine.NICENESS, ours), task.name  # (19th field: nice)


def test_a_failed_engine_leaves_the_check_to_cdks_own_plugin(
    in_runtime: CloudFormationValidatePlugin,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = package_directory()
    assert found is not None
    broken = tmp_path / "broken.template.json"
    broken.write_text(json.dumps(BROKEN), encoding="utf-8")
    stacks = [{"stackConstructPath": "Broken", "templatePath": str(broken)}]
    # CDK's plugin as the proxy creates it in the runtime: the one this module already started.
    monkeypatch.setattr(validation_proxy, "CloudFormationValidatePlugin", lambda: in_runtime)
    # The copy is not the version the app runs: the process says so and ends.
    proxy = ValidationProxy(EngineProcess(found[0], "0.0.0"))
    assert (proxy.name, proxy.version, proxy.rule_ids) == (in_runtime.name, in_runtime.version, in_runtime.rule_ids)
    assert _as_data(proxy.validate(_Context(stacks))) == _as_data(in_runtime.validate(_Context(stacks)))
    assert "not aws-cdk-lib@0.0.0" in capfd.readouterr().err
    # A process that ends once started, before its answer: the same.
    hello = {"name": in_runtime.name, "version": in_runtime.version, "ruleIds": in_runtime.rule_ids}
    monkeypatch.setattr(validation_engine, "SCRIPT", _stub(tmp_path, "ends.js", f"answer({json.dumps(hello)});"))
    proxy = ValidationProxy(EngineProcess(tmp_path, "0.0.0"))
    assert _as_data(proxy.validate(_Context(stacks))) == _as_data(in_runtime.validate(_Context(stacks)))
    assert "its process failed: it exited (0)" in capfd.readouterr().err


def test_no_process_is_started_without_a_copy_to_run(tmp_path: Path) -> None:
    tarball = validation_engine.bundled_tarball()
    assert tarball is not None
    assert package_directory(tarball, {"HOME": str(tmp_path)}) is None
    assert package_directory(tarball, {**os.environ, "JSII_RUNTIME_PACKAGE_CACHE": "disabled"}) is None
    assert package_directory(tarball, {"JSII_RUNTIME_PACKAGE_CACHE_ROOT": str(tmp_path)}) is None


def test_only_the_engines_own_lines_are_answers_and_a_silent_engine_times_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chatty = tmp_path / "chatty.js"
    chatty.write_text(
        'console.log("a module printing something");\n'
        f'console.log({json.dumps(validation_engine.PREFIX)} + JSON.stringify({{name: "n", ruleIds: []}}));\n'
        "setInterval(() => {}, 1000);\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(validation_engine, "SCRIPT", chatty)
    engine = EngineProcess(tmp_path, "0.0.0")
    assert engine.ready() == {"name": "n", "ruleIds": []}
    monkeypatch.setattr(validation_engine, "VALIDATE_SECONDS", 0.5)
    with pytest.raises(validation_engine.EngineError, match="no answer in"):
        engine.validate([])
    assert engine._process.poll() is not None  # stopped
    silent = tmp_path / "silent.js"
    silent.write_text("setInterval(() => {}, 1000);\n", encoding="utf-8")
    monkeypatch.setattr(validation_engine, "SCRIPT", silent)
    monkeypatch.setattr(validation_engine, "READY_SECONDS", 0.5)
    with pytest.raises(validation_engine.EngineError, match="no answer"):
        EngineProcess(tmp_path, "0.0.0").ready()


def test_the_cache_root_is_jsiis_own_choice(tmp_path: Path) -> None:
    home = str(tmp_path)
    root = validation_engine._cache_root
    assert root({"HOME": home}, "linux") == tmp_path / ".cache/aws/jsii/package-cache"
    assert root({"HOME": home}, "darwin") == tmp_path / "Library/Caches/com.amazonaws.jsii/package-cache"
    assert root({"LOCALAPPDATA": home}, "win32") == tmp_path / "AWS/jsii/package-cache"
    assert root({"JSII_RUNTIME_PACKAGE_CACHE_ROOT": home, "HOME": "/elsewhere"}, "linux") == tmp_path
    assert root({"JSII_RUNTIME_PACKAGE_CACHE": "disabled", "HOME": home}, "linux") is None
    # A default root jsii would refuse (others may write it) is not used either.
    if hasattr(os, "getuid"):
        private = tmp_path / "private"
        private.mkdir(mode=0o700)
        private.chmod(0o700)
        assert validation_engine._private(private)
        private.chmod(0o770)
        assert not validation_engine._private(private)
