"""JSON text written exactly as `json.dumps` writes it, for the values the hub writes per contact
(fingerprints, timeline entries), with less work per call.

`json.dumps` with options builds a JSONEncoder at every call, and the encoder builds its C
writer at every call too; here the C writer is built once. It runs without the circular-reference
check, so it is only for values built from plain data (dicts, lists, strings, numbers), which
cannot refer to themselves; anything else goes through `default` as it would in `json.dumps`.
"""
from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii
from typing import Any, Callable

# None on an interpreter without the C accelerator: then the standard encoder, built once
c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)


def writer(*, sort_keys: bool = False, separators: tuple[str, str] = (", ", ": "),
           default: Callable[[Any], Any] | None = None) -> Callable[[Any], str]:
    """A function giving `json.dumps(value, sort_keys=…, separators=…, default=…)` for plain data."""
    if c_make_encoder is None:
        return json.JSONEncoder(sort_keys=sort_keys, separators=separators, default=default).encode
    item, key = separators
    encode = c_make_encoder(None, default or _unserialisable, encode_basestring_ascii, None,
                            key, item, sort_keys, False, True)

    def dumps(value: Any) -> str:
        return "".join(encode(value, 0))   # the C writer gives the text in chunks
    return dumps


def _unserialisable(value: Any) -> Any:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")
