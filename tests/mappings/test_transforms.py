"""The closed set of transforms: what each turns a value into, and what it refuses."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from mappings.engine import apply
from mappings.transforms import DATE_FORMATS, TRANSFORMS, TransformError


@pytest.mark.parametrize("name, value, spec, expected", [
    ("string", 12, {}, "12"),
    ("integer", "7", {}, 7),
    ("integer", Decimal("2.9"), {}, 2),
    ("decimal", Decimal("59.905"), {"places": 2}, 59.91),
    ("decimal", "120", {"places": 0}, 120.0),
    ("decimal", "1.5", {"places": 2, "as": "string"}, "1.50"),
    ("boolean", True, {"as": "one_two"}, 1),
    ("boolean", False, {"as": "one_two"}, 2),
    ("boolean", "1", {"as": "yes_no"}, "yes"),
    ("boolean", False, {}, False),
    ("boolean", True, {"as": "one_zero"}, 1),
    ("date", "2026-11-21T10:00:08Z", {"format": "emarsys"}, "2026-11-21"),
    ("date", "2026-11-21T11:00:08+01:00", {"format": "splio"}, "2026-11-21 10:00:08"),
    ("date", "2026-11-21T10:00:08Z", {}, "2026-11-21T10:00:08Z"),
    ("lower", "ANNA-20", {}, "anna-20"),
    ("upper", "gbp", {}, "GBP"),
])
def test_transform(name: str, value, spec, expected) -> None:  # type: ignore[no-untyped-def]
    assert TRANSFORMS[name](value, spec) == expected


@pytest.mark.parametrize("name, value", [("integer", "many"), ("decimal", "lots"), ("date", "last tuesday")])
def test_refuses_what_it_cannot_convert(name: str, value: str) -> None:
    with pytest.raises(TransformError):
        TRANSFORMS[name](value, {})


def test_default_fills_a_missing_source_and_absent_sources_are_left_out() -> None:
    assert apply({"target": "x", "source": "last_name", "default": "[none]"}, {}) == (True, "[none]")
    assert apply({"target": "x", "source": "last_name"}, {"last_name": ""}) == (False, None)
    assert apply({"target": "x", "source": "invites_sent", "transform": "integer", "default": 0}, {}) == (True, 0)


@pytest.mark.parametrize("text", ["2024-01-02T03:04:05Z", "2024-01-02T03:04:05.123456Z", "2024-12-31T23:30:00-02:00",
                                  "2024-03-01T00:15:00+01:00", "2024-02-29", "2024-02-29T10:00:00", "0999-06-01T05:06:07Z",
                                  "0045-01-01T00:00:00"])
def test_each_date_format_writes_the_instant_in_utc_as_strftime_would(text: str) -> None:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    moment = moment.astimezone(timezone.utc) if moment.tzinfo else moment
    for style, pattern in DATE_FORMATS.items():
        assert TRANSFORMS["date"](text, {"format": style}) == moment.strftime(pattern)
