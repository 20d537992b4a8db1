"""A second process that synthesizes while the test session runs (tests/subjects.py starts it).

CDK synth is CPU-bound and the session's own process is busy with the rest of the tests: this one
takes jobs on the other core. Each job is the real entry point, app.py's ``main`` with the context
the CDK CLI would give it (``make synth``; for a copy of the repository, ``--context project=``). It
also writes the platform's ledger of acknowledgements (the Python objects a report is built from) as
JSON to the job's ``ledger`` file, for the compliance tests to compare with the report. Jobs come as
JSON on stdin; a line ``done <label>`` or ``failed <label> <message as JSON>`` on stdout says when
each one's output is on disk.

    python -m tests.synth_worker < jobs.json
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any


def run(job: dict[str, Any]) -> None:
    from aws_cdk import App

    import app
    import infra.platform
    from infra.config.project import Project, cdk_json_context

    project = Project(Path(job["project"]))
    context = {**cdk_json_context(), **job["context"], "project": str(project.root)}
    errors = io.StringIO()
    saved = dict(os.environ)
    os.environ.update(job.get("environ", {}))  # CDK_DEFAULT_ACCOUNT, as the CLI sets it
    # main() builds the platform with infra.platform.build_platform (looked up when it runs): kept here.
    build_platform, built = infra.platform.build_platform, []

    def keeping(*args: Any, **kwargs: Any) -> infra.platform.Platform:
        built.append(build_platform(*args, **kwargs))
        return built[-1]

    infra.platform.build_platform = keeping
    try:
        with contextlib.redirect_stderr(errors):
            code = app.main(App(context=context, outdir=job["outdir"]))
    finally:
        infra.platform.build_platform = build_platform
        os.environ.clear()
        os.environ.update(saved)
    if code != 0:
        raise RuntimeError(f"app.py exited {code}: {errors.getvalue()[-3000:]}")
    (platform,) = built
    entries = [dataclasses.asdict(entry) for entry in platform.ledger.entries]
    Path(job["ledger"]).write_text(json.dumps(entries), encoding="utf-8")


def main() -> int:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    for job in json.load(sys.stdin):
        try:
            run(job)
        except Exception as error:
            message = f"{error}\n{traceback.format_exc(limit=5)}"
            print(f"failed {job['label']} {json.dumps(message)}", flush=True)
        else:
            print(f"done {job['label']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
