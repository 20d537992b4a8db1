"""api: ``/<service>/items``, read through the cache (Valkey) from the database (Aurora PostgreSQL),
both as this service's own IAM-authenticated users. Its routes start with its name (``/api/...``),
the path its Helm values route to it (``ingress.path``), so that it shares an ALB with a service at
``/``."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from servicekit.cache import Cache
from servicekit.config import CacheConfig, DatabaseConfig, Env, ServiceConfig
from servicekit.database import Database
from servicekit.http import Lifecycle, run
from servicekit.retry import with_retries

MIGRATIONS = Path(__file__).parent / "migrations"
CACHE_TTL_SECONDS = 300
KEY = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
MAX_BODY_BYTES = 64 * 1024

log = logging.getLogger("api")


class Items:
    """Items in the database, read through the cache; a write goes to the database, then replaces the
    cached copy."""

    def __init__(self, database: Database, cache: Cache) -> None:
        self.database = database
        self.cache = cache

    def get(self, key: str) -> tuple[Any | None, bool]:
        """(value or None, whether it came from the cache)."""
        try:
            cached = self.cache.get_json(f"item:{key}")
        except Exception:
            log.warning("cache read failed, reading the database", exc_info=True)
            cached = None
        if cached is not None:
            return cached["value"], True
        with self.database.pool.connection() as conn:
            row = conn.execute("SELECT value FROM items WHERE key = %s", (key,)).fetchone()
        if row is None:
            return None, False
        self._cache(key, row[0])
        return row[0], False

    def put(self, key: str, value: Any) -> None:
        with self.database.pool.connection() as conn:
            conn.execute(
                "INSERT INTO items (key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()",
                (key, Jsonb(value)),
            )
        self._cache(key, value)

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        with self.database.pool.connection() as conn:
            rows = conn.execute(
                "SELECT key, value, updated_at FROM items ORDER BY updated_at DESC LIMIT %s", (limit,)
            ).fetchall()
        return [{"key": k, "value": v, "updated_at": u.isoformat()} for k, v, u in rows]

    def _cache(self, key: str, value: Any) -> None:
        try:
            self.cache.set_json(f"item:{key}", {"value": value}, CACHE_TTL_SECONDS)
        except Exception:
            # The database has the value; the next read fills the cache again.
            log.warning("cache write failed", exc_info=True)


def setup(service: ServiceConfig, env: Env) -> tuple[list[BaseRoute], Lifecycle]:
    database = Database(DatabaseConfig.from_env(env))
    cache = Cache(CacheConfig.from_env(service.name, env))
    items = Items(database, cache)

    def start() -> None:
        database.open()
        applied = with_retries(lambda: database.migrate(MIGRATIONS), what="migrations")
        log.info("schema up to date", extra={"applied": ", ".join(applied) or "none"})

    lifecycle = Lifecycle(
        start=[start],
        stop=[database.close, cache.close],
        checks={"database": database.ping, "cache": cache.ping},
    )

    async def list_items(request: Request) -> Response:
        return JSONResponse({"items": await run_in_threadpool(items.recent)})

    async def get_item(request: Request) -> Response:
        key = request.path_params["key"]
        if not KEY.match(key):
            return JSONResponse({"error": "key: 1-100 of A-Z a-z 0-9 _ . -"}, status_code=400)
        value, hit = await run_in_threadpool(items.get, key)
        if value is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse({"key": key, "value": value}, headers={"X-Cache": "hit" if hit else "miss"})

    async def put_item(request: Request) -> Response:
        key = request.path_params["key"]
        if not KEY.match(key):
            return JSONResponse({"error": "key: 1-100 of A-Z a-z 0-9 _ . -"}, status_code=400)
        # Read no further than the limit: a large body is refused, never buffered whole.
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return JSONResponse({"error": "body too large"}, status_code=413)
        try:
            value = json.loads(body)["value"]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": 'body: {"value": <any JSON>}'}, status_code=400)
        await run_in_threadpool(items.put, key, value)
        return JSONResponse({"key": key, "value": value})

    prefix = f"/{service.name}"
    routes: list[BaseRoute] = [
        Route(f"{prefix}/items", list_items, methods=["GET"]),
        Route(f"{prefix}/items/{{key}}", get_item, methods=["GET"]),
        Route(f"{prefix}/items/{{key}}", put_item, methods=["PUT"]),
    ]
    return routes, lifecycle


def main() -> None:
    run(setup)
