"""The reference services (services/): their code against a real PostgreSQL and a real Valkey started
here (tests/servers.py), their processes (health, readiness, SIGTERM), their IAM tokens against the
documented forms, their Dockerfiles.

Tests of the user's platform (every catalogue service has a Dockerfile that lints) run over the
repository and the copy after the documented procedures. The others are about the code in services/:
each runs only where the service directory it exercises exists, so removing or renaming a reference
service never fails them.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import boto3
import botocore.credentials
import psycopg
import pytest
import redis

from infra.constructs.database_users_handler import plan
from infra.constructs.valkey_cache import access_string
from servicekit import jobs
from servicekit.aws_tokens import TOKEN_LIFETIME_SECONDS, RefreshingToken, elasticache_token, rds_token
from servicekit.cache import Cache
from servicekit.config import RDS_CA_BUNDLE, CacheConfig, ConfigError, DatabaseConfig, Env
from servicekit.database import Database, connection_kwargs
from servicekit.migrations import migrate
from tests.conftest import CONFIGURED
from tests.projects import ROOT, settings_of
from tests.servers import Postgres, Valkey, free_port, postgres, valkey

SERVICES = ROOT / "services"
LIB = SERVICES / "lib"
HADOLINT = Path(sys.executable).parent / "hadolint"
CREDENTIALS = botocore.credentials.Credentials(
    "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token-example"
)


def _needs(service: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not (SERVICES / service / "service").is_dir(), reason=f"no services/{service}")


# --- Servers, once per session -------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg() -> Iterator[Postgres]:
    with postgres() as server:
        yield server


@pytest.fixture(scope="session")
def vk() -> Iterator[Valkey]:
    with valkey() as server:
        yield server


def platform_user(pg: Postgres, user: str) -> None:
    """The service's role and schema, made by the statements the database stack's users function runs
    (infra/constructs/database_users_handler.py), as the master user."""
    with pg.connect() as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone() is not None
        for sql, only_if_missing in plan(user):
            if not (only_if_missing and exists):
                conn.execute(sql.encode())


def cache_user(vk: Valkey, service: str, *passwords: str) -> str:
    """The service's cache user with the access string the cache stack gives it."""
    user = f"acme-sandbox-cache-{service}"
    vk.cli("ACL", "SETUSER", user, "reset", *access_string(service).split(), *(f">{p}" for p in passwords))
    return user


# --- IAM tokens, against the documented forms ----------------------------------------------------


def _sigv4_signature(method: str, host: str, path: str, params: list[tuple[str, str]], secret: str) -> str:
    """SigV4 of a presigned request, computed here from the AWS General Reference's steps (canonical
    request, string to sign, signing key), independently of botocore."""
    query = dict(params)
    date, region, service, _ = query["X-Amz-Credential"].split("/")[1:]
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params) if k != "X-Amz-Signature"
    )
    canonical = "\n".join([method, path, canonical_query, f"host:{host}\n", "host", hashlib.sha256(b"").hexdigest()])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", query["X-Amz-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _parse_token(token: str) -> tuple[str, str, list[tuple[str, str]]]:
    assert "://" not in token, "a token has no scheme"
    parts = urlsplit("//" + token)
    return parts.netloc, parts.path, parse_qsl(parts.query, keep_blank_values=True)


def test_the_rds_token_is_a_presigned_connect_request_for_the_services_database_user() -> None:
    """Aurora user guide, "Connecting to your DB cluster using IAM authentication": boto3's
    generate_db_auth_token, <host>:<port>/?Action=connect&DBUser=<user>, SigV4 for rds-db, 15 minutes."""
    client = boto3.client(
        "rds",
        region_name="eu-west-1",
        aws_access_key_id=CREDENTIALS.access_key,
        aws_secret_access_key=CREDENTIALS.secret_key,
        aws_session_token=CREDENTIALS.token,
    )
    host = "acme-live-db.cluster-abc123.eu-west-1.rds.amazonaws.com"
    token = rds_token(host=host, port=5432, user="orders", region="eu-west-1", client=client)
    netloc, path, params = _parse_token(token)
    query = dict(params)
    assert (netloc, path) == (f"{host}:5432", "/")
    assert (query["Action"], query["DBUser"]) == ("connect", "orders")
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert re.fullmatch(r"AKIDEXAMPLE/\d{8}/eu-west-1/rds-db/aws4_request", query["X-Amz-Credential"])
    assert query["X-Amz-Expires"] == str(TOKEN_LIFETIME_SECONDS)
    assert query["X-Amz-Security-Token"] == CREDENTIALS.token
    assert query["X-Amz-SignedHeaders"] == "host"
    assert query["X-Amz-Signature"] == _sigv4_signature("GET", netloc, path, params, CREDENTIALS.secret_key)


