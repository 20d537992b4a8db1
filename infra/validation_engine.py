"""CDK's template validation engine, started in a Node.js process of its own while the app is built.

Every ``cdk synth`` checks its templates with CDK's built-in CloudFormation validation
(``CloudFormationValidatePlugin``: a WebAssembly engine holding every resource schema and CDK's own
rules). Starting that engine is the largest fixed cost of a synth after loading aws-cdk-lib (about a
second of CPU), and in the jsii runtime it runs on the same one thread that then builds every construct;
its heap also stays in that runtime for the rest of the synth, for the garbage collector to walk.

:func:`start` runs the engine beside the app instead: infra/validation-engine.js loads aws-cdk-lib's
own plugin, from the very copy the jsii runtime loads (jsii's package cache, found by
:func:`package_directory`), in a Node.js process started like the runtime's (infra/jsii_node.py) at a
lower priority, while this process imports the stacks' modules, reads the settings and builds the
constructs: Python and the runtime take turns as the app is built, which leaves a core idle for the
engine, and the lower priority keeps it from slowing them where they both run (the imports, the load). :meth:`WarmingEngine.plugin` then gives the app a plugin that hands CDK's own validation
context to that process and returns its report (infra/validation_proxy.py): the same plugin name,
version, rules, findings and report as CDK's own instance in the runtime. The app is created with
``builtin_cloud_formation_validation=False`` so that CDK does not add its instance as well.

Where that process cannot run (no package cache entry yet: the first synth after an install; jsii's
cache turned off; the process failing), CDK's own plugin runs in the jsii runtime, as CDK would run it:
the check is the same either way, only where it runs differs.

Meanwhile a background thread loads the app's assemblies into the jsii runtime (``import aws_cdk``,
``import cdk_nag``). The jsii runtime is not thread safe: between :func:`start` and
:meth:`WarmingEngine.plugin` the calling thread must make no jsii call (create, invoke or load). An
import of an aws-cdk-lib module on the calling thread waits for the thread's import to finish (Python's
import lock) and is pure Python afterwards. Enter jsii's packages only that way while the thread runs:
importing one of jsii's inner modules first (``jsii._kernel...``) makes a circular import across the two
threads, which Python can answer with "partially initialized module". tests/test_speed.py checks that
this window makes no call to the runtime from the calling thread.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_cdk import IPolicyValidationPlugin

SCRIPT = Path(__file__).resolve().with_name("validation-engine.js")
PACKAGE = "aws-cdk-lib"
PLUGIN_MODULE = ("core", "lib", "validation", "cloudformation-validate-plugin.js")


def bundled_tarball() -> Path | None:
    """aws-cdk-lib's npm tarball inside its Python package, which jsii's runtime loads: found without
    importing ``aws_cdk`` (that import is the load)."""
    spec = importlib.util.find_spec("aws_cdk")
    for location in (spec.submodule_search_locations or []) if spec else []:
        found = sorted((Path(location) / "_jsii").glob(f"{PACKAGE}@*.jsii.tgz"))
        if len(found) == 1:
            return found[0]
    return None


def _cache_root(environ: dict[str, str] | os._Environ[str]) -> Path | None:
    """jsii's package cache: ``JSII_RUNTIME_PACKAGE_CACHE_ROOT``, else the user's cache directory as
    jsii's runtime chooses it (@jsii/kernel's ``defaultCacheRoot``)."""
    if environ.get("JSII_RUNTIME_PACKAGE_CACHE", "enabled").lower() != "enabled":
        return None
    if environ.get("JSII_RUNTIME_PACKAGE_CACHE_ROOT"):
        return Path(environ["JSII_RUNTIME_PACKAGE_CACHE_ROOT"])
    if sys.platform == "win32":
        local = environ.get("LOCALAPPDATA")
        return Path(local, "AWS", "jsii", "package-cache") if local else None
    home = environ.get("HOME")
    if not home:
        return None
    if sys.platform == "darwin":
        return Path(home, "Library", "Caches", "com.amazonaws.jsii", "package-cache")
    return Path(home, ".cache", "aws", "jsii", "package-cache")


def package_directory(
    tarball: Path | None = None, environ: dict[str, str] | os._Environ[str] = os.environ
) -> tuple[Path, str] | None:
    """The directory the jsii runtime extracted aws-cdk-lib into, and its version; None if there is none.

    jsii's runtime keeps each package it loads at ``<cache root>/<name>/<version>/<digest>``, the digest
    being the SHA-256 of the tarball followed by NUL + name and NUL + version (@jsii/kernel's
    ``extractViaCache`` and ``digestFile``, jsii 1.142): the same bytes give the same directory, so
    the engine runs the aws-cdk-lib the runtime runs. tests/test_validation_engine.py checks this
    against the suite's own runtime, so that a jsii upgrade which moves it is noticed.
    """
    tarball = tarball or bundled_tarball()
    root = _cache_root(environ)
    match = re.fullmatch(rf"{re.escape(PACKAGE)}@(.+)\.jsii\.tgz", tarball.name) if tarball else None
    if tarball is None or root is None or match is None:
        return None
    version = match.group(1)
    digest = hashlib.sha256()
    with tarball.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    for part in (PACKAGE, version):
        digest.update(b"\0" + part.encode())
    directory = root / PACKAGE / version / digest.hexdigest()
    return (directory, version) if directory.joinpath(*PLUGIN_MODULE).is_file() else None


class EngineProcess:
    """infra/validation-engine.js, running: :meth:`ready` waits for its engine, :meth:`validate` asks once."""

    def __init__(self, directory: Path, version: str) -> None:
        node = os.environ.get("JSII_NODE") or "node"
        # Its output goes to this process only: a stream shared with the CDK CLI would keep the CLI
        # waiting for this process's exit.
        self._process = subprocess.Popen(
            [node, str(SCRIPT), str(directory), version],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self._hello: dict[str, Any] | None = None

    @property
    def pid(self) -> int:
        return self._process.pid

    def _read(self) -> dict[str, Any]:
        stream: IO[str] | None = self._process.stdout
        line = stream.readline() if stream is not None else ""
        if not line:
            self.stop()
            errors = self._process.stderr.read() if self._process.stderr is not None else ""
            raise RuntimeError(f"it exited ({self._process.returncode}): {errors.strip()[-2000:]}")
        message: dict[str, Any] = json.loads(line)
        if "error" in message:
            self.stop()
            raise RuntimeError(message["error"])
        return message

    def ready(self) -> dict[str, Any]:
        """``{"name", "version", "ruleIds"}`` of the plugin, once its engine has started."""
        if self._hello is None:
            self._hello = self._read()
        return self._hello

    def validate(self, stack_templates: list[dict[str, str]]) -> dict[str, Any]:
        """The plugin's report for CDK's ``stackTemplates``; the process ends after it."""
        self.ready()
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps({"stackTemplates": stack_templates}) + "\n")
            self._process.stdin.flush()
        except OSError as error:
            self.stop()
            raise RuntimeError(f"it stopped reading: {error}") from error
        report: dict[str, Any] = self._read()["report"]
        self.stop()
        return report

    def stop(self) -> None:
        """Ends the process at once: it holds no state, and freeing its heap would only take time."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()


