"""Days from settings to CDK's retention enum."""

from __future__ import annotations

from aws_cdk import aws_logs as logs

from infra.config.settings import LOG_RETENTION_DAYS

# The enum lists the same periods in the same ascending order, then INFINITE.
_BY_DAYS = dict(
    zip(LOG_RETENTION_DAYS, [m for m in logs.RetentionDays if m is not logs.RetentionDays.INFINITE], strict=True)
)


def retention(days: int) -> logs.RetentionDays:
    return _BY_DAYS[days]
