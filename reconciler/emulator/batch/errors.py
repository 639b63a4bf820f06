"""The Batch service's error shape, raised by the service layer and rendered by the routes.

ARM and the data plane share one pool state; both faces need the same code and message the service would
give, so errors carry the REST fields rather than HTTP-layer objects.
"""

from __future__ import annotations


class BatchServiceError(Exception):
    """An error as the Batch service reports it: HTTP status, `code`, `message.value` and `values`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        values: dict[str, str] | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.values = dict(values or {})
        self.retry_after = retry_after  # simulated seconds until a retry can succeed
