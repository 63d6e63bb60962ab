"""A partner's SFTP server for the demo and the tests: asyncssh's own SFTP server, serving one
local folder (chrooted), with password and public-key authentication and a fixed host key.

It runs on its own thread and event loop beside the sandbox's HTTP app, which steers it through
`/_sandbox/sftp`: scripted faults cut the SSH connection once a client has read or written a given
number of bytes of a file, as a network failure would.
"""
from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
from flask import Blueprint, Flask, jsonify, request

USER = "feeds"
PASSWORD = "sandbox-sftp-password"   # the demo password (docs/feeds.md); any other is refused


@dataclass
class Cut:
    """Drop the connection once `after` bytes of a file have been read (or written)."""

    op: str                  # "read" or "write"
    after: int
    count: int = 1
    nth: int = 1             # cut the nth file handle that gets this far (earlier ones pass)


@dataclass
class SFTPState:
    root: Path
    host_key: asyncssh.SSHKey
    authorized_keys: str | None
    cuts: list[Cut] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def take_cut(self, op: str, before: int, done: int) -> bool:
        """True (and one use spent) when a handle's bytes for `op` just passed a cut's mark."""
        with self.lock:
            for cut in self.cuts:
                if cut.op == op and before < cut.after <= done and cut.count > 0:
                    if cut.nth > 1:
                        cut.nth -= 1
                        continue
                    cut.count -= 1
                    self.cuts = [c for c in self.cuts if c.count > 0]
                    return True
        return False


class _Server(asyncssh.SSHServer):
    def __init__(self, state: SFTPState) -> None:
        self.state = state

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == USER and password == PASSWORD


class _SFTP(asyncssh.SFTPServer):
    """The folder as the client's root; counts bytes per open file for the scripted cuts."""

    def __init__(self, chan: Any, state: SFTPState) -> None:
        super().__init__(chan, chroot=str(state.root).encode())
        self.state = state
        self.moved: dict[int, int] = {}

    def _cut(self, file_obj: object, op: str, size: int) -> None:
        before = self.moved.get(id(file_obj), 0)
        self.moved[id(file_obj)] = before + size
        if self.state.take_cut(op, before, before + size):
            self.connection.abort()

    def read(self, file_obj: object, offset: int, size: int) -> Any:
        data = super().read(file_obj, offset, size)
        self._cut(file_obj, "read", len(data) if isinstance(data, bytes) else size)
        return data

    def write(self, file_obj: object, offset: int, data: bytes) -> Any:
        self._cut(file_obj, "write", len(data))
        return super().write(file_obj, offset, data)

    def close(self, file_obj: object) -> Any:
        self.moved.pop(id(file_obj), None)
        return super().close(file_obj)


def load_host_key(path: Path) -> asyncssh.SSHKey:
    """The server's host key from `path`, created (ed25519) on first use: a fixed key the
    clients pin."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(path))
        os.chmod(path, 0o600)
    return asyncssh.read_private_key(str(path))


def public_line(key: asyncssh.SSHKey) -> str:
    """The key as one OpenSSH public-key line ("ssh-ed25519 AAAA..."), as a feed pins it."""
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


def serve(state: SFTPState, host: str = "127.0.0.1", port: int = 0) -> threading.Thread:
    """Start the server on a daemon thread; returns once it listens (state.port is set)."""
    ready = threading.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        try:
            server = await asyncssh.listen(
                host, port, server_host_keys=[state.host_key], server_factory=lambda: _Server(state),
                authorized_client_keys=state.authorized_keys, sftp_factory=lambda chan: _SFTP(chan, state),
                allow_scp=False, keepalive_interval=0)
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            failure.append(exc)
            ready.set()
            return
        state.port = server.sockets[0].getsockname()[1]
        ready.set()
        await server.wait_closed()

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="sandbox-sftp", daemon=True)
    thread.start()
    ready.wait(30)
    if failure:
        raise failure[0]
    return thread


def blueprint(state: SFTPState) -> Blueprint:
    """/_sandbox/sftp: what a client pins (host key, port) and the scripted connection cuts."""
    bp = Blueprint("sandbox_sftp", __name__)

    @bp.get("/_sandbox/sftp")
    def info() -> Any:
        return jsonify({"port": state.port, "user": USER, "host_key": public_line(state.host_key),
                        "root": str(state.root), "cuts": [c.__dict__ for c in state.cuts]})

    @bp.post("/_sandbox/sftp/cuts")
    def add_cut() -> Any:
        spec = request.get_json(force=True)
        if spec.get("op") not in ("read", "write"):
            return jsonify({"error": {"code": "invalid", "message": "op must be read or write"}}), 422
        with state.lock:
            state.cuts.append(Cut(op=spec["op"], after=max(1, int(spec.get("after", 1))),
                                  count=int(spec.get("count", 1)), nth=int(spec.get("nth", 1))))
        return jsonify({"ok": True}), 201

    @bp.delete("/_sandbox/sftp/cuts")
    def clear_cuts() -> Any:
        with state.lock:
            state.cuts.clear()
        return "", 204

    return bp


def attach(app: Flask, port: int, root: str | os.PathLike[str], host_key: str | os.PathLike[str],
           authorized_keys: str | None = None, host: str = "127.0.0.1") -> SFTPState:
    """Serve `root` over SFTP on `port` beside the sandbox app, steered by its HTTP routes."""
    folder = Path(root).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    state = SFTPState(root=folder, host_key=load_host_key(Path(host_key)), authorized_keys=authorized_keys)
    serve(state, host, port)
    app.register_blueprint(blueprint(state))
    app.extensions["sandbox_sftp"] = state
    return state
