"""Customer-managed KMS keys: grants only for AWS resources, and the services' documented paths still work.

A small evaluator of the synthesized key policies (explicit deny wins, then any allow) answers, for
every key of every stack, the requests the services make: a grant created through a service
integration (KMS sets kms:GrantIsForAWSResource), a grant created directly, CloudWatch Logs
encrypting for a log group of this account or of another, and the account administering the key.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest

from tests.synth import Synthesized, resources

ACCOUNT, REGION, PARTITION = "123456789012", "us-east-1", "aws"


def _render(value: Any, region: str = REGION) -> Any:
    """The policy as IAM evaluates it in ``region``, this account and the aws partition."""
    pseudo = {"AWS::AccountId": ACCOUNT, "AWS::Region": region, "AWS::Partition": PARTITION}
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(str(_render(p, region)) for p in parts)
    if isinstance(value, dict) and "Ref" in value:
        return pseudo.get(value["Ref"], f"<{value['Ref']}>")
    if isinstance(value, dict):
        return {k: _render(v, region) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, region) for v in value]
    return value


def _listed(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _principal_matches(principal: Any, caller: dict[str, str]) -> bool:
    if principal == "*":
        return True
    for kind, values in principal.items():
        for value in _listed(values):
            if value == "*" or (
                kind == "AWS" and value == f"arn:{PARTITION}:iam::{ACCOUNT}:root" and caller.get("account")
            ):
                return True
            if kind == "Service" and value == caller.get("service"):
                return True
    return False


def _conditions_hold(conditions: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, pairs in conditions.items():
        for key, expected in pairs.items():
            if key not in context:
                if operator.endswith("IfExists"):
                    continue  # ...IfExists: an absent key matches
                return False  # IAM: a condition on an absent key does not match
            actual, options = context[key], _listed(expected)
            if operator.removesuffix("IfExists") in ("Bool", "StringEquals") and actual not in options:
                return False
            if operator in ("ArnLike", "StringLike") and not any(fnmatch.fnmatchcase(actual, o) for o in options):
                return False
    return True


def allowed(
    policy: dict[str, Any], caller: dict[str, str], action: str, context: dict[str, str], region: str = REGION
) -> bool:
    matching = [
        s
        for s in _render(policy, region)["Statement"]
        if _principal_matches(s.get("Principal", "*"), caller)
        and any(fnmatch.fnmatchcase(action, a) for a in _listed(s["Action"]))
        and _conditions_hold(s.get("Condition", {}), context)
    ]
    if any(s["Effect"] == "Deny" for s in matching):
        return False
    return any(s["Effect"] == "Allow" for s in matching)


def _keys(env: Synthesized) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path.name, key_id, key["Properties"]["KeyPolicy"])
        for path in sorted(env.outdir.glob("*.template.json"))
        for key_id, key in resources(json.loads(path.read_text(encoding="utf-8")), "AWS::KMS::Key").items()
    ]


def _region_of(env: Synthesized, template: str) -> str:
    from infra.assembly import stack_regions

    return stack_regions(env.outdir)[template.removesuffix(".template.json")]


ROLE = {"account": "yes"}  # an IAM role of this account (the key policy delegates to IAM)
VIA_SERVICE = {
    "kms:GrantIsForAWSResource": "true",
    "kms:ViaService": f"rds.{REGION}.amazonaws.com",
    "aws:PrincipalIsAWSService": "false",
}
DIRECT = {"kms:GrantIsForAWSResource": "false", "aws:PrincipalIsAWSService": "false"}
NO_CONTEXT: dict[str, str] = {}


def test_every_key_refuses_grants_that_are_not_for_aws_resources(env: Synthesized) -> None:
    keys = _keys(env)
    assert len(keys) >= 8
    for stack, key_id, policy in keys:
        assert not allowed(policy, ROLE, "kms:CreateGrant", DIRECT), (stack, key_id)
        # Fails closed: a request without the key is refused too.
        assert not allowed(policy, ROLE, "kms:CreateGrant", NO_CONTEXT), (stack, key_id)


def test_services_still_create_their_grants_through_the_integration(env: Synthesized) -> None:
    # RDS, ElastiCache, EKS, ECR, EBS, Secrets Manager and AWS Backup create grants on the caller's behalf.
    for stack, key_id, policy in _keys(env):
        assert allowed(policy, ROLE, "kms:CreateGrant", VIA_SERVICE), (stack, key_id)
        for action in ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"):
            assert allowed(policy, ROLE, action, {}), (stack, key_id, action)


def test_the_account_can_still_administer_every_key(env: Synthesized) -> None:
    for stack, key_id, policy in _keys(env):
        assert allowed(policy, ROLE, "kms:PutKeyPolicy", {}), (stack, key_id)
        assert not allowed(policy, {"account": ""}, "kms:Decrypt", {}), (stack, key_id)


@pytest.mark.parametrize("action", ["kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt"])
def test_cloudwatch_logs_uses_log_keys_only_for_this_accounts_log_groups(env: Synthesized, action: str) -> None:
    log_keys = [(s, k, p) for s, k, p in _keys(env) if "logs." in json.dumps(p)]
    assert log_keys
    for stack, key_id, policy in log_keys:
        region = _region_of(env, stack)
        logs = {"service": f"logs.{region}.amazonaws.com"}
        mine = f"arn:{PARTITION}:logs:{region}:{ACCOUNT}:log-group:"
        theirs = {"kms:EncryptionContext:aws:logs:arn": f"arn:{PARTITION}:logs:{region}:210987654321:log-group:x"}
        rendered = _render(policy, region)["Statement"]
        statement = next(s for s in rendered if s.get("Sid") == "CloudWatchLogsOfThisAccount")
        group = statement["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"].split(":log-group:")[1]
        context = {"kms:EncryptionContext:aws:logs:arn": mine + group.replace("*", "any")}
        assert allowed(policy, logs, action, context, region), (stack, key_id)
        assert not allowed(policy, logs, action, theirs, region), (stack, key_id)
        assert not allowed(policy, logs, action, {}, region), (stack, key_id)
