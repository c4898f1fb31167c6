"""API errors: one JSON shape, `{"error": {"code", "message", "details"}}`, for every failure."""

from __future__ import annotations

from typing import Any

from werkzeug.exceptions import HTTPException

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "too_many_requests",
    500: "internal",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.code = code or CODES.get(status, "error")

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def not_found(what: str, name: str) -> ApiError:
    return ApiError(404, f"{what} {name!r} not found", {"kind": what, "name": name})


def from_http(err: HTTPException) -> ApiError:
    status = err.code or 500
    message = {
        404: "no such endpoint; the API lives under /v1 (see /v1/openapi.json)",
        405: "this endpoint does not accept that method",
        413: "the request body is larger than this server accepts",
    }.get(status, err.description or err.name)
    return ApiError(status, message)
