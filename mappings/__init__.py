"""Mapping documents: which referral stat lands in which vendor field and list."""
from __future__ import annotations

import json
from importlib import resources
from typing import Any

from .engine import render
from .schema import validate_mapping


def default_mapping(connector: str) -> dict[str, Any]:
    """The shipped default for a connector, validated."""
    text = resources.files(__name__).joinpath("defaults", f"{connector}.json").read_text()
    mapping, errors = validate_mapping(json.loads(text))
    if mapping is None:
        raise ValueError(f"default mapping for {connector} is invalid: {errors}")
    return mapping


__all__ = ["default_mapping", "render", "validate_mapping"]
