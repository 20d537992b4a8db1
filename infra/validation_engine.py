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
engine, and the lower priority keeps it from slowing them where they both run (the imports, the
load). :meth:`WarmingEngine.plugin` then gives the app a plugin that hands CDK's own validation context
to that process and returns its report (infra/validation_proxy.py): the same plugin name, version,
rules, findings and report as CDK's own instance in the runtime. The app is created with
``builtin_cloud_formation_validation=False`` so that CDK does not add its instance as well.

Where that process cannot run (no complete package cache entry yet: the first synth after an install;
jsii's cache turned off, or in a directory jsii would not trust; the process failing, hanging or
answering nonsense), CDK's own plugin runs in the jsii runtime, as CDK would run it: the check is the
same either way, only where it runs differs. What CDK's plugin records in its process for CDK's
performance counters (``CloudFormationValidate.validate`` and the diagnostics' counts, which the CDK
CLI's telemetry may send) stays in that process.

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

import contextlib
import hashlib
import importlib.util
import json
import os
import queue
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_cdk import IPolicyValidationPlugin

SCRIPT = Path(__file__).resolve().with_name("validation-engine.js")
PACKAGE = "aws-cdk-lib"
PLUGIN_MODULE = ("core", "lib", "validation", "cloudformation-validate-plugin.js")
# jsii writes it into an entry of its package cache once the package is extracted there, last.
COMPLETE_MARKER = ".jsii-runtime-package-cache"
# What the engine's process writes starts with this; any other output (a module's console.log, a V8
# trace) is not the engine's answer.
PREFIX = "cloud-ops-validation-engine "
# Generous: the engine starts in one to two seconds and validates in under one on two cores.
READY_SECONDS, VALIDATE_SECONDS = 120.0, 300.0
# Below the app's priority (POSIX nice): the engine takes the core that Python and the jsii runtime
# leave idle as they take turns, rather than slowing them where both run (the imports, the load).
NICENESS = 10


class EngineError(RuntimeError):
    """The engine's process failed: CDK's own plugin runs in the runtime instead."""


def bundled_tarball() -> Path | None:
    """aws-cdk-lib's npm tarball inside its Python package, which jsii's runtime loads: found without
    importing ``aws_cdk`` (that import is the load)."""
    spec = importlib.util.find_spec("aws_cdk")
    for location in (spec.submodule_search_locations or []) if spec else []:
        found = sorted((Path(location) / "_jsii").glob(f"{PACKAGE}@*.jsii.tgz"))
        if len(found) == 1:
            return found[0]
    return None


def _home() -> str | None:
    try:
        home = os.path.expanduser("~")  # HOME, else the user's entry (as Node.js's os.homedir())
    except (KeyError, RuntimeError):
        return None
    return home if os.path.isabs(home) else None


def _cache_root(environ: Mapping[str, str], platform: str = sys.platform) -> Path | None:
    """jsii's package cache: ``JSII_RUNTIME_PACKAGE_CACHE_ROOT``, else the user's cache directory as
    jsii's runtime chooses it (@jsii/kernel's ``defaultCacheRoot``); None when jsii's cache is off."""
    if environ.get("JSII_RUNTIME_PACKAGE_CACHE", "enabled").lower() != "enabled":
        return None
    if environ.get("JSII_RUNTIME_PACKAGE_CACHE_ROOT"):
        return Path(environ["JSII_RUNTIME_PACKAGE_CACHE_ROOT"])
    home = environ["HOME"] if os.path.isabs(environ.get("HOME", "")) else _home()
    if platform == "win32":
        local = environ.get("LOCALAPPDATA")
        base = local if local and os.path.isabs(local) else (home and os.path.join(home, "AppData", "Local"))
        return Path(base, "AWS", "jsii", "package-cache") if base else _tmpdir_root()
    if home is None:
        return _tmpdir_root()
    if platform == "darwin":
        return Path(home, "Library", "Caches", "com.amazonaws.jsii", "package-cache")
    return Path(home, ".cache", "aws", "jsii", "package-cache")


def _tmpdir_root() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else None
    return Path(tempfile.gettempdir(), "aws-jsii-package-cache" + (f"-{uid}" if uid is not None else ""))


def _private(root: Path) -> bool:
    """What jsii's runtime requires of its default cache root before it runs code from it
    (@jsii/kernel's ``verifyExistingDirectoryIsPrivate``): the user's own directory, not a symbolic link,
    that no one else can write, under directories of the user or root that no one else can write
    (unless sticky). Without user ids (Windows) there is nothing to check, as for jsii."""
    if not hasattr(os, "getuid"):
        return True
    uid, others = os.getuid(), stat.S_IWGRP | stat.S_IWOTH
    try:
        found = os.lstat(root)
        if not stat.S_ISDIR(found.st_mode) or found.st_uid != uid or found.st_mode & others:
            return False
        for parent in Path(os.path.abspath(root)).parents:
            found = os.lstat(parent)
            if stat.S_ISLNK(found.st_mode) or found.st_uid not in (uid, 0):
                return False
            if found.st_mode & others and not found.st_mode & stat.S_ISVTX:
                return False
    except OSError:
        return False
    return True


def _entry_part(key: str) -> list[str]:
    """A cache entry key's path segments, as jsii's ``DiskCache.entry`` makes them."""
    return re.split(r"[\\/]+", re.sub(r"[^@a-z0-9_.\\/-]+", "_", key))


def package_directory(tarball: Path | None = None, environ: Mapping[str, str] = os.environ) -> tuple[Path, str] | None:
    """The directory the jsii runtime extracted aws-cdk-lib into, and its version; None if there is none.

    jsii's runtime keeps each package it loads at ``<cache root>/<name>/<version>/<digest>``, the digest
    being the SHA-256 of the tarball followed by NUL + name and NUL + version (@jsii/kernel's
    ``extractViaCache`` and ``digestFile``, jsii 1.142): the same bytes give the same directory, so
    the engine runs the aws-cdk-lib the runtime runs. An entry counts once jsii has marked it complete;
    the default cache root only if jsii would trust it. tests/test_validation_engine.py checks this
    against the suite's own runtime, so that a jsii upgrade which moves it is noticed.
    """
    tarball = tarball or bundled_tarball()
    root = _cache_root(environ)
    match = re.fullmatch(rf"{re.escape(PACKAGE)}@(.+)\.jsii\.tgz", tarball.name) if tarball else None
    if tarball is None or root is None or match is None:
        return None
    if not environ.get("JSII_RUNTIME_PACKAGE_CACHE_ROOT") and not _private(root):
        return None
    version = match.group(1)
    digest = hashlib.sha256()
    with tarball.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    for part in (PACKAGE, version):
        digest.update(b"\0" + part.encode())
    directory = root.joinpath(*[p for key in (PACKAGE, version, digest.hexdigest()) for p in _entry_part(key)])
    marker = directory / COMPLETE_MARKER
    if not marker.is_file() or marker.is_symlink() or not directory.joinpath(*PLUGIN_MODULE).is_file():
        return None
    return directory, version


class EngineProcess:
    """infra/validation-engine.js, running: :meth:`ready` waits for its engine, :meth:`validate` asks once.

    Every failure of the process (it exits, hangs, answers nonsense) is an :class:`EngineError`."""

    def __init__(self, directory: Path, version: str) -> None:
        node = os.environ.get("JSII_NODE") or "node"
        nice = shutil.which("nice") if os.name == "posix" else None
        # nice(1) lowers every thread of it (Linux sets a priority per thread); elsewhere the script
        # lowers its own process. Its output goes to this process only (stderr to a file, read if it
        # fails): a stream shared with the CDK CLI would keep the CLI waiting for this process's exit.
        command = [*([nice, "-n", str(NICENESS)] if nice else []), node, str(SCRIPT), str(directory), version]
        environ = {k: v for k, v in os.environ.items() if k != "CDK_PERF_COUNTERS_FILE"}
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 (the process's stderr, for as long as it runs)
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errors, env=environ
        )
        self._lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._reader, name="cloud-ops-validation-engine-reader", daemon=True).start()
        self._hello: dict[str, Any] | None = None
        self._asked = False

    @property
    def pid(self) -> int:
        return self._process.pid

    def _reader(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if line.startswith(PREFIX.encode()):
                self._lines.put(line[len(PREFIX) :])
        self._lines.put(b"")

    def _read(self, seconds: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=seconds)
        except queue.Empty:
            self.stop()
            raise EngineError(f"no answer in {seconds:.0f} s") from None
        try:
            message: dict[str, Any] = json.loads(line) if line else {}
        except (ValueError, UnicodeError) as error:
            self.stop()
            raise EngineError(f"an answer it could not read: {error}") from error
        if "error" in message or not message:
            self.stop()
            self._errors.seek(0)
            errors = self._errors.read().decode("utf-8", "replace").strip()[-2000:]
            raise EngineError(message.get("error") or f"it exited ({self._process.returncode}): {errors}")
        return message

    def ready(self) -> dict[str, Any]:
        """``{"name", "version", "ruleIds"}`` of the plugin, once its engine has started."""
        if self._hello is None:
            hello = self._read(READY_SECONDS)
            if not isinstance(hello.get("name"), str) or not isinstance(hello.get("ruleIds"), list):
                self.stop()
                raise EngineError(f"an unexpected answer: {hello}")
            self._hello = hello
        return self._hello

    def validate(self, stack_templates: list[dict[str, str]]) -> dict[str, Any]:
        """The plugin's report for CDK's ``stackTemplates``: once; the process ends after it."""
        self.ready()
        if self._asked:
            raise EngineError("asked twice")
        self._asked = True
        assert self._process.stdin is not None
        try:
            self._process.stdin.write((json.dumps({"stackTemplates": stack_templates}) + "\n").encode())
            self._process.stdin.flush()
        except OSError as error:
            self.stop()
            raise EngineError(f"it stopped reading: {error}") from error
        answer = self._read(VALIDATE_SECONDS)
        self.stop()
        report = answer.get("report")
        if not isinstance(report, dict) or not isinstance(report.get("violations"), list):
            raise EngineError(f"an unexpected answer: {answer}")
        return report

    def stop(self) -> None:
        """Ends the process at once: it holds no state, and freeing its heap would only take time."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        if self._process.stdin is not None and not self._process.stdin.closed:
            with contextlib.suppress(OSError):  # the process had stopped reading
                self._process.stdin.close()


class WarmingEngine:
    """The validation engine starting in its own process, and the assemblies loading into the runtime:
    two threads, so that finding the engine's copy of aws-cdk-lib (hashing its tarball) does not delay
    the load, which the app's own imports wait for."""

    def __init__(self) -> None:
        self._engine: EngineProcess | None = None
        self._plugin: IPolicyValidationPlugin | None = None
        self._error: BaseException | None = None
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
        except Exception as error:  # the check runs in the runtime instead (below)
            print(f"note: CDK's template validation runs in the jsii runtime: {error}", file=sys.stderr)

    def _load(self) -> None:
        try:
            # The assemblies (jsii "load" calls): aws-cdk-lib with its dependencies, and cdk-nag.
            import cdk_nag  # noqa: F401
            from aws_cdk import CloudFormationValidatePlugin

            self._threads[0].join()
            if self._engine is None:
                # No copy for the engine's process (the first synth after an install: the runtime has just
                # made it; jsii's cache turned off or not private): CDK's own plugin, in the runtime.
                self._plugin = CloudFormationValidatePlugin()
        except BaseException as error:  # re-raised on the main thread by plugin()
            self._error = error

    def plugin(self) -> IPolicyValidationPlugin:
        """Waits for the assemblies (not for the engine); from here on the caller may use jsii again."""
        for thread in self._threads:
            thread.join()
        if self._error is not None:
            raise self._error
        if self._engine is not None:
            from infra.validation_proxy import ValidationProxy

            return ValidationProxy(self._engine)
        assert self._plugin is not None
        return self._plugin

    def close(self) -> None:
        """Ends the engine's process if the synth did not get to use it (an error before validation)."""
        self._threads[0].join()
        if self._engine is not None:
            self._engine.stop()


def start() -> WarmingEngine | None:
    """Starts the engine and loads the app's jsii assemblies, beside the caller.

    None when the synth runs without CDK's validation (``cdk synth --no-validation`` sets
    ``CDK_VALIDATION=false``): registering a plugin explicitly would turn it back on.
    """
    if os.environ.get("CDK_VALIDATION") == "false":
        return None
    return WarmingEngine()
