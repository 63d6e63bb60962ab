"""Fault-injection tests: the real hub, worker pools and sandbox as processes (tests/e2e/stack.py),
a real Redis, and faults a production box meets (SIGKILLs, fatal vendor answers)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.conftest import stack_factory  # noqa: F401 - the one harness, shared


def report(tmp_path: Path, fault: str, figures: dict[str, Any]) -> None:
    """Print a fault's figures (run pytest with -s to see them) and keep them as JSON."""
    line = json.dumps({"fault": fault, **figures}, sort_keys=True)
    (tmp_path / "figures.json").write_text(line + "\n")
    print(f"\nFAULT FIGURES {line}")
