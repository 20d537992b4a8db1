"""A job queue in PostgreSQL: any number of workers claim jobs with ``SELECT ... FOR UPDATE SKIP
LOCKED``, so that no job is run by two of them and none waits on another's lock.

A job is claimed, run and marked done or failed in one transaction that holds its row lock: if the
worker dies, the transaction rolls back and the job is queued again as it was. The table (``jobs``, in
the worker's own schema) comes from the worker's migrations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int


def enqueue(conn: psycopg.Connection[Any], kind: str, payload: dict[str, Any] | None = None) -> int:
    row = conn.execute(
        "INSERT INTO jobs (kind, payload) VALUES (%s, %s) RETURNING id", (kind, Jsonb(payload or {}))
    ).fetchone()
    assert row is not None
    return int(row[0])


def claim(conn: psycopg.Connection[Any]) -> Job | None:
    """Takes the oldest runnable job (in the caller's transaction: the row stays locked until it
    commits), or None."""
    row = conn.execute(
        "SELECT id, kind, payload, attempts FROM jobs"
        " WHERE status = 'queued' AND run_after <= now()"
        " ORDER BY run_after, id LIMIT 1 FOR UPDATE SKIP LOCKED"
    ).fetchone()
    if row is None:
        return None
    return Job(id=row[0], kind=row[1], payload=row[2], attempts=row[3] + 1)


def complete(conn: psycopg.Connection[Any], job: Job) -> None:
    conn.execute(
        "UPDATE jobs SET status = 'done', attempts = %s, finished_at = now(), error = NULL WHERE id = %s",
        (job.attempts, job.id),
    )


def fail(conn: psycopg.Connection[Any], job: Job, error: str) -> None:
    """Back to the queue with an exponential delay, or ``failed`` after MAX_ATTEMPTS."""
    if job.attempts >= MAX_ATTEMPTS:
        conn.execute(
            "UPDATE jobs SET status = 'failed', attempts = %s, finished_at = now(), error = %s WHERE id = %s",
            (job.attempts, error[:2000], job.id),
        )
    else:
        conn.execute(
            "UPDATE jobs SET attempts = %s, error = %s, run_after = now() + make_interval(secs => %s) WHERE id = %s",
            (job.attempts, error[:2000], 2**job.attempts, job.id),
        )


def status_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    return {str(s): int(n) for s, n in conn.execute("SELECT status, count(*) FROM jobs GROUP BY status")}
