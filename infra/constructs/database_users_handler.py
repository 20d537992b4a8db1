"""A service's PostgreSQL role (IAM auth) and schema via the RDS Data API (ADR 0009). Inline code
(4096 characters at most); idempotent; Delete drops nothing."""

import json
import re
import time
import urllib.request
from collections.abc import Callable
from typing import Any

Execute = Callable[[str, list[Any]], dict[str, Any]]

NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")


def plan(user: str) -> list[tuple[str, bool]]:
    """One user's statements in order: (sql, only-if-the-role-is-missing)."""
    if not NAME.fullmatch(user):
        raise ValueError(f"invalid user name {user!r}")
    q = f'"{user}"'
    return [
        (f"CREATE ROLE {q} LOGIN", True),
        (f"GRANT rds_iam TO {q}", False),
        # CREATE SCHEMA ... AUTHORIZATION needs the admin to be able to SET ROLE to it (PostgreSQL 16+).
        (f"GRANT {q} TO CURRENT_USER", False),
        (f"CREATE SCHEMA IF NOT EXISTS {q} AUTHORIZATION {q}", False),
        (f"ALTER ROLE {q} SET search_path = {q}", False),
    ]


def apply(execute: Execute, user: str) -> None:
    """Create or complete ``user``; ``execute(sql, parameters)`` returns the Data API's response."""
    found = execute("SELECT 1 FROM pg_roles WHERE rolname = :name", [{"name": "name", "value": {"stringValue": user}}])
    exists = bool(found.get("records"))
    for sql, only_if_missing in plan(user):
        if not (only_if_missing and exists):
            execute(sql, [])


def passing(error: Exception) -> bool:
    """Passes by itself: a writer resuming or briefly away (failover, scaling), the Data API busy, a
    master password rotation (secret and database disagree until it ends)."""
    text = f"{type(error).__name__} {error}".lower()
    return any(w in text for w in ("resum", "unavailable", "internalserver", "authentication fail"))


def data_api(
    client: Any, props: dict[str, str], deadline: float, sleep: Callable[[float], object] = time.sleep
) -> Execute:
    def execute(sql: str, parameters: list[Any]) -> dict[str, Any]:
        while True:
            try:
                response: dict[str, Any] = client.execute_statement(
                    resourceArn=props["ClusterArn"],
                    secretArn=props["SecretArn"],
                    database=props["Database"],
                    sql=sql,
                    parameters=parameters,
                )
                return response
            except Exception as error:
                if not passing(error) or time.time() + 15 > deadline:
                    raise
                sleep(10)

    return execute


def handle(event: dict[str, Any], execute: Execute) -> str:
    props = event["ResourceProperties"]
    if event["RequestType"] != "Delete":
        apply(execute, props["User"])
    return "dbuser:" + str(props["User"])


def send(event: dict[str, Any], status: str, physical_id: str, reason: str) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:1000],
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
        }
    ).encode()
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": ""})
    urllib.request.urlopen(request, timeout=30).read()


def handler(event: dict[str, Any], context: Any) -> None:
    physical_id = event.get("PhysicalResourceId") or "dbuser:" + str(event["ResourceProperties"].get("User"))
    try:
        import boto3  # type: ignore[import-not-found]  # the Lambda runtime's

        deadline = time.time() + context.get_remaining_time_in_millis() / 1000 - 30
        props = event["ResourceProperties"]
        client = boto3.client("rds-data", region_name=props.get("Region"))
        physical_id = handle(event, data_api(client, props, deadline))
        send(event, "SUCCESS", physical_id, "ok")
    except Exception as error:
        print(f"failed: {error!r}")
        send(event, "FAILED", physical_id, f"{type(error).__name__}: {error}")
