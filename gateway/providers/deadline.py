"""When the current request's upstream calls must end: a request holds its budget for
`budget.reservation_ttl_s`, so every attempt (retries and fallbacks included) ends
`HOLD_MARGIN_S` before the hold would expire. `resilience.Resilient` sets the end; each
provider bounds its attempt by it and by the model's own `timeouts.total_s`."""

import time
from contextvars import ContextVar

REQUEST_END: ContextVar[float | None] = ContextVar("frugal_upstream_end", default=None)


def attempt_deadline(total_s: float) -> float:
    """The monotonic time an attempt starting now must end by."""
    end = time.monotonic() + total_s
    cap = REQUEST_END.get()
    return end if cap is None else min(end, cap)
