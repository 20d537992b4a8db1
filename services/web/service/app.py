"""web: the front page, from the api's ``/<api>/items``, called through the api's cluster Service
(``http://<api>.<api>-<environment>.svc.cluster.local``: the chart's Service listens on port 80).

The api's address follows from the environment the chart sets (``ENVIRONMENT``) and the name of the
service to call (``API_SERVICE``, default ``api``; ``API_URL`` overrides the whole address, for a
local run). web has no data store: it is ready while it runs, so that an api outage shows on the page
instead of taking web out of its load balancer too.
"""

from __future__ import annotations

import html
import json
import logging
import urllib.error
import urllib.request
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from servicekit.config import ConfigError, Env, ServiceConfig
from servicekit.http import Lifecycle, run

log = logging.getLogger("web")
TIMEOUT_SECONDS = 3


def api_items_url(service: ServiceConfig, env: Env) -> str:
    """The api's items, through its cluster Service (whose port is 80), or under ``API_URL``."""
    name = env.text("API_SERVICE", "api")
    base = env.optional("API_URL") or f"http://{name}.{name}-{service.environment}.svc.cluster.local"
    return f"{base.rstrip('/')}/{name}/items"


def fetch_items(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # http(s), checked in setup
        document = json.load(response)
    return list(document["items"])


def page(service: ServiceConfig, items: list[dict[str, Any]] | None, error: str | None) -> str:
    if items is None:
        body = f"<p class=error>The api did not answer: {html.escape(error or '')}</p>"
    elif not items:
        body = '<p>No items yet: <code>PUT /&lt;api&gt;/items/&lt;key&gt;</code> with <code>{"value": ...}</code>.</p>'
    else:
        rows = "".join(
            f"<tr><td>{html.escape(str(i['key']))}</td><td><code>{html.escape(json.dumps(i['value']))}</code></td>"
            f"<td>{html.escape(str(i['updated_at']))}</td></tr>"
            for i in items
        )
        body = f"<table><tr><th>key</th><th>value</th><th>updated</th></tr>{rows}</table>"
    title = f"{html.escape(service.name)} ({html.escape(service.environment)})"
    head = f"<head><meta charset=utf-8><title>{title}</title></head>"
    return f"<!doctype html><html>{head}<body><h1>{title}</h1>{body}</body></html>"


def setup(service: ServiceConfig, env: Env) -> tuple[list[BaseRoute], Lifecycle]:
    url = api_items_url(service, env)
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"API_URL: {url!r} is not an http(s) address")

    async def front_page(request: Request) -> Response:
        try:
            items: list[dict[str, Any]] | None = await run_in_threadpool(fetch_items, url)
            error = None
        except (urllib.error.URLError, OSError, ValueError, KeyError) as failure:
            log.warning("api call failed", extra={"api": url, "error": str(failure)})
            items, error = None, str(failure)
        return HTMLResponse(page(service, items, error), status_code=200 if items is not None else 502)

    log.info("calling the api", extra={"api": url})
    return [Route("/", front_page, methods=["GET"])], Lifecycle()


def main() -> None:
    run(setup)
