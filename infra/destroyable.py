"""``python -m infra.destroyable <env>``: exit 0 only if ``make destroy`` may remove that environment."""

from __future__ import annotations

import sys

from infra.config.settings import SettingsError, load_settings


def check(environment: str | None) -> str | None:
    """None if the environment may be destroyed, else the reason it may not."""
    settings = load_settings(environment)
    if settings.production:
        return (
            f"refusing to destroy {environment!r}: its settings say production: true "
            f"(infra/config/environments/{environment}.yaml). Production data and stacks are protected; "
            "delete them by hand, stack by stack, if you really mean it (README, 'Destroying an environment')."
        )
    return None


def main(argv: list[str]) -> int:
    try:
        reason = check(argv[1] if len(argv) > 1 else None)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
