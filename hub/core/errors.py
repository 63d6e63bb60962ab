"""The hub's one error: a status, a code, a message and details, raised by any layer and rendered
by the HTTP adapter (hub.http.errors) as {"error": {"code", "message", "details"}}."""
from __future__ import annotations

import json
import re
from typing import Any

from hub.core.schemas import json_problem


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
        self.headers = headers or {}


SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def checked_json(data: bytes | str) -> Any:
    """Parsed JSON the hub can store; APIError 400 when it nests too deeply or holds a lone
    surrogate (valid JSON, but no text: UTF-8, Redis and Lua's cjson refuse it); ValueError
    when it is not JSON at all."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise APIError(400, "invalid_json", "the body nests too deeply to read") from None
    # A lone surrogate can only come from a \\uD800-\\uDFFF escape: skip the string scan without one.
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    problem = json_problem(value, strings=SURROGATE_ESCAPE.search(raw) is not None)
    if problem:
        raise APIError(400, "invalid_json", f"the body is not usable JSON: {problem[0]} {problem[1]}",
                       [{"index": None, "field": problem[0], "message": problem[1]}])
    return value
