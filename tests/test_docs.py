"""Every command the docs show either runs in a test or is marked as an illustrative transcript."""
from __future__ import annotations

import pytest

from tests.conftest import ROOT
from tests.docs import FENCE, RUN, section, sh_blocks

PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES)
def test_every_sh_block_is_run_by_a_test(page: str) -> None:
    """A block marked sh (or bash, shell) must sit in a section a test runs; others are console."""
    run = [block for (path, heading) in RUN if path == page for block in sh_blocks(path, heading)]
    text = (ROOT / page).read_text()
    for kind, body in FENCE.findall(text):
        if kind in ("sh", "bash", "shell", ""):
            assert kind == "sh" and body in run, f"{page}: a command block no test runs:\n{body[:200]}"


@pytest.mark.parametrize(("page", "heading"), sorted(RUN))
def test_each_run_section_exists_and_has_blocks(page: str, heading: str) -> None:
    assert sh_blocks(page, heading), f"{page} {heading} shows no sh block"
    assert (ROOT / RUN[(page, heading)]).is_file()
    assert section(page, heading).startswith(heading)
