"""The Node.js flags of the app's jsii runtime: V8's garbage collector and WebAssembly compiler on
the runtime's own thread.

Every aws-cdk-lib call from Python runs in a Node.js process (jsii's runtime), and CDK's template
validation, a WebAssembly engine that every synth starts, in one started the same way
(infra/validation_engine.py). On
this project's two-core CI machine, V8's background threads (concurrent garbage collection, parallel
WebAssembly compilation) compete with that thread and with Python for the cores: with
``--single-threaded-gc --wasm-num-compilation-tasks=0`` the engine starts in about half the time and
validates the templates in half the time, and a ``cdk synth`` of dev takes 1.5 to 2 s less (measured
by ``make bench``; docs/decisions/0005-scale-and-speed.md). The same engine, rules and checks run; only
where V8 does its own housekeeping changes.

jsii has no setting for the runtime's Node.js flags (``NODE_OPTIONS`` refuses V8 flags), but it runs
``$JSII_NODE`` when set: :func:`configure` points it at infra/jsii-node, which starts the Node.js jsii
would have started (``JSII_NODE`` as it was, else ``node``) with :data:`FLAGS`. Set
``CLOUD_OPS_JSII_NODE_FLAGS`` to choose other flags (empty: none).

The launcher also preloads infra/jsii-code-cache.js: V8's compiled code of aws-cdk-lib's and cdk-nag's
modules, kept between runs in the user's cache and found by each module's content (jsii loads them from
a new temporary directory each run, where Node.js's own compile cache, found by path, cannot help).
``CLOUD_OPS_JSII_CODE_CACHE`` names another directory for it, or ``off``.

And it runs jsii's runtime as one process (infra/jsii-direct.js): jsii's kernel answers Python on jsii's
own pipes, where jsii puts a relay process between them that copies every message (two more process
wake-ups for each of a synth's thousands of calls). ``CLOUD_OPS_JSII_DIRECT=off``: as jsii runs it.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

FLAGS = "--single-threaded-gc --wasm-num-compilation-tasks=0"
LAUNCHER = Path(__file__).resolve().with_name("jsii-node")


def configure(environ: MutableMapping[str, str] = os.environ, launcher: Path = LAUNCHER) -> None:
    """Before the jsii runtime starts (at the first ``import aws_cdk``). Idempotent: a process started
    by one that configured it (the CDK CLI running app.py from the tests) keeps the Node.js chosen first.
    Where the launcher cannot run (no ``sh``: Windows; a copy that lost its executable bit), jsii starts
    its Node.js as it would without this."""
    if os.name != "posix" or not os.access(launcher, os.X_OK) or environ.get("JSII_NODE") == str(launcher):
        return
    environ["CLOUD_OPS_JSII_NODE"] = environ.get("JSII_NODE") or "node"
    environ.setdefault("CLOUD_OPS_JSII_NODE_FLAGS", FLAGS)
    environ["JSII_NODE"] = str(launcher)
