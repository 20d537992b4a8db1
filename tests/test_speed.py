"""What the synth's speed rests on stays true (the figures themselves are `make bench`'s, not a test's).

- app.py loads the jsii assemblies on a background thread (and starts CDK's validation engine, in a
  process of its own: tests/test_validation_engine.py) and meanwhile runs ``prepare()``; the jsii
  runtime is not thread safe, so ``prepare()`` must make no jsii call, for every environment the user
  has (a module-level jsii call added to any module it imports would break this), and only that thread
  may call the runtime meanwhile.
- the engine registered by app.py is CDK's own check, not an extra or a lesser one: the CLI form's
  validation report names the same plugin (tests/test_deploy_path.py runs that form).
- the jsii runtime runs with the Node.js flags of infra/jsii_node.py, in ``cdk synth`` (app.py) and in
  this suite, on the Node.js it would have run; as one process (infra/jsii-direct.js): jsii's kernel on
  jsii's pipes, its console wrapped as jsii's relay wraps it, the relay's own check of the Node.js
  version first, and jsii's two processes wherever the kernel's channel cannot be moved.
- the code cache that runtime preloads (infra/jsii-code-cache.js) changes nothing a module sees, is
  used on the next run, and is left alone where it cannot be trusted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

import app
from infra import jsii_node
from infra.config.project import REPOSITORY
from scripts.forms import app_command
from tests.synth import ROOT

CODE_CACHE = jsii_node.LAUNCHER.with_name("jsii-code-cache.js")
DIRECT = jsii_node.LAUNCHER.with_name("jsii-direct.js")

# Runs in a fresh interpreter: the engine starts, then every send to the jsii runtime from the main
# thread is recorded while prepare() runs for each environment. jsii's process module is imported (and
# patched) before the engine's thread starts: entering jsii's package through one of its inner modules
# while that thread imports it from the top is a circular import across two threads, which Python
# answers with "partially initialized module" (app.py's own imports enter through aws_cdk, as the
# thread does, and wait for it).
_WINDOW = textwrap.dedent(
    """
    import json, sys, threading
    sys.path.insert(0, {root!r})
    from jsii._kernel.providers import process
    from infra import validation_engine
    engine = validation_engine.start()
    calls, senders = [], set()
    original = process._NodeProcess.send
    def send(self, request, response_type):
        senders.add(threading.current_thread().name)
        if threading.current_thread() is threading.main_thread():
            calls.append(type(request).__name__)
        return original(self, request, response_type)
    process._NodeProcess.send = send
    import app
    for environment in {environments!r}:
        app.prepare({{"env": environment}}.get)
    prepared_calls = list(calls)
    engine.plugin()
    engine.close()
    print(json.dumps({{"calls": prepared_calls, "engine": engine is not None, "senders": sorted(senders)}}))
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
    # The one thread that loads the assemblies (and, without the engine's process, starts CDK's plugin).
    assert outcome["senders"] == ["cloud-ops-jsii-load"]


def test_no_engine_is_started_when_the_cli_turns_validation_off() -> None:
    code = "from infra import validation_engine; print(validation_engine.start() is None)"
    result = _run(code, CDK_VALIDATION="false")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "True"


def _node_processes(pid: int) -> list[list[str]]:
    """The command lines of ``pid`` and of its children (Linux's /proc)."""
    lines = [Path(f"/proc/{pid}/cmdline").read_text(encoding="utf-8").rstrip("\0").split("\0")]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="utf-8").split():
        lines += _node_processes(int(child))
    return lines


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the runtime's command line from /proc")
def test_the_suites_jsii_runtime_is_one_process_with_the_apps_node_flags() -> None:
    import aws_cdk  # noqa: F401  (the runtime runs from the first import on)
    import jsii._runtime

    runtime = jsii._runtime.kernel.provider._process._process  # type: ignore[attr-defined]
    processes = _node_processes(runtime.pid)
    # jsii_node.FLAGS unless CLOUD_OPS_JSII_NODE_FLAGS says otherwise; the flags jsii's relay gives its kernel.
    flags = os.environ["CLOUD_OPS_JSII_NODE_FLAGS"].split()
    if os.environ.get("CLOUD_OPS_JSII_CODE_CACHE") != "off":
        flags += ["--require", str(CODE_CACHE)]
    kernel_flags = [*flags, "--max-old-space-size=4069", "--preserve-symlinks"]
    if os.environ.get("CLOUD_OPS_JSII_DIRECT") == "off" or os.environ.get("JSII_DEBUG"):
        # As jsii runs it: its relay, and the kernel the relay starts.
        relay, kernel = processes
        assert relay[1:-1] == kernel_flags[:-1], relay
        assert kernel[1:-1] == kernel_flags, kernel
        assert kernel[-1].endswith("/lib/program.js"), kernel
        return
    # The kernel itself (infra/jsii-direct.js), no relay between it and this process.
    assert len(processes) == 1, processes
    (command,) = processes
    assert command[-2] == str(DIRECT), command
    assert command[-1].endswith("/bin/jsii-runtime.js"), command
    assert command[1:-2] == kernel_flags, command


