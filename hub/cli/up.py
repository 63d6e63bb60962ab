"""`hub up`: the whole hub in one foreground command, Procfile style.

Each piece is its own `hub` process (the same commands a process manager runs as separate
services), in its own session so a Ctrl-C reaches only this supervisor, which then stops them in
order: the HTTP server first (no new events), then the worker pool (it finishes the job in hand;
contacts stay dirty until pushed, so nothing is lost), then the sandbox, and last the embedded
Redis when this command started it and nothing else uses it. Every line a piece prints is
prefixed with its name.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import IO, Any

STOP_TIMEOUT = {"web": 30.0, "worker": 90.0, "sandbox": 15.0}


@dataclass
class Piece:
    name: str
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    reported: bool = False
    readers: list[threading.Thread] = field(default_factory=list)


class Up:
    def __init__(self, pieces: list[Piece], out: IO[str] | None = None) -> None:
        self.pieces = pieces
        self.out = out or sys.stdout
        self.lock = threading.Lock()
        self.width = max(len(p.name) for p in pieces + [Piece("redis", [])])
        self.stopping = threading.Event()

    def say(self, name: str, line: str) -> None:
        with self.lock:
            try:
                self.out.write(f"{name:<{self.width}} | {line}\n")
                self.out.flush()
            except (OSError, ValueError):
                pass    # whatever read our output went away (`| head`): keep running, stop in order

    def pump(self, piece: Piece, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self.say(piece.name, raw.decode("utf-8", "replace").rstrip("\n"))
        stream.close()

    def start(self, piece: Piece) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        piece.proc = subprocess.Popen([sys.executable, "-m", "hub", *piece.args], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                      start_new_session=True)
        assert piece.proc.stdout is not None
        reader = threading.Thread(target=self.pump, args=(piece, piece.proc.stdout), daemon=True)
        reader.start()
        piece.readers.append(reader)
        self.say("up", f"{piece.name} started (pid {piece.proc.pid}): hub {' '.join(piece.args)}")

    def report_exits(self) -> None:
        for piece in self.pieces:
            if piece.proc and piece.proc.poll() is not None and not piece.reported:
                piece.reported = True
                for reader in piece.readers:
                    reader.join(5)
                if not self.stopping.is_set():
                    self.say("up", f"{piece.name} exited with {piece.proc.returncode}; the others keep running "
                                   f"(start it again with `hub {' '.join(piece.args)}`)")

    def stop_piece(self, piece: Piece) -> None:
        proc = piece.proc
        if proc is None or proc.poll() is not None:
            return
        self.say("up", f"stopping {piece.name}")
        proc.send_signal(signal.SIGTERM)    # the leader passes it on (gunicorn, the worker pool)
        try:
            proc.wait(STOP_TIMEOUT.get(piece.name, 30.0))
        except subprocess.TimeoutExpired:
            self.say("up", f"{piece.name} did not stop in time; killing it")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        for reader in piece.readers:
            reader.join(5)
        piece.reported = True
        self.say("up", f"{piece.name} stopped ({proc.returncode})")

    def run(self) -> None:
        """Start every piece, wait for Ctrl-C / SIGTERM (or for all to exit), stop them in order."""
        def on_signal(signum: int, frame: Any) -> None:
            self.stopping.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for piece in self.pieces:
                self.start(piece)
            while not self.stopping.is_set():
                self.report_exits()
                if all(p.proc and p.proc.poll() is not None for p in self.pieces):
                    break
                self.stopping.wait(0.2)
            self.stopping.set()
            order = {"web": 0, "worker": 1, "sandbox": 2}
            for piece in sorted(self.pieces, key=lambda p: order.get(p.name, 9)):
                self.stop_piece(piece)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run(host: str, port: int, web_workers: int, sandbox_port: int | None) -> None:
    """`hub up`: embedded Redis when no URL is set, then sandbox, web and worker pool."""
    from hub.core.config import load
    from hub.cli.migrate import upgrade
    from hub.core.queue import enabled_connectors
    from hub.core.store import Embedded, url_for
    from hub.cli.terminal import UserError

    config = load()
    if not enabled_connectors(config):
        raise UserError("no connector is enabled: set HUB_<CONNECTOR>_* credentials (`hub config check` "
                        "shows what is missing; `hub init --sandbox` writes a .env for the sandbox)")
    pieces = []
    if sandbox_port is not None:
        pieces.append(Piece("sandbox", ["sandbox", "--port", str(sandbox_port), "--host", host]))
    pieces += [Piece("web", ["serve", "--port", str(port), "--host", host, "--workers", str(web_workers)]),
               Piece("worker", ["worker"])]
    up = Up(pieces)
    server = None if config.get("REDIS_URL") else Embedded.of(config["DATA_DIR"])
    started = False
    if server is not None:
        server.hold()
        started = server.start()
        up.say("redis", f"embedded Redis {'started' if started else 'already running'} on {server.url} "
                        f"(data in {server.data_dir})")
    up.say("up", f"hub up (pid {os.getpid()}): hub http://{host}:{port}" + (f"  sandbox http://{host}:{sandbox_port}" if sandbox_port else "")
           + "  (Ctrl-C stops everything)")
    try:
        up.say("redis", upgrade(config, url_for(config)).summary())
        up.run()
    finally:
        if server is not None:
            server.release()
            if started and server.unused():
                server.stop()
                up.say("redis", "embedded Redis stopped")
            elif server.running():
                up.say("redis", "embedded Redis left running: another hub process uses it (`hub redis stop`)")
