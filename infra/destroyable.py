"""``python -m infra.destroyable <env>``: print the stacks ``make destroy`` may remove, or refuse.

On success it prints the environment's stack pattern (``<project>-<env>-*``): never the account
stack, which the other environments of the account share.
"""

from __future__ import annotations

import sys

from infra.config.project import REPOSITORY, Project
from infra.config.settings import SettingsError


def check(environment: str | None, project: Project = REPOSITORY) -> tuple[str | None, str]:
    """(None, stack pattern) if the environment may be destroyed, else (the reason it may not, "")."""
    settings = project.settings(environment)
    if settings.production:
        return (
            f"refusing to destroy {environment!r}: its settings say production: true "
            f"(infra/config/environments/{environment}.yaml). Production data and stacks are protected; "
            "delete them by hand, stack by stack, if you really mean it (see docs/operations.md)."
        ), ""
    return None, f"{settings.stack_prefix}-*"


def main(argv: list[str]) -> int:
    try:
        reason, pattern = check(argv[1] if len(argv) > 1 else None)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 1
    print(pattern)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
