"""Fixtures for the feed tests: real SFTP servers (the sandbox's and OpenSSH's), a feeds file."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.feeds.servers import REQUIRE_OPENSSH, Server, openssh_available, openssh_server, sandbox_server


@pytest.fixture
def sandbox_sftp(tmp_path: Path) -> Iterator[Server]:
    server = sandbox_server(tmp_path / "sftp")
    yield server
    server.stop()


@pytest.fixture(params=["sandbox", "openssh"])
def sftp_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """Each feed test runs once against the sandbox's server and once against OpenSSH's sshd."""
    if request.param == "sandbox":
        server = sandbox_server(tmp_path / "sftp")
    else:
        if not openssh_available():
            if os.environ.get(REQUIRE_OPENSSH):
                pytest.fail(f"{REQUIRE_OPENSSH} is set but OpenSSH's sshd is not installed "
                            "(apt-get install -y openssh-server)")
            pytest.skip("OpenSSH's sshd is not installed (apt-get install -y openssh-server); "
                        f"set {REQUIRE_OPENSSH}=1 to make this a failure")
        server = openssh_server(tmp_path / "sshd")
    yield server
    server.stop()


@pytest.fixture
def feeds_file(tmp_path: Path) -> Callable[..., str]:
    """Write a feeds document; returns its path for HUB_FEEDS_FILE."""
    def write(feeds: list[dict[str, Any]] | None = None, exports: list[dict[str, Any]] | None = None) -> str:
        path = tmp_path / "feeds.json"
        path.write_text(json.dumps({"feeds": feeds or [], "exports": exports or []}))
        return str(path)
    return write


def activity_feed(server: Server, name: str = "activity", **extra: Any) -> dict[str, Any]:
    (server.root / "inbound").mkdir(exist_ok=True)
    return {"name": name, "sftp": server.server, "folder": server.remote("inbound"), "pattern": "*.csv",
            "mapping": "referral-activity", **extra}
