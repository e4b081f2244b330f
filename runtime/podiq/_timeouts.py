"""What a `timeout` argument of a wait means, checked once for every waiting call."""

from __future__ import annotations

import math
from typing import Any

from podiq.exceptions import InvalidArgumentsError


def wait_seconds(timeout: Any, what: str) -> float | None:
    """Seconds to wait, or None for no limit.

    As in taskiq, a negative timeout (the default -1) means no limit; None means the same. 0 means
    do not wait: only what has already finished counts.
    """
    if timeout is None:
        return None
    if type(timeout) not in (int, float) or timeout != timeout:  # bools, strings, NaN
        raise InvalidArgumentsError(
            f"{what}: timeout={timeout!r} is not a number of seconds; pass seconds (0: do not wait), "
            "or -1 or None for no limit."
        )
    if timeout < 0 or timeout == math.inf:
        return None
    return float(timeout)