def test_the_launcher_starts_the_node_jsii_would_have_started_with_the_flags(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("JSII_NODE", "CLOUD_OPS_JSII_NODE"))}
    # A Node.js of the user's own (JSII_NODE), standing in for a real one: prints what it was given.
    node = tmp_path / "node"
    node.write_text('#!/bin/sh\necho "$@"\n', encoding="utf-8")
    node.chmod(0o755)
    environ["JSII_NODE"] = str(node)
    jsii_node.configure(environ)
    assert environ["JSII_NODE"] == str(jsii_node.LAUNCHER)
    again = dict(environ)
    jsii_node.configure(again)  # a process started by a configured one
    assert again == environ
    command = [environ["JSII_NODE"], "--max-old-space-size=4069", "runtime.js"]
    given = ["--max-old-space-size=4069", "runtime.js"]
    preload = ["--require", str(CODE_CACHE)]
    ran = subprocess.run(command, env=environ, capture_output=True, text=True, check=True)
    assert ran.stdout.split() == [*jsii_node.FLAGS.split(), *preload, *given]
    # Other flags, or none, by CLOUD_OPS_JSII_NODE_FLAGS; no code cache by CLOUD_OPS_JSII_CODE_CACHE=off.
    no_flags = {**environ, "CLOUD_OPS_JSII_NODE_FLAGS": ""}
    ran = subprocess.run(command, env=no_flags, capture_output=True, text=True, check=True)
    assert ran.stdout.split() == [*preload, *given]
    no_cache = {**environ, "CLOUD_OPS_JSII_CODE_CACHE": "off"}
    ran = subprocess.run(command, env=no_cache, capture_output=True, text=True, check=True)
    assert ran.stdout.split() == [*jsii_node.FLAGS.split(), *given]


def test_a_launcher_that_cannot_run_leaves_jsii_as_it_was(tmp_path: Path) -> None:
    copy = tmp_path / "jsii-node"
    copy.write_bytes(jsii_node.LAUNCHER.read_bytes())  # as a copy that lost its executable bit
    environ = {"JSII_NODE": "/opt/node/bin/node"}
    jsii_node.configure(environ, launcher=copy)
    assert environ == {"JSII_NODE": "/opt/node/bin/node"}


# A stand-in for jsii's runtime: its relay (bin/jsii-runtime.js) says it checked the Node.js version
# and starts its kernel as jsii's does (``{start}``); the kernel (lib/program.js) writes to its console,
# starts a child process on its stderr (as aws-cdk-lib starts docker) and answers one request on its
# channel with what it saw.
_RELAY = """
console.error('the relay checked the Node.js version');
const path = require('path');
const kernel = path.resolve(__dirname, '..', 'lib', 'program.js');
{start}
"""
_STARTS = {
    "as jsii does": (
        "require('child_process').spawn(process.execPath, [...process.execArgv, '--preserve-symlinks', kernel],"
        " { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });"
    ),
    # (and, when it runs as a relay, relays: requests to the kernel's channel, answers back)
    "with a flag of its own": (
        "const child = require('child_process').spawn(process.execPath,"
        " [...process.execArgv, '--no-warnings', kernel], { stdio: ['ignore', 'ignore', 'inherit', 'pipe'] });\n"
        "process.stdin.pipe(child.stdio[3]);\nchild.stdio[3].pipe(process.stdout);\n"
        "child.on('exit', (code) => process.exit(code));"
    ),
    "not at all": "",
}
_KERNEL = """
const fs = require('fs');
const channel = { readFD:3,writeFD:3 };
console.log('the kernel writes to its stdout');
process.stderr.write('and to its stderr\\n');
const child = require('child_process').spawnSync(process.execPath, ['-e', 'console.error("a child")'],
  { stdio: ['ignore', process.stderr, 'inherit'] });
const buffer = Buffer.alloc(4096);
const request = buffer.subarray(0, fs.readSync(channel.readFD, buffer)).toString();
fs.writeSync(channel.writeFD, JSON.stringify({
  request, main: require.main === module, argv: process.argv.slice(1), file: __filename, flags: process.execArgv,
  child: child.status,
}) + '\\n');
"""


