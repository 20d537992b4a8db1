"""What happens to a resource that holds data (or a name) when its stack lets go of it."""

from __future__ import annotations

from aws_cdk import RemovalPolicy

# Kept when a stack is deleted or no longer holds the resource, and when an update replaces it
# (DeletionPolicy RetainExceptOnCreate, UpdateReplacePolicy Retain); deleted only when the operation that
# created it rolls back. A plain Retain would leave that half-created resource behind, holding its fixed
# name (a repository, a cache, a backup vault, a key alias, an OIDC provider), so the retry of a failed
# first deploy would fail on "already exists" (CloudFormation, DeletionPolicy attribute).
KEPT = RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE


def kept_if(retain: bool) -> RemovalPolicy:
    """``KEPT`` when the environment retains its data (``retain_data``), else deleted with its stack."""
    return KEPT if retain else RemovalPolicy.DESTROY
