"""One error shape for every answer: {"error": {"code", "message", "details"}}."""
from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    response = jsonify({"error": body})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(APIError)
    def api_error(exc: APIError):  # type: ignore[no-untyped-def]
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        code = (exc.name or "error").lower().replace(" ", "_")
        if exc.code == 413:
            return error_response(413, "payload_too_large",
                                  f"the body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes")
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    def redis_down(exc: Exception):  # type: ignore[no-untyped-def]
        app.logger.warning("redis unavailable: %s", type(exc).__name__)
        return error_response(503, "unavailable", "the hub's store cannot be reached; retry later",
                              headers={"Retry-After": "5"})
