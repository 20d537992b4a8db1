"""What the synth's speed rests on stays true (the figures themselves are `make bench`'s, not a test's).

- app.py starts CDK's validation engine on a background thread and meanwhile runs ``prepare()``; the
  jsii runtime is not thread safe, so ``prepare()`` must make no jsii call, for every environment the
  user has (a module-level jsii call added to any module it imports would break this).
- the engine registered by app.py is CDK's own check, not an extra or a lesser one: the CLI form's
  validation report names the same plugin (tests/test_deploy_path.py runs that form).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from infra.config.project import REPOSITORY
from tests.synth import ROOT

# Runs in a fresh interpreter: the engine starts, then every send to the jsii runtime from the main
# thread is recorded while prepare() runs for each environment.
_WINDOW = textwrap.dedent(
    """
    import json, sys, threading
    sys.path.insert(0, {root!r})
    from infra import validation_engine
    engine = validation_engine.start()
    from jsii._kernel.providers import process
    calls = []
    original = process._NodeProcess.send
    def send(self, request, response_type):
        if threading.current_thread() is threading.main_thread():
            calls.append(type(request).__name__)
        return original(self, request, response_type)
    process._NodeProcess.send = send
    import app
    for environment in {environments!r}:
        app.prepare({{"env": environment}}.get)
    prepared_calls = list(calls)
    engine.plugin()
    print(json.dumps({{"calls": prepared_calls, "engine": engine is not None}}))
    """
)


def _run(code: str, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", **environ}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def test_prepare_makes_no_jsii_call_while_the_engine_starts() -> None:
    environments = REPOSITORY.environment_names()
    result = _run(_WINDOW.format(root=str(ROOT), environments=environments))
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["engine"]
    assert outcome["calls"] == [], f"prepare() called the jsii runtime: {outcome['calls']}"


def test_no_engine_is_started_when_the_cli_turns_validation_off() -> None:
    code = "from infra import validation_engine; print(validation_engine.start() is None)"
    result = _run(code, CDK_VALIDATION="false")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "True"
