"""Domain errors. Each maps to the one error shape: {"code", "message", "data": {"status"}}."""

from __future__ import annotations

from typing import Any


class HooklineError(Exception):
    """Base class: carries the public error code, HTTP status and a user-facing message."""

    code = "error"
    status = 400

    def __init__(self, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra

    def to_body(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status}
        if self.field:
            data["field"] = self.field
        data.update(self.extra)
        return {"code": self.code, "message": self.message, "data": data}


class InvalidParam(HooklineError):
    code = "invalid_param"
    status = 400


class InvalidUrl(HooklineError):
    code = "invalid_url"
    status = 400


class Unauthorized(HooklineError):
    code = "unauthorized"
    status = 401


class Forbidden(HooklineError):
    code = "rest_forbidden"
    status = 403


class NotFound(HooklineError):
    code = "not_found"
    status = 404


class MethodNotAllowed(HooklineError):
    code = "method_not_allowed"
    status = 405


class Conflict(HooklineError):
    code = "conflict"
    status = 409


class PayloadTooLarge(HooklineError):
    code = "payload_too_large"
    status = 413


class UnsupportedMediaType(HooklineError):
    code = "unsupported_media_type"
    status = 415


class ConditionFailed(Exception):
    """A storage write's condition did not hold (an adapter-level signal, not an API error)."""


class InvalidCursor(HooklineError):
    code = "invalid_param"
    status = 400

    def __init__(self, message: str = "cursor is not valid for this list") -> None:
        super().__init__(message, field="cursor")