@pytest.mark.parametrize(("serverless", "cache"), [(True, "acme-live-cache"), (False, "Acme-Live-Cache-RG")])
def test_the_elasticache_token_is_a_presigned_connect_request_for_the_services_cache_user(
    serverless: bool, cache: str
) -> None:
    """ElastiCache user guide, "Authenticating with IAM": GET <cache name>/?Action=connect&User=<user id>
    (&ResourceType=ServerlessCache for a serverless cache), SigV4 for elasticache, 900 seconds, no scheme."""
    user = "acme-live-cache-orders"
    token = elasticache_token(
        cache_name=cache, user=user, region="us-west-2", serverless=serverless, credentials=CREDENTIALS
    )
    netloc, path, params = _parse_token(token)
    query = dict(params)
    assert (netloc, path) == (cache.lower(), "/")  # the cache's name (lowercase) or replication group id
    assert (query["Action"], query["User"]) == ("connect", user)
    assert query.get("ResourceType") == ("ServerlessCache" if serverless else None)
    assert re.fullmatch(r"AKIDEXAMPLE/\d{8}/us-west-2/elasticache/aws4_request", query["X-Amz-Credential"])
    assert query["X-Amz-Expires"] == "900"
    assert query["X-Amz-Security-Token"] == CREDENTIALS.token
    assert query["X-Amz-Signature"] == _sigv4_signature("GET", netloc, path, params, CREDENTIALS.secret_key)


