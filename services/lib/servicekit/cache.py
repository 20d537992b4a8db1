"""ElastiCache for Valkey as the service's own IAM user, over TLS (ElastiCache requires TLS for IAM
authentication; the server's certificate is checked against the image's system CA store).

Each new connection authenticates with ``AUTH <user id> <token>``; a token is reused for at most
10 of its 15 minutes. ElastiCache closes an IAM-authenticated connection after 12 hours
("Authenticating with IAM", limitations): connections are dropped and made again (with a fresh
token) well before that.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.credentials import CredentialProvider
from redis.retry import Retry

from servicekit.aws_tokens import RefreshingToken, elasticache_token
from servicekit.config import CacheConfig

RECONNECT_AFTER_SECONDS = 6 * 3600


class IamCredentials(CredentialProvider):
    """(user id, token) for each new connection."""

    def __init__(self, user: str, token: Callable[[], str]) -> None:
        self.user = user
        self.token = token

    def get_credentials(self) -> tuple[str, str]:
        return self.user, self.token()


def token_source(config: CacheConfig) -> Callable[[], str]:
    return RefreshingToken(
        lambda: elasticache_token(
            cache_name=config.name, user=config.user, region=config.region, serverless=config.kind == "serverless"
        )
    )


class Cache:
    def __init__(
        self,
        config: CacheConfig,
        *,
        token: Callable[[], str] | None = None,
        reconnect_after: float = RECONNECT_AFTER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.prefix = config.key_prefix
        options: dict[str, Any] = {
            "host": config.host,
            "port": config.port,
            "socket_timeout": 2,
            "socket_connect_timeout": 2,
            "decode_responses": True,
            "health_check_interval": 30,
            # Two quick retries: a cache that does not answer makes readiness fail within the probe's time.
            "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        }
        if config.auth == "iam":
            options["credential_provider"] = IamCredentials(config.user, token or token_source(config))
        elif config.auth == "password":
            options.update(username=config.user, password=config.password)
        if config.tls:
            options.update(ssl=True, ssl_cert_reqs="required", ssl_check_hostname=True)
        self.client: redis.Redis | redis.RedisCluster
        if config.cluster_mode:
            self.client = redis.RedisCluster(**options)
        else:
            self.client = redis.Redis(**options)
        self._clock = clock
        self._reconnect_after = reconnect_after
        self._connected_at = clock()
        self._lock = threading.Lock()

    def _fresh(self) -> redis.Redis | redis.RedisCluster:
        """The client, its idle connections dropped when they are older than ``reconnect_after``."""
        with self._lock:
            if self._clock() - self._connected_at >= self._reconnect_after:
                if isinstance(self.client, redis.Redis):
                    self.client.connection_pool.disconnect(inuse_connections=False)
                else:
                    self.client.disconnect_connection_pools()  # type: ignore[no-untyped-call]
                self._connected_at = self._clock()
        return self.client

    def key(self, name: str) -> str:
        return self.prefix + name

    def ping(self) -> None:
        self._fresh().ping()

    def get_json(self, name: str) -> Any | None:
        text = self._fresh().get(self.key(name))
        return None if text is None else json.loads(str(text))

    def set_json(self, name: str, value: Any, ttl_seconds: int) -> None:
        self._fresh().set(self.key(name), json.dumps(value), ex=ttl_seconds)

    def delete(self, name: str) -> None:
        self._fresh().delete(self.key(name))

    def close(self) -> None:
        self.client.close()