def _runtime(tmp_path: Path, start: str = _STARTS["as jsii does"], kernel: str | None = _KERNEL) -> Path:
    """The stand-in runtime's relay, and its kernel beside it (none: ``kernel`` None)."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "lib").mkdir()
    (tmp_path / "bin" / "jsii-runtime.js").write_text(_RELAY.format(start=start), encoding="utf-8")
    if kernel is not None:
        (tmp_path / "lib" / "program.js").write_text(kernel, encoding="utf-8")
    return tmp_path / "bin" / "jsii-runtime.js"


def _launcher_environ(node: Path | None = None, **environ: str) -> dict[str, str]:
    """The suite's environment as configure() leaves it for a first runtime on ``node`` (else the
    suite's), without the code cache, with ``environ``."""
    names = ("JSII_NODE", "CLOUD_OPS_JSII_NODE", "JSII_DEBUG", "CLOUD_OPS_JSII_DIRECT")
    configured = {k: v for k, v in os.environ.items() if not k.startswith(names)}
    configured |= {"JSII_NODE": str(node)} if node else {"JSII_NODE": os.environ.get("CLOUD_OPS_JSII_NODE", "node")}
    jsii_node.configure(configured)
    return configured | {"CLOUD_OPS_JSII_CODE_CACHE": "off"} | environ


def _start(runtime: Path, request: str | None = "hello\n") -> subprocess.CompletedProcess[str]:
    """The launcher, as jsii starts it, on the stand-in runtime, given one request."""
    environ = _launcher_environ()
    command = [environ["JSII_NODE"], "--max-old-space-size=4069", str(runtime)]
    return subprocess.run(command, input=request, env=environ, capture_output=True, text=True, timeout=60, check=False)


def _console(stderr: str) -> list[tuple[str, str]]:
    """What the kernel wrote to its console, as jsii's Python reads it from the runtime's stderr: the
    relay's lines decoded, by key, and any other line as it came ("raw")."""
    lines: list[tuple[str, str]] = []
    for line in stderr.splitlines():
        try:
            lines += [(key, base64.b64decode(value).decode()) for key, value in json.loads(line).items()]
        except ValueError:
            lines.append(("raw", line))
    return lines


def test_jsiis_kernel_answers_on_jsiis_pipes_in_the_launchers_own_process(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    ran = _start(runtime)
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout)
    kernel = str(tmp_path / "lib" / "program.js")
    # As the relay's child would have run: the main module, with the relay's flags and --preserve-symlinks.
    assert answer == {
        "request": "hello\n",
        "main": True,
        "argv": [kernel],
        "file": kernel,
        "flags": [*jsii_node.FLAGS.split(), "--max-old-space-size=4069", "--preserve-symlinks"],
        "child": 0,
    }
    # The relay's check ran first; the kernel's console reached jsii's stderr as the relay wraps it, the
    # child's output as the child wrote it.
    assert _console(ran.stderr) == [
        ("stderr", "the relay checked the Node.js version\n"),
        ("stdout", "the kernel writes to its stdout\n"),
        ("stderr", "and to its stderr\n"),
        ("raw", "a child"),
    ]


def test_an_error_the_kernel_does_not_catch_ends_it_with_its_trace_wrapped(tmp_path: Path) -> None:
    kernel = "const channel = { readFD:3,writeFD:3 };\nthrow new Error('the kernel failed');\n"
    runtime = _runtime(tmp_path, kernel=kernel)
    ran = _start(runtime, request=None)
    assert ran.returncode == 1
    (*_, (key, message)) = _console(ran.stderr)
    assert key == "stderr"
    assert message.startswith("Uncaught exception: Error: the kernel failed\n    at "), message


