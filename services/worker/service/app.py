"""worker: claims jobs from its own ``jobs`` table (``SELECT ... FOR UPDATE SKIP LOCKED``: replicas
never run the same job) and runs them; serves only its probes (no Service, no ingress).

Job kinds are the functions in ``HANDLERS``. The worker keeps its own table tidy: it queues a
``purge`` job (done and failed jobs older than ``WORKER_RETENTION_DAYS``) when none is queued. Other
services queue work by inserting rows, once the worker's migrations grant them ``INSERT`` on ``jobs``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from starlette.routing import BaseRoute

from servicekit import jobs
from servicekit.config import DatabaseConfig, Env, ServiceConfig
from servicekit.database import Database
from servicekit.http import SHUTDOWN_SECONDS, Lifecycle, run
from servicekit.retry import with_retries

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger("worker")

Handler = Callable[[psycopg.Connection[Any], dict[str, Any]], None]


def purge(conn: psycopg.Connection[Any], payload: dict[str, Any]) -> None:
    days = int(payload.get("days", 7))
    cursor = conn.execute(
        "DELETE FROM jobs WHERE status IN ('done', 'failed') AND finished_at < now() - make_interval(days => %s)",
        (days,),
    )
    log.info("purged old jobs", extra={"deleted": cursor.rowcount, "days": days})


def echo(conn: psycopg.Connection[Any], payload: dict[str, Any]) -> None:
    log.info("echo", extra={"payload": repr(payload)})


def fail(conn: psycopg.Connection[Any], payload: dict[str, Any]) -> None:
    raise RuntimeError(str(payload.get("reason", "this job fails")))


HANDLERS: dict[str, Handler] = {"purge": purge, "echo": echo, "fail": fail}


class Loop:
    """Claims and runs one job at a time until stopped; between jobs it sleeps ``poll`` seconds when
    the queue is empty."""

    def __init__(self, database: Database, *, poll: float, retention_days: int, stuck_after: float = 600) -> None:
        self.database = database
        self.poll = poll
        self.retention_days = retention_days
        self.stuck_after = stuck_after
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="job-loop", daemon=True)
        self.last_beat = time.monotonic()

    def start(self) -> None:
        self.last_beat = time.monotonic()
        self.thread.start()

    def stop(self) -> None:
        """Finishes the job in hand, then returns (inside the chart's grace period)."""
        self.stopped.set()
        self.thread.join(timeout=SHUTDOWN_SECONDS)

    def alive(self) -> None:
        if not self.thread.is_alive():
            raise RuntimeError("the job loop stopped")

    def turning(self) -> None:
        """Liveness: the loop began a turn (a job, or a look at an empty queue) within ``stuck_after``
        seconds. A job hung on a dead connection (after a database failover, say) stops it turning; a
        restart gives the job back to the queue (its claim was its transaction's)."""
        still = time.monotonic() - self.last_beat
        if still > self.stuck_after:
            raise RuntimeError(f"the job loop has not turned for {still:.0f} s")

    def _run(self) -> None:
        while not self.stopped.is_set():
            self.last_beat = time.monotonic()
            try:
                worked = self.run_one()
            except Exception:
                log.exception("job loop error")
                worked = False
            if not worked:
                self.stopped.wait(self.poll)

    def run_one(self) -> bool:
        """Runs one job if there is one; returns whether there was."""
        with self.database.pool.connection() as conn, conn.transaction():
            job = jobs.claim(conn)
            if job is None:
                self._schedule_purge(conn)
                return False
            handler = HANDLERS.get(job.kind)
            started = time.perf_counter()
            try:
                if handler is None:
                    raise LookupError(f"no handler for job kind {job.kind!r}")
                with conn.transaction():  # a savepoint: a failed job's writes are undone, its failure recorded
                    handler(conn, job.payload)
            except Exception as error:
                jobs.fail(conn, job, f"{type(error).__name__}: {error}")
                log.warning(
                    "job failed", extra={"job": job.id, "kind": job.kind, "attempt": job.attempts, "error": str(error)}
                )
            else:
                jobs.complete(conn, job)
                log.info(
                    "job done",
                    extra={
                        "job": job.id,
                        "kind": job.kind,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    },
                )
            return True

    def _schedule_purge(self, conn: psycopg.Connection[Any]) -> None:
        queued = conn.execute("SELECT 1 FROM jobs WHERE kind = 'purge' AND status = 'queued' LIMIT 1").fetchone()
        if queued is None:
            conn.execute(
                "INSERT INTO jobs (kind, payload, run_after) VALUES ('purge', %s, now() + interval '1 hour')",
                (Jsonb({"days": self.retention_days}),),
            )


def setup(service: ServiceConfig, env: Env) -> tuple[list[BaseRoute], Lifecycle]:
    database = Database(DatabaseConfig.from_env(env))
    loop = Loop(
        database,
        poll=float(env.text("WORKER_POLL_SECONDS", "2")),
        retention_days=env.integer("WORKER_RETENTION_DAYS", 7),
        stuck_after=float(env.integer("WORKER_STUCK_SECONDS", 600)),
    )

    def start() -> None:
        database.open()
        applied = with_retries(lambda: database.migrate(MIGRATIONS), what="migrations")
        log.info("schema up to date", extra={"applied": ", ".join(applied) or "none"})
        loop.start()

    lifecycle = Lifecycle(
        start=[start],
        # Stop hooks run in reverse: the loop first (its job finishes), then the pool.
        stop=[database.close, loop.stop],
        checks={"database": database.ping, "job loop": loop.alive},
        liveness={"job loop": loop.turning},
    )
    return [], lifecycle


def main() -> None:
    run(setup)
