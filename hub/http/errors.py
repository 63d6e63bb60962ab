"""HTTP: the one error shape for every answer (hub.core.errors.APIError and werkzeug's), and the app's JSON parser."""
from __future__ import annotations

from typing import Any
from flask import Flask, jsonify, request
from flask.json.provider import DefaultJSONProvider
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException
from hub.core.errors import APIError, checked_json


def error_response(status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    response = jsonify({"error": body})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def int_arg(name: str, default: int, low: int = 1, high: int = 1000) -> int:
    """A whole-number query argument within [low, high]; anything else is a 422 naming it."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        message = f"must be a whole number from {low} to {high}"
        raise APIError(422, f"invalid_{name}", f"{name} {message}", [{"field": name, "message": message}])
    return value


class CheckedJSON(DefaultJSONProvider):
    """The app's JSON: request.get_json parses with it, so every route that reads a JSON body
    refuses deep nesting and lone surrogates with a 400 naming the problem."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return checked_json(s)


def init_app(app: Flask) -> None:
    app.json = CheckedJSON(app)

    @app.errorhandler(APIError)
    def api_error(exc: APIError):  # type: ignore[no-untyped-def]
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        code = (exc.name or "error").lower().replace(" ", "_")
        if exc.code == 413:
            return error_response(413, "payload_too_large",
                                  f"the body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes")
        # a 405 names the methods the route has (RFC 9110, 15.5.6): werkzeug puts them in Allow
        allow = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
        return error_response(exc.code or 500, code, exc.description or exc.name, headers=allow)

    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    def redis_down(exc: Exception):  # type: ignore[no-untyped-def]
        app.logger.warning("redis unavailable: %s", type(exc).__name__)
        return error_response(503, "unavailable", "the hub's store cannot be reached; retry later",
                              headers={"Retry-After": "5"})
