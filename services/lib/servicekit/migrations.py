"""SQL migrations of one service, in its own schema, as its own user, once per deploy.

Every replica runs this at start; a PostgreSQL advisory lock makes the others wait while one applies
what is new, and each file is applied in its own transaction and recorded in ``schema_migrations``.
Connected to a read-only copy (a region of a global database that is not the writer's, whose writes
are forwarded, DDL excepted), it applies nothing: it waits until the writer's region has applied every
file and the copy has them.
Files are ``NNN_name.sql`` in the service's ``migrations/`` directory, applied in name order, never
edited once deployed (a change is a new file). Unqualified names land in the user's schema: the
platform made it the role's ``search_path`` (docs/decisions/0009-database-users.md).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

log = logging.getLogger(__name__)

_FILE = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")


def pending_files(directory: Path) -> list[Path]:
    files = sorted(p for p in directory.iterdir() if p.suffix == ".sql")
    bad = [p.name for p in files if not _FILE.match(p.name)]
    if bad:
        raise ValueError(f"migration files must be named NNN_name.sql: {', '.join(bad)}")
    return files


def migrate(
    conn: psycopg.Connection[Any],
    directory: Path,
    *,
    wait_seconds: float = 120.0,
    sleep: Callable[[float], object] = time.sleep,
) -> list[str]:
    """Applies the files of ``directory`` not yet recorded; returns the names applied. ``conn`` is in
    autocommit mode (the lock is held across the transactions)."""
    files = pending_files(directory)
    schema = conn.execute("SELECT current_schema()").fetchone()
    if schema is None or schema[0] is None:
        raise RuntimeError("the user has no schema on its search_path: was it created by the platform?")
    recovering = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    if recovering is not None and recovering[0]:
        _wait_for_the_writer(conn, [p.name for p in files], wait_seconds, sleep)
        return []
    lock_key = f"migrations:{schema[0]}"
    conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (lock_key,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = _recorded(conn)
        applied = []
        for path in files:
            if path.name in done:
                continue
            with conn.transaction():
                conn.execute(path.read_text(encoding="utf-8").encode())
                conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (path.name,))
            log.info("migration applied", extra={"migration": path.name, "schema": schema[0]})
            applied.append(path.name)
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock_key,))


def _recorded(conn: psycopg.Connection[Any]) -> set[str]:
    """The names ``schema_migrations`` lists (applied here, or by the writer's region and replicated)."""
    return {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}


def _wait_for_the_writer(
    conn: psycopg.Connection[Any], names: list[str], wait_seconds: float, sleep: Callable[[float], object]
) -> None:
    """Until ``schema_migrations`` here lists every one of ``names`` (the writer's region applied them and
    they replicated), checking every 5 seconds for ``wait_seconds``."""
    missing = set(names)
    for _ in range(max(1, int(wait_seconds // 5))):
        try:
            missing = set(names) - _recorded(conn)
        except psycopg.errors.UndefinedTable:
            missing = set(names)
        if not missing:
            return
        sleep(5)
    raise RuntimeError(
        f"a read-only copy of the database: waiting for the writer's region to apply {', '.join(sorted(missing))}"
    )
