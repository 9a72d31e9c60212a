"""The result of one HTTP delivery attempt, as the dispatcher, the retry step and the test
endpoint record it."""

from __future__ import annotations

from dataclasses import dataclass

#: How much of a response body an attempt keeps for the delivery log (characters).
RESPONSE_BODY_LIMIT = 500
#: A 2xx answer's body is kept up to this many UTF-8 bytes: a delivery that succeeds at once is
#: then one item under 1 KB (1 write unit, plus 1 for its index entry). A failure keeps more.
SUCCESS_BODY_LIMIT_BYTES = 150


def kept_body(body: str, *, success: bool) -> str:
    """The part of a response body the delivery log keeps."""
    text = body[:RESPONSE_BODY_LIMIT]
    if not success:
        return text
    return text.encode("utf-8")[:SUCCESS_BODY_LIMIT_BYTES].decode("utf-8", errors="ignore")


@dataclass(frozen=True)
class AttemptOutcome:
    """What happened when Hookline POSTed one delivery.

    ``success`` is any 2xx. ``status_code`` is None when no response arrived (refused target,
    DNS failure, timeout, TLS error...). ``error`` explains a failure in words ("HTTP 500",
    "timeout after 10 s", "redirect (302) to https://... not followed") and is None on success.
    ``retry_after_seconds`` comes from a Retry-After header on 429/503; ``gone`` is a 410, which
    tells us the receiver wants no more deliveries.
    """

    success: bool
    status_code: int | None
    response_time_ms: int
    response_body: str = ""
    error: str | None = None
    retry_after_seconds: int | None = None
    gone: bool = False

    @classmethod
    def failure(cls, error: str, response_time_ms: int = 0) -> AttemptOutcome:
        """An attempt that got no HTTP response at all."""
        return cls(success=False, status_code=None, response_time_ms=response_time_ms, error=error)
