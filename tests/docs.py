"""The shell blocks the docs show, read from the files themselves so a test runs them as written."""
from __future__ import annotations

import re

from tests.conftest import ROOT

# Sections whose `sh` blocks a test runs as written: (file, heading) -> the test that runs them.
RUN = {
    ("README.md", "## Quick start"): "tests/e2e/test_quickstart_e2e.py",
    ("docs/event-api.md", "## Signing a request with curl and openssl"): "tests/e2e/test_send_e2e.py",
    ("docs/webhooks.md", "## Try it with curl"): "tests/e2e/test_webhooks_e2e.py",
}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def section(path: str, heading: str) -> str:
    """The text under `heading` up to the next heading of the same or a higher level."""
    text = (ROOT / path).read_text()
    start = text.index(heading + "\n")
    body = start + len(heading) + 1
    level = len(heading.split(" ")[0])
    end = re.search(r"^#{1,%d} " % level, text[body:], re.M)
    return text[start:body + end.start()] if end else text[start:]


def sh_blocks(path: str, heading: str) -> list[str]:
    return [body for kind, body in FENCE.findall(section(path, heading)) if kind == "sh"]