class _CredentialsEndpoint:
    """What a pod's SDK calls for credentials, on loopback: the EKS Pod Identity agent (GET, the
    projected token as Authorization) or STS (AssumeRoleWithWebIdentity, the IRSA token in the form)."""

    def __init__(self, access_key: str, token: str) -> None:
        import http.server

        self.requests: list[dict[str, Any]] = []
        endpoint = self
        expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _answer(self, status: int, body: str, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.end_headers()
                self.wfile.write(body.encode())

            def do_GET(self) -> None:  # the Pod Identity agent
                endpoint.requests.append({"path": self.path, "authorization": self.headers.get("Authorization")})
                if self.headers.get("Authorization") != token:
                    self._answer(401, "{}", "application/json")
                    return
                body = {"AccessKeyId": access_key, "SecretAccessKey": "s", "Token": "t", "Expiration": expiration}
                self._answer(200, json.dumps(body), "application/json")

            def do_POST(self) -> None:  # STS
                form = dict(parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
                endpoint.requests.append(form)
                if form.get("WebIdentityToken") != token:
                    self._answer(403, "<ErrorResponse/>", "text/xml")
                    return
                self._answer(
                    200,
                    "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
                    f"<AccessKeyId>{access_key}</AccessKeyId><SecretAccessKey>s</SecretAccessKey>"
                    f"<SessionToken>t</SessionToken><Expiration>{expiration}</Expiration></Credentials>"
                    "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
                    "text/xml",
                )

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.mark.parametrize("identity", ["irsa", "pod-identity"])
def test_the_services_sign_their_tokens_with_the_pods_credentials_from_either_identity(
    identity: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """eks.workload_identity either way: what EKS puts into the pod (IRSA: a role ARN and a web identity token
    file; Pod Identity: the agent's address and a token file), and the services' own code finds the
    credentials and signs the database and cache tokens with them."""
    token = tmp_path / "token"
    token.write_text("projected-service-account-token", encoding="utf-8")
    access_key = "ASIA" + identity.upper().replace("-", "")
    endpoint = _CredentialsEndpoint(access_key, token.read_text(encoding="utf-8"))
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    if identity == "irsa":
        monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/api")
        monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", endpoint.url)
    else:
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"{endpoint.url}/v1/credentials")
        monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    try:
        cache = elasticache_token(cache_name="c", user="api-dev", region="us-west-2", serverless=True)
        database = rds_token(host="db.example", port=5432, user="api", region="us-west-2")
    finally:
        endpoint.server.shutdown()
    for signed in (cache, database):
        assert f"X-Amz-Credential={access_key}%2F" in signed
    # Asked (once per SDK session) with the pod's token: the agent in its Authorization header, STS in the form.
    assert endpoint.requests
    for request in endpoint.requests:
        if identity == "irsa":
            assert request["RoleArn"] == "arn:aws:iam::123456789012:role/api"
        else:
            assert request == {"path": "/v1/credentials", "authorization": "projected-service-account-token"}


def test_a_token_is_made_again_before_its_fifteen_minutes_run_out() -> None:
    now = [0.0]
    made: list[int] = []

    def make() -> str:
        made.append(len(made))
        return f"token-{len(made)}"

    token = RefreshingToken(make, clock=lambda: now[0])
    assert token() == token() == "token-1"
    now[0] = 599.0
    assert token() == "token-1"
    now[0] = 600.0  # 10 minutes: a new connection would otherwise get a token with 5 minutes left
    assert token() == "token-2"
    with pytest.raises(ValueError, match="before its 15 minutes"):
        RefreshingToken(make, reuse_seconds=TOKEN_LIFETIME_SECONDS)


# --- Configuration: what the platform's ConfigMap gives, and the secure defaults ------------------

# What the services stack writes into the ConfigMap `platform` of a service that uses both stores
# (tests/test_services.py checks the keys and values against the synthesized stacks).
PLATFORM = {
    "AWS_REGION": "eu-west-1",
    "DATABASE_HOST": "acme-live-db.cluster-abc123.eu-west-1.rds.amazonaws.com",
    "DATABASE_PORT": "5432",
    "DATABASE_NAME": "app",
    "DATABASE_USER": "orders",
    "CACHE_HOST": "acme-live-cache-abc123.serverless.euw1.cache.amazonaws.com",
    "CACHE_PORT": "6379",
    "CACHE_NAME": "acme-live-cache",
    "CACHE_USER": "acme-live-cache-orders",
    "CACHE_KIND": "serverless",
    "CACHE_CLUSTER_MODE": "false",
}


def test_with_the_platforms_config_the_database_is_reached_with_a_token_over_verify_full() -> None:
    config = DatabaseConfig.from_env(Env(PLATFORM))
    assert (config.auth, config.sslmode, config.sslrootcert) == ("iam", "verify-full", RDS_CA_BUNDLE)
    kwargs = connection_kwargs(config, lambda: "the-token")
    assert kwargs["sslmode"] == "verify-full"
    assert kwargs["sslrootcert"] == RDS_CA_BUNDLE
    assert (kwargs["host"], kwargs["port"], kwargs["dbname"]) == (PLATFORM["DATABASE_HOST"], 5432, "app")
    assert (kwargs["user"], kwargs["password"]) == ("orders", "the-token")
    # A server gone silent (a failover) is found within a minute, not 15.
    assert kwargs["keepalives"] == 1
    assert kwargs["keepalives_idle"] + kwargs["keepalives_interval"] * kwargs["keepalives_count"] <= 60
    assert kwargs["tcp_user_timeout"] <= 60_000
    with pytest.raises(ConfigError, match="IAM authentication needs verify-full"):
        DatabaseConfig.from_env(Env({**PLATFORM, "DATABASE_SSLMODE": "require"}))
    with pytest.raises(ConfigError, match="DATABASE_HOST is not set"):
        DatabaseConfig.from_env(Env({k: v for k, v in PLATFORM.items() if k != "DATABASE_HOST"}))


def test_with_the_platforms_config_the_cache_is_reached_as_its_iam_user_over_verified_tls() -> None:
    config = CacheConfig.from_env("orders", Env(PLATFORM))
    assert (config.auth, config.tls, config.user, config.name) == (
        "iam",
        True,
        PLATFORM["CACHE_USER"],
        "acme-live-cache",
    )
    assert config.key_prefix == "orders:"
    cache = Cache(config, token=lambda: "the-token")
    assert isinstance(cache.client, redis.Redis)
    kwargs = cache.client.connection_pool.connection_kwargs
    assert kwargs["ssl_cert_reqs"] == "required"
    assert kwargs["ssl_check_hostname"] is True
    assert kwargs["credential_provider"].get_credentials() == (PLATFORM["CACHE_USER"], "the-token")
    with pytest.raises(ConfigError, match="IAM authentication needs TLS"):
        CacheConfig.from_env("orders", Env({**PLATFORM, "CACHE_TLS": "false"}))


def test_the_image_holds_the_rds_ca_bundle_where_the_services_read_it() -> None:
    """Each Dockerfile fetches the RDS global bundle in its build stage and copies the app directory
    into the image at /app: the file lands at servicekit's RDS_CA_BUNDLE."""
    for dockerfile in _dockerfiles(ROOT):
        text = dockerfile.read_text(encoding="utf-8")
        (destination,) = re.findall(
            r"^ADD .*https://truststore\.pki\.rds\.amazonaws\.com/global/global-bundle\.pem (\S+)$", text, re.M
        )
        assert "COPY --from=build /opt/app /app" in text, dockerfile
        assert destination.replace("/opt/app/", "/app/", 1) == RDS_CA_BUNDLE, dockerfile


# --- Against the real servers -------------------------------------------------------------------


def _database_env(pg: Postgres, user: str) -> dict[str, str]:
    """The platform's ConfigMap for ``user`` against the local PostgreSQL (a password, no TLS)."""
    return {
        "AWS_REGION": "us-east-1",
        "DATABASE_HOST": "127.0.0.1",
        "DATABASE_PORT": str(pg.port),
        "DATABASE_NAME": "app",
        "DATABASE_USER": user,
        "DATABASE_AUTH": "password",
        "DATABASE_SSLMODE": "disable",
    }


def _local_database(pg: Postgres, user: str) -> DatabaseConfig:
    return DatabaseConfig.from_env(Env(_database_env(pg, user)))


def test_migrations_run_once_as_the_services_own_user_in_its_own_schema(pg: Postgres, tmp_path: Path) -> None:
    platform_user(pg, "billing-sync")
    (tmp_path / "001_things.sql").write_text(
        "CREATE TABLE things (id int PRIMARY KEY);\nINSERT INTO things VALUES (1);"
    )
    (tmp_path / "002_more.sql").write_text("ALTER TABLE things ADD COLUMN name text;")
    database = Database(_local_database(pg, "billing-sync"))
    results: list[list[str]] = []
    # Replicas starting together: the advisory lock lets one apply, the other then finds nothing to do.
    threads = [threading.Thread(target=lambda: results.append(database.migrate(tmp_path))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [[], ["001_things.sql", "002_more.sql"]]
    assert database.migrate(tmp_path) == []
    with pg.connect() as conn:
        owner = conn.execute("SELECT tableowner, schemaname FROM pg_tables WHERE tablename = 'things'").fetchone()
        assert owner == ("billing-sync", "billing-sync")
        assert conn.execute('SELECT count(*) FROM "billing-sync".schema_migrations').fetchone() == (2,)


def test_a_bad_migration_is_rolled_back_and_not_recorded(pg: Postgres, tmp_path: Path) -> None:
    platform_user(pg, "broken")
    (tmp_path / "001_bad.sql").write_text("CREATE TABLE t (id int);\nSELECT * FROM missing_table;")
    with psycopg.connect(**connection_kwargs(_local_database(pg, "broken"), None), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable):
            migrate(conn, tmp_path)
        assert conn.execute("SELECT to_regclass('t')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (0,)


class _Rows:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows)


class _ReadOnlyCopy:
    """A connection in a region of a global database that is not the writer's: in recovery, its writes
    forwarded (DDL excepted); ``schema_migrations`` arrives by replication, one state per look."""

    def __init__(self, arrivals: list[list[str] | None]) -> None:
        self.arrivals = arrivals
        self.statements: list[str] = []

    def execute(self, sql: str, params: Any = None) -> _Rows:
        self.statements.append(sql)
        if sql == "SELECT current_schema()":
            return _Rows([("api",)])
        if sql == "SELECT pg_is_in_recovery()":
            return _Rows([(True,)])
        if sql == "SELECT name FROM schema_migrations":
            arrived = self.arrivals.pop(0) if len(self.arrivals) > 1 else self.arrivals[0]
            if arrived is None:
                raise psycopg.errors.UndefinedTable('relation "schema_migrations" does not exist')
            return _Rows([(name,) for name in arrived])
        raise AssertionError(f"a read-only copy was sent {sql!r}")


def test_a_read_only_copy_applies_no_migration_and_waits_for_the_writers(tmp_path: Path) -> None:
    """Outside the writer's region DDL is not forwarded: the service applies nothing there, and starts once
    the writer's region has applied every migration and they have replicated."""
    for name in ("001_things.sql", "002_more.sql"):
        (tmp_path / name).write_text("CREATE TABLE t (id int);")
    copy, naps = _ReadOnlyCopy([None, ["001_things.sql"], ["001_things.sql", "002_more.sql"]]), list[float]()
    assert migrate(copy, tmp_path, sleep=naps.append) == []  # type: ignore[arg-type]
    assert naps == [5, 5]
    stuck = _ReadOnlyCopy([["001_things.sql"]])
    with pytest.raises(RuntimeError, match=r"waiting for the writer's region to apply 002_more\.sql"):
        migrate(stuck, tmp_path, wait_seconds=15, sleep=lambda _: None)  # type: ignore[arg-type]


def test_two_workers_never_claim_the_same_job(pg: Postgres) -> None:
    platform_user(pg, "queue")
    database = Database(_local_database(pg, "queue"))
    database.migrate(SERVICES / "worker" / "service" / "migrations") if (SERVICES / "worker").is_dir() else None
    with psycopg.connect(**connection_kwargs(database.config, None), autocommit=True) as setup:
        if setup.execute("SELECT to_regclass('jobs')").fetchone() == (None,):
            pytest.skip("no services/worker migrations")
        ids = [jobs.enqueue(setup, "echo", {"n": n}) for n in range(2)]
    with (
        psycopg.connect(**connection_kwargs(database.config, None)) as first,
        psycopg.connect(**connection_kwargs(database.config, None)) as second,
        psycopg.connect(**connection_kwargs(database.config, None)) as third,
    ):
        one, two = jobs.claim(first), jobs.claim(second)
        assert one is not None
        assert two is not None
        assert {one.id, two.id} == set(ids)
        assert jobs.claim(third) is None  # both queued jobs are held, and skipped rather than waited for
        third.rollback()
        jobs.complete(first, one)
        jobs.fail(second, two, "boom")
        first.commit()
        second.commit()
    with psycopg.connect(**connection_kwargs(database.config, None), autocommit=True) as conn:
        rows = dict(conn.execute("SELECT id, status FROM jobs WHERE id = ANY(%s)", (ids,)).fetchall())
        assert rows == {one.id: "done", two.id: "queued"}  # retried later, with a delay


def test_the_cache_client_authenticates_as_the_services_user_and_stays_in_its_key_space(vk: Valkey) -> None:
    """As ElastiCache's IAM auth does: AUTH <user id> <token>; a token renewed for new connections
    (here the local user accepts both tokens as passwords); only keys "<service>:*"."""
    user = cache_user(vk, "orders", "token-1", "token-2")
    tokens = iter(["token-1", "token-2"])
    now = [0.0]
    config = CacheConfig(
        host="127.0.0.1", port=vk.port, name="acme-sandbox-cache", user=user, kind="serverless",
        cluster_mode=False, region="us-east-1", auth="iam", password=None, tls=False, key_prefix="orders:",
    )  # fmt: skip
    cache = Cache(config, token=lambda: next(tokens), reconnect_after=3600, clock=lambda: now[0])
    cache.set_json("item:a", {"value": 1}, 60)
    assert cache.get_json("item:a") == {"value": 1}
    assert vk.cli("--user", user, "--pass", "token-1", "--no-auth-warning", "EXISTS", "orders:item:a") == "1"
    first = cache.client.client_id()
    now[0] = 3600.0  # connections older than reconnect_after are made again, with a new token
    cache.ping()
    assert cache.client.client_id() != first
    with pytest.raises(redis.exceptions.NoPermissionError):
        cache.client.set("other:key", "x")
    cache.close()


# --- The services as processes ------------------------------------------------------------------


@dataclass
class Running:
    process: subprocess.Popen[str]
    port: int
    lines: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines if line.startswith("{")]

    def stop(self) -> bool:
        """SIGTERM, as the kubelet sends it; whether the service stopped gracefully: its stop hooks ran
        (it logged "stopped") and it ended by the signal it was sent (uvicorn re-raises it
        once it has shut down, as the exit status 143 a kubelet expects) or with 0."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=25)
        time.sleep(0.05)  # the reader thread takes the last lines
        return code in (0, -signal.SIGTERM) and "stopped" in [e["message"] for e in self.logs()]


def request(method: str, url: str, body: Any = None) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


@contextlib.contextmanager
def running(service: str, env: dict[str, str]) -> Iterator[Running]:
    """``python -m service`` in services/<service>, as its image runs it (PYTHONPATH: the library)."""
    port = free_port()
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(LIB),
        "PYTHONDONTWRITEBYTECODE": "1",
        "SERVICE_NAME": service,
        "ENVIRONMENT": "sandbox",
        "PORT": str(port),
        "LOG_LEVEL": "info",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "service"],
        cwd=SERVICES / service,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    handle = Running(process, port)
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: handle.lines.extend(iter(process.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "".join(handle.lines)
            try:
                if request("GET", handle.url("/healthz"))[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "".join(handle.lines)
            time.sleep(0.05)
        yield handle
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=5)


def _api_env(pg: Postgres, vk: Valkey, service: str = "api") -> dict[str, str]:
    platform_user(pg, service)
    return {
        **_database_env(pg, service),
        "CACHE_HOST": "127.0.0.1",
        "CACHE_PORT": str(vk.port),
        "CACHE_USER": cache_user(vk, service, "local-password"),
        "CACHE_AUTH": "password",
        "CACHE_PASSWORD": "local-password",
        "CACHE_TLS": "false",
    }


@pytest.fixture(scope="module")
def api(pg: Postgres, vk: Valkey) -> Iterator[Running]:
    if not (SERVICES / "api" / "service").is_dir():
        pytest.skip("no services/api")
    with running("api", _api_env(pg, vk)) as handle:
        yield handle


@_needs("api")
def test_the_api_is_ready_when_its_database_and_cache_answer(api: Running) -> None:
    assert request("GET", api.url("/healthz"))[0] == 200
    status, _, body = request("GET", api.url("/readyz"))
    assert (status, json.loads(body)["checked"]) == (200, ["cache", "database"])


@_needs("api")
def test_the_api_reads_and_writes_items_through_its_cache_to_its_database(
    api: Running, pg: Postgres, vk: Valkey
) -> None:
    assert request("PUT", api.url("/api/items/greeting"), {"value": {"text": "hello"}})[0] == 200
    status, headers, body = request("GET", api.url("/api/items/greeting"))
    assert (status, headers["x-cache"], json.loads(body)["value"]) == (200, "hit", {"text": "hello"})
    # In its own schema, and under its own key prefix.
    with pg.connect() as conn:
        assert conn.execute("SELECT value FROM api.items WHERE key = 'greeting'").fetchone() == ({"text": "hello"},)
    vk.cli("DEL", "api:item:greeting")
    assert request("GET", api.url("/api/items/greeting"))[1]["x-cache"] == "miss"  # from the database
    assert request("GET", api.url("/api/items/greeting"))[1]["x-cache"] == "hit"  # and cached again
    assert request("GET", api.url("/api/items/absent"))[0] == 404
    assert request("PUT", api.url("/api/items/bad%20key"), {"value": 1})[0] == 400
    assert request("PUT", api.url("/api/items/k"), {"no": "value"})[0] == 400
    # A body over the limit (64 KiB) is refused; the item is not written.
    assert request("PUT", api.url("/api/items/big"), {"value": "x" * (64 * 1024)})[0] == 413
    assert request("GET", api.url("/api/items/big"))[0] == 404
    listed = json.loads(request("GET", api.url("/api/items"))[2])["items"]
    assert "greeting" in [i["key"] for i in listed]


@_needs("api")
def test_the_api_is_unready_but_alive_while_its_cache_does_not_answer(pg: Postgres, vk: Valkey) -> None:
    env = {**_api_env(pg, vk), "CACHE_PORT": str(free_port())}
    with running("api", env) as handle:
        status, _, body = request("GET", handle.url("/readyz"))
        assert status == 503
        assert list(json.loads(body)["failed"]) == ["cache"]
        assert request("GET", handle.url("/healthz"))[0] == 200
        assert handle.stop()


@_needs("web")
def test_web_shows_the_apis_items_through_the_apis_address(api: Running) -> None:
    request("PUT", api.url("/api/items/front-page"), {"value": "shown on web"})
    with running("web", {"API_URL": f"http://127.0.0.1:{api.port}", "API_SERVICE": "api"}) as web:
        status, headers, body = request("GET", web.url("/"))
        assert (status, headers["content-type"]) == (200, "text/html; charset=utf-8")
        assert "front-page" in body.decode()
        assert "shown on web" in body.decode()
        assert request("GET", web.url("/readyz"))[0] == 200
        assert web.stop()


@_needs("web")
def test_web_calls_the_api_through_its_cluster_service_and_says_when_it_does_not_answer() -> None:
    with running("web", {"API_SERVICE": "api"}) as web:
        (started,) = [e for e in web.logs() if e["message"] == "calling the api"]
        # The api's cluster Service in the api's namespace of this environment (ENVIRONMENT=sandbox).
        assert started["api"] == "http://api.api-sandbox.svc.cluster.local/api/items"
        status, _, body = request("GET", web.url("/"))
        assert status == 502
        assert "did not answer" in body.decode()
        assert request("GET", web.url("/readyz"))[0] == 200  # web's readiness does not follow the api's


@_needs("worker")
def test_the_worker_runs_queued_jobs_and_retries_failed_ones(pg: Postgres) -> None:
    platform_user(pg, "worker")
    env = {**_database_env(pg, "worker"), "WORKER_POLL_SECONDS": "0.1"}
    with running("worker", env) as worker:
        assert request("GET", worker.url("/readyz"))[0] == 200
        assert request("GET", worker.url("/healthz"))[0] == 200  # its loop turns
        with pg.connect() as conn:
            conn.execute("SET search_path = worker")
            done, failing, unknown = (jobs.enqueue(conn, kind, {}) for kind in ("echo", "fail", "no-such-kind"))
            deadline = time.monotonic() + 20
            while True:
                rows = {r[0]: r[1:] for r in conn.execute("SELECT id, status, attempts, error FROM jobs")}
                if rows[done][0] == "done" and rows[failing][1] == 1 and rows[unknown][1] == 1:
                    break
                assert time.monotonic() < deadline, rows
                time.sleep(0.1)
        assert rows[failing][0] == "queued"
        assert "this job fails" in rows[failing][2]
        assert "no handler for job kind 'no-such-kind'" in rows[unknown][2]
        assert worker.stop()
    messages = [e["message"] for e in worker.logs()]
    assert "job done" in messages
    assert all(e["service"] == "worker" for e in worker.logs())


@_needs("worker")
def test_a_worker_whose_job_loop_stops_turning_fails_liveness_and_is_restarted(pg: Postgres) -> None:
    """A job hung on a dead connection (after a failover, say) keeps the loop's thread alive but still: past
    WORKER_STUCK_SECONDS without a turn, /healthz fails and the kubelet restarts the container."""
    platform_user(pg, "stuck")
    env = {**_database_env(pg, "stuck"), "WORKER_POLL_SECONDS": "5", "WORKER_STUCK_SECONDS": "1"}
    with running("worker", env) as worker:
        assert request("GET", worker.url("/healthz"))[0] == 200  # it has just turned
        time.sleep(1.5)  # a turn every 5 s: past the 1 s allowed
        status, _, body = request("GET", worker.url("/healthz"))
        assert status == 503
        assert "the job loop has not turned for" in body.decode()
        assert request("GET", worker.url("/readyz"))[0] == 200  # readiness is another question
        assert worker.stop()


@_needs("api")
def test_the_load_balancer_closes_idle_connections_before_the_service_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind an ALB (idle timeout 60 s): were the service to close an idle keep-alive connection first, the
    load balancer could send a request down it as it closes, and answer 502 (ALB user guide, connection
    idle timeout). The service's keep-alive outlasts the load balancer's."""
    import uvicorn

    from servicekit import http

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    http.run(lambda config, env: ([], http.Lifecycle()), Env({"SERVICE_NAME": "api", "ENVIRONMENT": "dev"}))
    (kwargs,) = calls
    assert kwargs["timeout_keep_alive"] > http.LOAD_BALANCER_IDLE_SECONDS == 60


def test_sigterm_stops_the_api_gracefully_with_json_logs(api: Running) -> None:
    """The module's api, last: after the tests above, its stop."""
    assert request("GET", api.url("/api/items"))[0] == 200
    assert api.stop()
    logs = api.logs()
    assert {e["service"] for e in logs} == {"api"}
    assert {"time", "level", "logger", "message", "environment"} <= set(logs[0])
    access = [e for e in logs if e["message"] == "request" and e["path"] == "/api/items"]
    assert (access[-1]["method"], access[-1]["status"]) == ("GET", 200)


# --- Dockerfiles and pins -----------------------------------------------------------------------


def _dockerfiles(root: Path) -> list[Path]:
    return sorted((root / "services").glob("*/Dockerfile"))


@pytest.mark.parametrize("label", [s.label for s in CONFIGURED])
def test_every_catalogue_service_has_a_dockerfile_that_the_linter_passes(label: str) -> None:
    (subject,) = [s for s in CONFIGURED if s.label == label]
    names = {s.name for s in settings_of(subject.project, subject.environment).services}
    missing = sorted(n for n in names if not (subject.project.root / "services" / n / "Dockerfile").is_file())
    assert missing == [], f"services/<name>/Dockerfile missing for {missing} (build-image builds it)"
    files = [str(subject.project.root / "services" / n / "Dockerfile") for n in sorted(names)]
    result = subprocess.run([str(HADOLINT), "--no-color", *files], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", _dockerfiles(ROOT), ids=lambda p: p.parent.name)
def test_images_are_multi_stage_on_a_base_pinned_by_digest_and_run_as_non_root(dockerfile: Path) -> None:
    text = dockerfile.read_text(encoding="utf-8")
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(stages) >= 2
    (base,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert re.fullmatch(r"[a-z0-9./-]+:[\w.-]+@sha256:[0-9a-f]{64}", base)
    assert set(stages) == {"${PYTHON_IMAGE}"}
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1])
    assert re.search(r'^CMD \["python", "-m", "service"\]$', text, re.M)


def test_the_services_pin_the_versions_the_tests_run() -> None:
    def pins(path: Path) -> dict[str, str]:
        lines = [line.split("#")[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
        return dict(line.split("==", 1) for line in lines if "==" in line)

    development = pins(ROOT / "requirements-dev.txt")
    for requirements in sorted(SERVICES.glob("*/requirements.txt")):
        for name, version in pins(requirements).items():
            assert development.get(name) == version, f"{requirements}: {name}=={version}, requirements-dev.txt differs"