class WarmingEngine:
    """The validation engine starting in its own process, and the assemblies loading into the runtime:
    two threads, so that finding the engine's copy of aws-cdk-lib (hashing its tarball) does not delay
    the load, which the app's own imports wait for."""

    def __init__(self) -> None:
        self._engine: EngineProcess | None = None
        self._plugin: IPolicyValidationPlugin | None = None
        self._errors: list[BaseException] = []
        self._threads = [
            threading.Thread(target=self._start_engine, name="cloud-ops-validation-engine", daemon=True),
            threading.Thread(target=self._load, name="cloud-ops-jsii-load", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _start_engine(self) -> None:
        try:
            found = package_directory()
            if found is not None:
                self._engine = EngineProcess(*found)
        except BaseException as error:  # re-raised on the main thread by plugin()
            self._errors.append(error)

    def _load(self) -> None:
        try:
            # The assemblies (jsii "load" calls): aws-cdk-lib with its dependencies, and cdk-nag.
            import cdk_nag  # noqa: F401
            from aws_cdk import CloudFormationValidatePlugin

            self._threads[0].join()
            if self._engine is None:
                # No copy for the engine's process (the first synth after an install: the runtime has just
                # made it; jsii's cache turned off): CDK's own plugin, in the runtime, started here.
                self._plugin = CloudFormationValidatePlugin()
        except BaseException as error:  # re-raised on the main thread by plugin()
            self._errors.append(error)

    def plugin(self) -> IPolicyValidationPlugin:
        """Waits for the assemblies (not for the engine); from here on the caller may use jsii again."""
        for thread in self._threads:
            thread.join()
        if self._errors:
            raise self._errors[0]
        if self._engine is not None:
            from infra.validation_proxy import ValidationProxy

            return ValidationProxy(self._engine)
        assert self._plugin is not None
        return self._plugin


def start() -> WarmingEngine | None:
    """Starts the engine and loads the app's jsii assemblies, beside the caller.

    None when the synth runs without CDK's validation (``cdk synth --no-validation`` sets
    ``CDK_VALIDATION=false``): registering a plugin explicitly would turn it back on.
    """
    if os.environ.get("CDK_VALIDATION") == "false":
        return None
    return WarmingEngine()
