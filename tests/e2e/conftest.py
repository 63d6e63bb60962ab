from __future__ import annotations

from typing import Iterator

import pytest

from tests.e2e.stack import Stack


@pytest.fixture
def stack_factory(redis_url, redis_client, tmp_path) -> Iterator:  # type: ignore[no-untyped-def]
    stacks: list[Stack] = []

    def build(**kw):  # type: ignore[no-untyped-def]
        stack = Stack(redis_url, tmp_path, **kw)
        stacks.append(stack)
        return stack

    yield build
    for stack in stacks:
        stack.stop()
