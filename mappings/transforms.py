"""The closed set of value transforms a mapping may name. No eval, no expressions: a name here
or the mapping is invalid."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Callable

BOOLEAN_STYLES = {
    "true_false": (True, False),
    "one_zero": (1, 0),
    "one_two": (1, 2),          # Emarsys single-choice opt-in: 1 = True, 2 = False
    "yes_no": ("yes", "no"),
}
DATE_FORMATS = {
    "date": "%Y-%m-%d",
    "datetime": "%Y-%m-%d %H:%M:%S",
    "iso": "%Y-%m-%dT%H:%M:%SZ",
    "emarsys": "%Y-%m-%d",
    "splio": "%Y-%m-%d %H:%M:%S",
}


class TransformError(ValueError):
    """A value the transform cannot convert."""


def to_string(value: Any, spec: dict[str, Any]) -> str:
    return value if isinstance(value, str) else str(value)


def to_integer(value: Any, spec: dict[str, Any]) -> int:
    try:
        return int(Decimal(str(value)))
    except (InvalidOperation, ValueError) as exc:
        raise TransformError(f"{value!r} is not a number") from exc


def to_decimal(value: Any, spec: dict[str, Any]) -> float | str:
    """Rounded to `places` (default 2). Sent as a JSON number unless `as` is "string"."""
    places = int(spec.get("places", 2))
    try:
        number = Decimal(str(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    except InvalidOperation as exc:
        raise TransformError(f"{value!r} is not a number") from exc
    return str(number) if spec.get("as") == "string" else float(number)


def to_boolean(value: Any, spec: dict[str, Any]) -> Any:
    truthy = value in (True, 1, "1", "true", "True", "yes")
    yes, no = BOOLEAN_STYLES[spec.get("as", "true_false")]
    return yes if truthy else no


def to_date(value: Any, spec: dict[str, Any]) -> str:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise TransformError(f"{value!r} is not an ISO 8601 date") from exc
    if moment.tzinfo:
        moment = moment.astimezone(timezone.utc)
    style = spec.get("format", "iso")
    if moment.year >= 1000 and style in _FROM_ISO:
        # isoformat is several times cheaper than strftime and starts with the same digits
        # (strftime writes a year under 1000 without its leading zeros: those take strftime)
        return _FROM_ISO[style](moment.isoformat())
    return moment.strftime(DATE_FORMATS[style])


# The DATE_FORMATS text cut out of `datetime.isoformat()` ("YYYY-MM-DDTHH:MM:SS...").
_FROM_ISO: dict[str, Callable[[str], str]] = {
    "date": lambda text: text[:10],
    "datetime": lambda text: f"{text[:10]} {text[11:19]}",
    "iso": lambda text: f"{text[:19]}Z",
    "emarsys": lambda text: text[:10],
    "splio": lambda text: f"{text[:10]} {text[11:19]}",
}


def lower(value: Any, spec: dict[str, Any]) -> str:
    return str(value).lower()


def upper(value: Any, spec: dict[str, Any]) -> str:
    return str(value).upper()


TRANSFORMS: dict[str, Callable[[Any, dict[str, Any]], Any]] = {
    "string": to_string,
    "integer": to_integer,
    "decimal": to_decimal,
    "boolean": to_boolean,
    "date": to_date,
    "lower": lower,
    "upper": upper,
}
