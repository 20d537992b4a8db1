"""The HTTP skeleton every service runs: liveness, readiness, JSON access logs, graceful shutdown.

- ``/healthz`` (liveness): the process serves requests; it never looks at the data stores, so a
  database outage makes pods unready, not restarted.
- ``/readyz`` (readiness): each of the service's checks (its data stores answer) passed; 503 with
  the failing ones otherwise, and from the moment shutdown starts.
- SIGTERM (Kubernetes, after the chart's preStop pause): uvicorn stops accepting connections,
  lets requests in flight finish (``SHUTDOWN_SECONDS``, inside the chart's 45-second grace period),
  then the ``stop`` hooks run (pools closed, worker loop joined) and the process exits 0.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from servicekit.config import ConfigError, Env, ServiceConfig
from servicekit.logs import configure

log = logging.getLogger("servicekit.http")

# Requests in flight may take this long after SIGTERM; with the chart's 15-second preStop pause, inside
# its terminationGracePeriodSeconds of 45.
SHUTDOWN_SECONDS = 20
# The Application Load Balancer's connection idle timeout, which the chart's ingress pins (its default).
LOAD_BALANCER_IDLE_SECONDS = 60


@dataclass
class Lifecycle:
    """What a service does at start and stop, and what its readiness checks."""

    start: list[Callable[[], None]] = field(default_factory=list)
    stop: list[Callable[[], None]] = field(default_factory=list)
    checks: dict[str, Callable[[], None]] = field(default_factory=dict)
    # What /healthz checks besides the process serving: a failure has the kubelet restart the container
    # (a stuck loop, say), so only what a restart can cure, never a data store that does not answer.
    liveness: dict[str, Callable[[], None]] = field(default_factory=dict)
    stopping: bool = False


async def _failures(checks: dict[str, Callable[[], None]]) -> dict[str, str]:
    """Each check that raised, by name, with what it raised."""
    failed: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await run_in_threadpool(check)
        except Exception as error:
            failed[name] = f"{type(error).__name__}: {error}"
    return failed


def build_app(routes: Sequence[BaseRoute], lifecycle: Lifecycle) -> Starlette:
    async def healthz(request: Request) -> Response:
        failed = await _failures(lifecycle.liveness)
        if failed:
            log.error("not alive", extra={"failed": ", ".join(sorted(failed))})
            return JSONResponse({"status": "failing", "failed": failed}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if lifecycle.stopping:
            return JSONResponse({"status": "stopping"}, status_code=503)
        failed = await _failures(lifecycle.checks)
        if failed:
            log.warning("not ready", extra={"failed": ", ".join(sorted(failed))})
            return JSONResponse({"status": "unready", "failed": failed}, status_code=503)
        return JSONResponse({"status": "ready", "checked": sorted(lifecycle.checks)})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for hook in lifecycle.start:
            await run_in_threadpool(hook)
        log.info("started")
        try:
            yield
        finally:
            lifecycle.stopping = True
            for hook in reversed(lifecycle.stop):
                try:
                    await run_in_threadpool(hook)
                except Exception:
                    log.exception("stop hook failed")
            log.info("stopped")

    async def access_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        if request.url.path not in ("/healthz", "/readyz"):
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.url.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
        return response

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/readyz", readyz), *routes],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=access_log)],
        lifespan=lifespan,
    )


Setup = Callable[[ServiceConfig, Env], tuple[list[BaseRoute], Lifecycle]]


def run(setup: Setup, env: Env | None = None) -> None:
    """Reads the configuration, logs as JSON from the first line on, and serves on 0.0.0.0:PORT until
    SIGTERM or SIGINT (uvicorn's handlers). A configuration error exits 2 with one log line naming it."""
    env = env or Env()
    try:
        config = ServiceConfig.from_env(env)
    except ConfigError as error:
        print(json.dumps({"level": "error", "message": str(error)}), flush=True)
        sys.exit(2)
    configure(service=config.name, environment=config.environment, level=config.log_level)
    try:
        routes, lifecycle = setup(config, env)
    except (ConfigError, FileNotFoundError) as error:
        log.error("configuration error", extra={"error": str(error)})
        sys.exit(2)
    uvicorn.run(
        build_app(routes, lifecycle),
        host="0.0.0.0",  # the pod's address: the kubelet's probes and the Service reach it there
        port=config.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_SECONDS,
        # Longer than the load balancer's idle timeout (ALB: 60 s): an idle connection is closed by the
        # load balancer, never by the service under a request the load balancer just sent (a 502).
        timeout_keep_alive=LOAD_BALANCER_IDLE_SECONDS + 5,
        lifespan="on",
        proxy_headers=True,
        server_header=False,
    )