def test_a_runtime_that_starts_its_kernel_otherwise_runs_as_jsii_runs_it_with_a_note(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path, start=_STARTS["with a flag of its own"])
    ran = _start(runtime)
    assert ran.returncode == 0, ran.stderr
    # The relay (with jsii's flags, not the --preserve-symlinks the launcher adds) started the kernel.
    answer = json.loads(ran.stdout)
    assert answer["request"] == "hello\n"
    assert answer["flags"] == [*jsii_node.FLAGS.split(), "--max-old-space-size=4069", "--no-warnings"]
    notes = [text for key, text in _console(ran.stderr) if key == "stderr" and "infra/jsii-direct.js" in text]
    assert len(notes) == 1, ran.stderr
    assert "starts its kernel otherwise than expected" in notes[0]
    assert "jsii's runtime runs as jsii runs it" in notes[0]


def test_a_runtime_that_starts_no_kernel_stops_with_one_message(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path, start=_STARTS["not at all"])
    ran = _start(runtime)
    assert ran.returncode == 1
    assert ran.stdout == ""
    (*_, (key, message)) = _console(ran.stderr)
    assert key == "stderr"
    assert "did not start its kernel" in message
    assert "CLOUD_OPS_JSII_DIRECT=off runs jsii's runtime as jsii does" in message


@pytest.mark.parametrize(
    ("case", "kernel", "environ"),
    [
        ("one channel", _KERNEL, {}),
        ("turned off", _KERNEL, {"CLOUD_OPS_JSII_DIRECT": "off"}),
        ("jsii's debug lines", _KERNEL, {"JSII_DEBUG": "1"}),
        ("two channels", _KERNEL + "const other = { readFD:3,writeFD:3 };\n", {}),
        ("no channel", "console.log(1);\n", {}),
        ("no kernel", None, {}),
    ],
)
def test_the_launcher_runs_the_kernel_itself_only_where_it_can_move_its_one_channel(
    case: str, kernel: str | None, environ: dict[str, str], tmp_path: Path
) -> None:
    runtime = _runtime(tmp_path, kernel=kernel)
    # A Node.js standing in for a real one: prints what it was given (in the launcher's process, on its stderr).
    node = tmp_path / "node"
    node.write_text('#!/bin/sh\necho "$@"\n', encoding="utf-8")
    node.chmod(0o755)
    env = _launcher_environ(node, **environ)
    command = [env["JSII_NODE"], "--max-old-space-size=4069", str(runtime)]
    ran = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=True)
    given = [*jsii_node.FLAGS.split(), "--max-old-space-size=4069"]
    if case == "one channel":
        assert ran.stdout.split() == [*given, "--preserve-symlinks", str(DIRECT), str(runtime)]
    else:
        assert ran.stdout.split() == [*given, str(runtime)]


def test_cdk_synth_configures_the_runtime_before_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JSII_NODE", raising=False)
    monkeypatch.delenv("CLOUD_OPS_JSII_NODE", raising=False)
    monkeypatch.delenv("CLOUD_OPS_JSII_NODE_FLAGS", raising=False)
    seen: dict[str, str] = {}

    def main() -> int:
        seen.update(os.environ)
        return 0

    def leave(code: int) -> None:
        raise SystemExit(code)

    monkeypatch.setattr(app, "main", main)
    monkeypatch.setattr(os, "_exit", leave)
    # run_from_cli points tempfile at a scratch directory it removes: put it back afterwards.
    monkeypatch.setattr(tempfile, "tempdir", tempfile.tempdir)
    with pytest.raises(SystemExit):
        app.run_from_cli()
    assert seen["JSII_NODE"] == str(jsii_node.LAUNCHER)
    assert seen["CLOUD_OPS_JSII_NODE_FLAGS"] == jsii_node.FLAGS


