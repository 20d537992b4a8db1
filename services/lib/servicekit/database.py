"""Aurora PostgreSQL as the service's own user: a connection pool whose every new connection
authenticates with a fresh-enough IAM token, over TLS with the server's name verified against the
RDS CA bundle baked into the image (Aurora user guide, "Using SSL/TLS to encrypt a connection to a DB
cluster": ``sslmode=verify-full``, ``sslrootcert`` = the global bundle)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from servicekit.aws_tokens import RefreshingToken, rds_token
from servicekit.config import DatabaseConfig
from servicekit.migrations import migrate

log = logging.getLogger(__name__)

# Connections are replaced after this long (psycopg_pool's max_lifetime): each replacement
# authenticates again with a current token, and a writer that moved (failover) is found again.
CONNECTION_LIFETIME_SECONDS = 30 * 60


def connection_kwargs(config: DatabaseConfig, token: Callable[[], str] | None) -> dict[str, Any]:
    """libpq parameters of one new connection (the password is the token when ``token`` is given)."""
    kwargs: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "dbname": config.name,
        "user": config.user,
        "sslmode": config.sslmode,
        "connect_timeout": 5,
        "application_name": config.user,
        # A connection whose server went away without a word (a failover, a writer replaced) is found dead
        # within about a minute, not after the kernel's 15 minutes of retransmissions: TCP keepalives
        # (libpq's keepalives_*), and unacknowledged data given up on after 30 s (tcp_user_timeout, ms).
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "tcp_user_timeout": 30_000,
    }
    if config.sslmode in ("verify-full", "verify-ca"):
        kwargs["sslrootcert"] = config.sslrootcert
    if token is not None:
        kwargs["password"] = token()
    elif config.password:
        kwargs["password"] = config.password
    return kwargs


def token_source(config: DatabaseConfig, client: Any | None = None) -> Callable[[], str] | None:
    if config.auth != "iam":
        return None
    return RefreshingToken(
        lambda: rds_token(host=config.host, port=config.port, user=config.user, region=config.region, client=client)
    )


class Database:
    def __init__(self, config: DatabaseConfig, *, token: Callable[[], str] | None = None) -> None:
        self.config = config
        if config.sslmode in ("verify-full", "verify-ca") and not Path(config.sslrootcert).is_file():
            raise FileNotFoundError(f"the CA bundle {config.sslrootcert} is missing: the image should hold it")
        self._token = token if token is not None else token_source(config)
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            kwargs=lambda: connection_kwargs(self.config, self._token),
            min_size=1,
            max_size=config.pool_max,
            max_lifetime=CONNECTION_LIFETIME_SECONDS,
            check=ConnectionPool.check_connection,
            name=f"{config.user}-db",
            open=False,
        )

    def open(self) -> None:
        """Opens the pool without waiting: a database that is still resuming (min 0 ACU) makes the
        service unready, not dead."""
        self.pool.open(wait=False)

    def migrate(self, migrations: Path) -> list[str]:
        """The service's migrations, once per deploy whatever the replicas (an advisory lock)."""
        with psycopg.connect(**connection_kwargs(self.config, self._token), autocommit=True) as conn:
            return migrate(conn, migrations)

    def ping(self, timeout: float = 2.0) -> None:
        with self.pool.connection(timeout=timeout) as conn:
            conn.execute("SELECT 1")

    def close(self) -> None:
        self.pool.close(timeout=5)
