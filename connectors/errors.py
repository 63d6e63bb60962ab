"""What can go wrong when talking to a vendor, grouped by what the caller should do next.

    VendorError                  anything a vendor call can raise; carries status, code, message
    ├── RetriableVendorError     try again later: 429, 5xx, timeouts, connection errors
    │   └── RateLimited          the vendor (or our own limiter) asked us to wait `retry_after` s
    └── FatalVendorError         retrying the same request cannot help: other 4xx, bad data
        └── AuthError            credentials rejected: the connector should be paused

Messages never carry secrets: connectors build them from the vendor's error body only.
"""
from __future__ import annotations


class VendorError(Exception):
    """A failed vendor call, with the vendor's own status, error code and message."""

    retriable = False

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retry_after = retry_after

    def as_dict(self) -> dict:
        return {"status": self.status, "code": self.code, "message": self.message,
                "retriable": self.retriable, "retry_after": self.retry_after}


class RetriableVendorError(VendorError):
    """Worth retrying after a back-off (429, 5xx, timeouts, connection errors)."""

    retriable = True


class RateLimited(RetriableVendorError):
    """The vendor or the shared limiter asked us to wait `retry_after` seconds."""


class FatalVendorError(VendorError):
    """Retrying the same request cannot succeed (4xx other than 429, bad data)."""


class AuthError(FatalVendorError):
    """The vendor rejected the credentials; the hub pauses the connector."""