def test_a_wrong_argument_type_fails_with_or_without_jsiis_python_side_checks() -> None:
    """cdk.json runs app.py under ``python -O``: jsii's generated bindings check every argument's type in
    Python only under ``__debug__`` (about 0.4 s of a synth); the kernel checks each value again whatever
    the flag, and names the field, the value and the type. This process and the second one run without
    ``-O``, so the suite's syntheses have both checks."""
    wrong_type = "from aws_cdk import App, Stack\nStack(App(), 'S', description=5)\n"
    ran = subprocess.run(
        [sys.executable, "-O", "-c", wrong_type], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert ran.returncode != 0
    assert "Key 'description': Unable to deserialize value as string" in ran.stderr, ran.stderr[-2000:]
    assert "Failing value is a number" in ran.stderr
    # cdk.json's interpreter, whatever its options: one check or the other stops it.
    command = app_command()
    assert command[-1] == "app.py"
    ran = subprocess.run([*command[:-1], "-c", wrong_type], cwd=ROOT, capture_output=True, text=True, check=False)
    assert ran.returncode != 0
    assert "description" in ran.stderr, ran.stderr[-2000:]
    from aws_cdk import App, Stack

    app_here = App()
    with pytest.raises(TypeError, match="description"):
        Stack(app_here, "S", description=5)  # type: ignore[arg-type]


# A package of the kinds of module the jsii runtime loads, and those the code cache leaves to Node.js:
# run.js prints what each module saw (this, require, module, __filename, __dirname, a stack trace's
# position) and what became of the others.
_PACKAGE = {
    "a.js": (
        "exports.self = this === exports;\n"
        "exports.names = [typeof require, typeof module, __filename, __dirname];\n"
        "exports.b = require('./b').value;\n"
        "exports.resolved = require.resolve('./b');\n"
        "exports.main = require.main === module;\n"
        "exports.where = () => new Error('here').stack.split('\\n')[1];\n"
    ),
    "b.js": "module.exports = { value: 42 };\n",
    "esm.js": "export const x = 1;\n",
    "broken.js": "exports.x = ;\n",
    "dynamic.js": "exports.later = () => import('./b.js');\n",
    "run.js": (
        "const a = require('./a');\n"
        "const outcome = (name) => { try { require(name); return 'loaded'; } catch (e) {\n"
        "  return String(e.message).split('\\n').filter((l) => !l.startsWith('    at ')).join(' | '); } };\n"
        "console.log(JSON.stringify({ ...a, where: a.where(), main: require.main === module,\n"
        "  esm: outcome('./esm'), broken: outcome('./broken') }));\n"
        "require('./dynamic').later().then((b) => console.log(b.default.value));\n"
    ),
}
# The modules the cache compiles; esm.js and broken.js do not compile as CommonJS, dynamic.js has an import().
_CACHED = ("a.js", "b.js", "run.js")


def _v8_major(node: str) -> int:
    script = "console.log(process.versions.v8.split('.')[0])"
    return int(subprocess.run([node, "-e", script], capture_output=True, text=True, check=True).stdout)


def _nodes() -> list[tuple[str, int]]:
    """The Node.js the suite's jsii runtime runs and the one the project pins for users, with V8's version."""
    from scripts.forms import PINNED_NODE

    found = [shutil.which(os.environ.get("CLOUD_OPS_JSII_NODE") or "node")]
    found.append(str(PINNED_NODE) if PINNED_NODE.exists() else None)
    return [(node, _v8_major(node)) for node in dict.fromkeys(node for node in found if node)]


# The code cache needs V8 12 (Node.js 22) or later; on an older one it stays out of the way.
_NODES = _nodes()
_CACHING = [node for node, v8 in _NODES if v8 >= 12]
_NOT_CACHING = [node for node, v8 in _NODES if v8 < 12]


def _package(tmp_path: Path) -> Path:
    package = tmp_path / "package"
    package.mkdir()
    for name, source in _PACKAGE.items():
        (package / name).write_text(source, encoding="utf-8")
    return package


def _load(node: str, package: Path, cache: Path | str | None, *options: str, **environ: str) -> str:
    """run.js's output and Node.js's warnings, with the code cache in ``cache`` (None: without it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUD_OPS_JSII_CODE_CACHE")} | environ
    command = [node, *options, "run.js"]
    if cache is not None:
        env["CLOUD_OPS_JSII_CODE_CACHE"] = str(cache)
        command = [node, *options, "--require", str(CODE_CACHE), "run.js"]
    ran = subprocess.run(command, cwd=package, env=env, capture_output=True, text=True, check=False, timeout=60)
    assert ran.returncode == 0, ran.stderr
    # Node.js's own warnings (an ES module loaded by require on some versions) belong to the output too.
    return ran.stdout + re.sub(r"\(node:\d+\)", "(node)", ran.stderr)


def _entries(cache: Path) -> dict[str, tuple[int, int]]:
    """Each entry of the cache (found by its module's SHA-256): its inode and modification time."""
    return {f.name: (stat.st_ino, stat.st_mtime_ns) for f in cache.glob("*/*") for stat in [f.stat()]}


def _entry(cache: Path, source: str) -> Path:
    (directory,) = cache.iterdir()
    return directory / hashlib.sha256(source.encode()).hexdigest()


@pytest.mark.parametrize("node", _CACHING)
def test_the_code_cache_changes_nothing_a_module_sees_and_is_used_on_the_next_run(node: str, tmp_path: Path) -> None:
    package, cache = _package(tmp_path), tmp_path / "cache"
    without = _load(node, package, None)
    assert json.loads(without.splitlines()[0])["b"] == 42
    assert _load(node, package, cache) == without
    entries = _entries(cache)
    # Every CommonJS module it may compile has an entry, private to the user; the others are Node's.
    assert {_entry(cache, _PACKAGE[name]).name for name in _CACHED} == set(entries)
    (directory,) = cache.iterdir()
    assert directory.stat().st_mode & 0o777 == 0o700
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in directory.iterdir())
    # The next run reads them: V8 accepted each entry, so none was written again.
    assert _load(node, package, cache) == without
    assert _entries(cache) == entries
    # An entry V8 refuses (damaged): the module compiles as usual and the entry is replaced.
    damaged = _entry(cache, _PACKAGE["a.js"])
    damaged.write_bytes(b"not a code cache")
    assert _load(node, package, cache) == without
    assert damaged.read_bytes() != b"not a code cache"
    # Other V8 flags (which make V8 refuse an entry): a directory of their own, beside the first.
    flag = "--single-threaded-gc"
    assert _load(node, package, cache, flag) == _load(node, package, None, flag)
    assert len(list(cache.iterdir())) == 2


@pytest.mark.parametrize("node", _CACHING)
def test_the_code_cache_is_not_used_where_others_may_write_or_when_turned_off(node: str, tmp_path: Path) -> None:
    package = _package(tmp_path)
    without = _load(node, package, None)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)  # whatever the umask
    assert _load(node, package, shared / "cache") == without
    assert _entries(shared / "cache") == {}
    # The same through a symbolic link from a directory of the user's: what counts is where it leads.
    (tmp_path / "link").symlink_to(shared / "cache")
    assert _load(node, package, tmp_path / "link") == without
    assert _entries(shared / "cache") == {}
    assert _load(node, package, tmp_path / "covered", NODE_V8_COVERAGE=str(tmp_path / "coverage")) == without
    assert _entries(tmp_path / "covered") == {}
    assert _load(node, package, "off") == without
    assert not (package / "off").exists()
    # A directory that cannot be made: under a file, or where every new entry is refused (Linux's /proc,
    # where a recursive mkdir retries for ever).
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    assert _load(node, package, tmp_path / "a-file" / "cache") == without
    if Path("/proc/self").is_dir():
        assert _load(node, package, "/proc/no-such-directory/cache") == without


@pytest.mark.parametrize("node", _NOT_CACHING)
def test_node_20_loads_every_module_itself(node: str, tmp_path: Path) -> None:
    package, cache = _package(tmp_path), tmp_path / "cache"
    assert _load(node, package, cache) == _load(node, package, None)
    assert _entries(cache) == {}


@pytest.mark.parametrize("node", _CACHING)
def test_a_run_that_writes_an_entry_removes_those_unused_for_30_days(node: str, tmp_path: Path) -> None:
    package, cache = _package(tmp_path), tmp_path / "cache"
    _load(node, package, cache)
    day = 24 * 3600
    now = time.time()
    old = _entry(cache, "a module no longer used")
    old.write_bytes(b"x")
    os.utime(old, (now - 31 * day, now - 31 * day))
    used = _entry(cache, _PACKAGE["b.js"])
    os.utime(used, (now - 2 * day, now - 2 * day))
    _entry(cache, _PACKAGE["a.js"]).unlink()  # this run writes it again
    _load(node, package, cache)
    assert not old.exists()
    assert _entry(cache, _PACKAGE["a.js"]).exists()
    # An entry used is kept fresh (touched at most once a day).
    assert used.stat().st_mtime > now - day
