"""What every settings section shares: the strict base model, the one user-facing error, log retention
periods, the AWS region check and where the settings files live."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from infra.config.regions import AWS_REGIONS

_CONFIG_DIR = Path(__file__).resolve().parent.parent
ENVIRONMENTS_DIR = _CONFIG_DIR / "environments"
# The service catalogue every environment shares (an environment file may carry its own `services:`
# instead, for experiments such as `make bench`'s generated catalogues).
CATALOGUE_FILE = _CONFIG_DIR / "services.yaml"

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)  # fmt: skip

_NAME = re.compile(r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$")
_ENVIRONMENT_NAME = re.compile(r"[a-z][a-z0-9]{1,9}")


def _check_log_retention(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        raise ValueError(
            f"must be one of CloudWatch Logs' retention periods: {', '.join(map(str, LOG_RETENTION_DAYS))}"
        )
    return value


# Days a log group keeps its events: one of the periods CloudWatch Logs accepts.
LogRetentionDays = Annotated[int, AfterValidator(_check_log_retention)]
# Production keeps every log group at least a year (AWS Control Tower proactive control
# CT.CLOUDWATCH.PR.2, the NIST 800-53 AU-11 baseline many auditors ask for).
PRODUCTION_LOG_RETENTION_DAYS = 365


def _distinct(value: list[str], what: str) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError(f"must not list the same {what} twice")
    return value


def _distinct_members(value: list[str], allowed: tuple[str, ...], what: str) -> list[str]:
    for item in value:
        if item not in allowed:
            raise ValueError(f"unknown {what} {item!r}; allowed: {', '.join(allowed)}")
    return _distinct(value, what)


class SettingsError(Exception):
    """A user-facing configuration error: the message is printed as is, without a traceback."""


class _Model(BaseModel):
    # Unknown keys are errors (a typo must not be silently ignored); settings are immutable.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _aws_region(value: str) -> str:
    if value not in AWS_REGIONS:
        raise ValueError(f"is not an AWS region of the aws partition; allowed: {', '.join(sorted(AWS_REGIONS))}")
    return value
