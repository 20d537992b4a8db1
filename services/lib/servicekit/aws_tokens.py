"""IAM authentication tokens for Aurora PostgreSQL and ElastiCache, and their refresh.

Both are SigV4 presigned requests used as the password of a new connection, valid for 15 minutes
(they are checked when a connection authenticates, not afterwards):

- RDS (Aurora user guide, "Connecting to your DB cluster using IAM authentication"): boto3's
  ``generate_db_auth_token``: ``<host>:<port>/?Action=connect&DBUser=<user>&X-Amz-...``, service
  ``rds-db``.
- ElastiCache (ElastiCache user guide, "Authenticating with IAM"): a GET request to
  ``<cache name>/`` with ``Action=connect&User=<user id>`` (and ``ResourceType=ServerlessCache`` for a
  serverless cache), presigned for service ``elasticache`` with an expiry of 900 seconds, the scheme
  removed. The user id and user name must be the same (the platform makes them so).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

TOKEN_LIFETIME_SECONDS = 900
# A token is reused for at most 10 minutes, so that the one a new connection gets always has five
# minutes or more left.
TOKEN_REUSE_SECONDS = 600


def _botocore_session() -> Any:
    import botocore.session

    return botocore.session.get_session()


def rds_token(*, host: str, port: int, user: str, region: str, client: Any | None = None) -> str:
    """boto3's ``generate_db_auth_token`` with the pod's credentials (IRSA or EKS Pod Identity: the SDK's
    default chain finds either)."""
    if client is None:
        import boto3

        client = boto3.client("rds", region_name=region)
    token: str = client.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user, Region=region)
    return token


def elasticache_token(
    *, cache_name: str, user: str, region: str, serverless: bool, credentials: Any | None = None
) -> str:
    """The presigned ``connect`` request ElastiCache takes as the password of ``user``."""
    from botocore.awsrequest import prepare_request_dict
    from botocore.model import ServiceId
    from botocore.signers import RequestSigner

    session = _botocore_session()
    if credentials is None:
        credentials = session.get_credentials()
        if credentials is None:
            raise RuntimeError(
                "no AWS credentials: the pod's service account has no IRSA role or Pod Identity association?"
            )
    params = {"Action": "connect", "User": user}
    if serverless:
        params["ResourceType"] = "ServerlessCache"
    signer = RequestSigner(
        ServiceId("elasticache"), region, "elasticache", "v4", credentials, session.get_component("event_emitter")
    )
    request: dict[str, Any] = {"url_path": "/", "query_string": "", "headers": {}, "body": {}, "method": "GET"}
    # The scheme is needed to parse the URL and is not part of the token (nor of what is signed).
    prepare_request_dict(request, endpoint_url=f"https://{cache_name.lower()}")
    request["url"] = f"{request['url']}?{urlencode(params)}"
    url: str = signer.generate_presigned_url(
        request, operation_name="connect", expires_in=TOKEN_LIFETIME_SECONDS, region_name=region
    )
    return url.removeprefix("https://")


class RefreshingToken:
    """A token made by ``make`` and made again once it is ``reuse_seconds`` old (thread-safe)."""

    def __init__(
        self,
        make: Callable[[], str],
        *,
        reuse_seconds: float = TOKEN_REUSE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if reuse_seconds >= TOKEN_LIFETIME_SECONDS:
            raise ValueError("a token must be renewed before its 15 minutes run out")
        self._make = make
        self._reuse = reuse_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._made_at = 0.0

    def __call__(self) -> str:
        with self._lock:
            now = self._clock()
            if self._token is None or now - self._made_at >= self._reuse:
                self._token = self._make()
                self._made_at = now
            return self._token
