"""Retrying a start-up step while a data store comes up (a paused Aurora writer takes seconds to resume)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


def with_retries(step: Callable[[], T], *, what: str, attempts: int = 6, first_delay: float = 1.0) -> T:
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except Exception as error:
            if attempt == attempts:
                raise
            log.warning(f"{what} failed, retrying", extra={"attempt": attempt, "error": str(error)})
            time.sleep(delay)
            delay = min(delay * 2, 16)
    raise AssertionError("unreachable")
