"""The sandbox these tests call: every vendor it lists, served over real HTTP (tests/conftest.py)."""
from __future__ import annotations

import pytest

from tests.conftest import LiveServer


@pytest.fixture
def server(sandbox_server: LiveServer) -> LiveServer:
    return sandbox_server
