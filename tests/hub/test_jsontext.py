"""The hub's JSON writer gives json.dumps' text to the character: fingerprints stored by an
earlier hub are compared with ones computed now, and timeline entries are read by the same code."""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from hub.core import jsontext, pushstate, sync

VALUES: list[Any] = [
    {"fields": {"b": 2, "a": 1.25, "n": None, "t": True, "f": False, "big": 10**20, "tiny": 1e-7, "neg": -0.0},
     "identity": {"email": "zoë.o'neil+tag@example.com"}, "lists": {"L2": "marketing", "L1": "transactional"},
     "marketing_consent": None},
    {"nested": [[], {}, [1, [2, {"z": "\u2028\n\t\"\\/"}]]], "money": Decimal("12.50"), "nan": float("nan")},
    [1, "two", 3.0], "text", 7, None,
]


@pytest.mark.parametrize("options", [{"sort_keys": True, "default": str},
                                     {"separators": (",", ":"), "default": str},
                                     {"sort_keys": True, "separators": (",", ":"), "default": str}])
def test_the_writer_gives_the_same_text_as_json_dumps(options: dict[str, Any]) -> None:
    write = jsontext.writer(**options)
    for value in VALUES:
        assert write(value) == json.dumps(value, **options)


def test_a_value_json_cannot_write_is_refused_as_json_dumps_refuses_it() -> None:
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        jsontext.writer()({"a": object()})


def test_a_fingerprint_is_the_one_an_earlier_hub_stored() -> None:
    # What an earlier hub stored for this rendering (the first 16 hex digits of the SHA-1 of
    # json.dumps(..., sort_keys=True, default=str)): a contact whose rendering did not change
    # is found unchanged and not pushed again.
    rendered = {"identity": {"email": "ana@example.com"}, "fields": {"b": 1, "a": Decimal("2.5"), "é": "ü"},
                "lists": {"L": "marketing"}, "marketing_consent": True, "errors": []}
    assert sync.fingerprint(rendered) == "1396c495e8d07fe8"
    assert pushstate.written("1396c495e8d07fe8", {"L2": "transactional", "L1": "marketing"}, False) \
        == '1396c495e8d07fe8 0 {"L2":"t","L1":"m"}'
