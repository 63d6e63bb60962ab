"""The real thing for end-to-end tests: the hub served by gunicorn, a worker pool, the sandbox,
each its own process, talking over real HTTP and a real Redis."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import requests

from hub.core import processes
from hub.core.processes import free_port
from tests.conftest import INGEST_SECRET, ROOT, TOKENS, signed_headers

class Stack:
    def __init__(self, redis_url: str, logs: Path, connectors: dict[str, dict[str, str]] | None = None,
                 latency: float = 0.0, env: dict[str, str] | None = None,
                 sandbox_args: list[str] | None = None) -> None:
        self.logs = logs
        self.sandbox_port, self.hub_port = free_port(), free_port()
        self.sandbox = f"http://127.0.0.1:{self.sandbox_port}"
        self.hub = f"http://127.0.0.1:{self.hub_port}"
        self.env = {**os.environ, "HUB_REDIS_URL": redis_url, "HUB_INGEST_SECRETS": INGEST_SECRET,
                    "HUB_FLUSH_WINDOW": "0.1", "PYTHONPATH": str(ROOT),
                    # A crashed flush's lease blocks its connector this long: short for tests, and
                    # still longer than any sandbox call.
                    "HUB_FLUSH_LEASE": "10",
                    # The scheduled anti-entropy audit reads vendors back whenever its worker gets
                    # to it; a test that counts vendor calls must not see those reads. Tests of
                    # the audit turn it on (or run it with `hub audit run`).
                    "HUB_AUDIT_INTERVAL": "0"}
        self.env.update({f"HUB_{k}": v for k, v in TOKENS.items()})
        for name, settings in (connectors or {"klaviyo": {"API_KEY": "pk_sandbox_demo"}}).items():
            self.env[f"HUB_{name.upper()}_BASE_URL"] = f"{self.sandbox}/{name}"
            self.env.update({f"HUB_{name.upper()}_{k}": v for k, v in settings.items()})
        self.env.update(env or {})
        self.procs: dict[str, subprocess.Popen[Any]] = {}
        try:
            self.start("sandbox", "sandbox", "--port", str(self.sandbox_port), "--latency", str(latency),
                       *(sandbox_args or []))
            self.start("hub", "serve", "--port", str(self.hub_port), "--workers", "2")
            self.start_worker()
            self.wait_http(f"{self.sandbox}/_sandbox/stats")
            self.wait_http(f"{self.hub}/readyz")
        except BaseException:
            self.stop()     # a stack that did not come up leaves no process behind
            raise

    def start(self, name: str, *args: str) -> None:
        self.procs[name] = processes.start(name, args, self.env, self.logs, cwd=ROOT)

    def start_worker(self, name: str = "worker", folder: Path | None = None) -> None:
        """A worker pool; `folder` gives it a working folder (and data folder) of its own, as a
        pool on another host would have."""
        if folder is None:
            self.start(name, "worker")
            return
        folder.mkdir(parents=True, exist_ok=True)
        env = {**self.env, "HUB_DATA_DIR": str(folder / "var"), "HUB_ENV_FILE": "none"}
        self.procs[name] = processes.start(name, ["worker"], env, self.logs, cwd=folder)

    def start_hub(self, name: str) -> str:
        """One more HTTP server on the same Redis (another host behind the load balancer); its URL."""
        url = f"http://127.0.0.1:{free_port()}"
        self.start(name, "serve", "--port", url.rsplit(":", 1)[1], "--workers", "2")
        self.wait_http(f"{url}/readyz")
        return url

    def kill_pool_group(self, name: str = "worker") -> list[int]:
        """The fault as it happens to a pod or a terminal: SIGKILL the pool's process group.
        RQ's work horses run in process groups of their own, so a horse mid-flush survives
        and goes on writing. Returns the pids of the survivors."""
        proc = self.procs[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(os_group(pid) == proc.pid for pid in session_members(proc.pid)):
            time.sleep(0.05)        # SIGKILL lands asynchronously: let the group finish dying
        return session_members(proc.pid)

    def kill_worker(self, name: str = "worker") -> None:
        """SIGKILL the whole worker tree: supervisor, workers, scheduler and every work horse,
        so the jobs in flight die mid-call."""
        proc = self.procs[name]
        kill_session(proc.pid)
        proc.wait(10)

    def wait_http(self, url: str, timeout: float = 30) -> None:
        try:
            processes.wait_http(url, timeout)
        except RuntimeError as exc:
            raise AssertionError(f"{exc}; logs in {self.logs}") from None

    def post(self, events: list[dict[str, Any]], msg_id: str = "msg", hub: str | None = None) -> requests.Response:
        body = json.dumps({"events": events}).encode()
        return requests.post(f"{hub or self.hub}/v1/events", data=body, headers=signed_headers(body, msg_id=msg_id),
                             timeout=10)

    def api(self, method: str, path: str, body: Any = None, token: str = "admin-token") -> requests.Response:
        """The hub's HTTP API with a bearer token (admin by default)."""
        return requests.request(method, f"{self.hub}{path}", json=body, timeout=30,
                                headers={"Authorization": f"Bearer {token}"})

    def holds(self, vendor: str, email: str) -> dict[str, Any] | None:
        response = requests.get(f"{self.sandbox}/_sandbox/{vendor}/contacts/{email}", timeout=5)
        return response.json() if response.ok else None

    def stats(self) -> dict[str, int]:
        return requests.get(f"{self.sandbox}/_sandbox/stats", timeout=5).json()

    def fault(self, vendor: str, status: int, **spec: Any) -> None:
        requests.post(f"{self.sandbox}/_sandbox/faults", json={"vendor": vendor, "status": status, **spec}, timeout=5)

    def clear_faults(self, vendor: str) -> None:
        requests.delete(f"{self.sandbox}/_sandbox/faults", params={"vendor": vendor}, timeout=5)

    def wait_for(self, check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = check()
            if last:
                return last
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; logs in {self.logs}")

    def writes(self, vendor: str) -> dict[str, Any]:
        """The sandbox's write log: per contact, each change in the order it was applied."""
        return requests.get(f"{self.sandbox}/_sandbox/{vendor}/writes", timeout=10).json()

    def stop(self) -> None:
        processes.stop(self.procs.values(), timeout=15)
        for proc in self.procs.values():
            kill_session(proc.pid)      # horses orphaned by an earlier kill


def session_members(sid: int) -> list[int]:
    """Processes of the session `sid` (each process the stack starts leads its own session, and
    RQ's horses keep their worker's session when they leave its process group)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def os_group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def kill_session(sid: int) -> None:
    """SIGKILL every process of a session until none is left (a worker may fork meanwhile)."""
    for _ in range(50):
        members = session_members(sid)
        if not members:
            return
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


SERVICE = "hubprimary"


class RedisSet:
    """A primary, a replica and three Sentinels, each a redis-server process on a free loopback
    port with a folder of its own: the Redis topology of docs/deployment.md, with Sentinel's
    clocks short (`down_after_ms`) so a failover takes about a second, not half a minute."""

    def __init__(self, folder: Path, down_after_ms: int = 1000) -> None:
        from hub.core.store import server_binary

        self.binary, self.folder = server_binary(), folder
        self.procs: dict[str, subprocess.Popen[Any]] = {}
        self.ports: dict[str, int] = {}
        self.argv: dict[str, list[str]] = {}
        try:
            self.server("primary")
            self.server("replica", "--replicaof", "127.0.0.1", str(self.ports["primary"]))
            self.wait_for(self.replica_in_sync, "the replica to sync")
            for n in range(3):
                self.sentinel(f"sentinel{n}", down_after_ms)
            self.wait_for(lambda: all(self.sentinel_sees_all(n) for n in range(3)), "the Sentinels to know each other")
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{self.ports[f'sentinel{n}']}" for n in range(3))
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def server(self, name: str, *args: str) -> None:
        folder = self.folder / name
        folder.mkdir(parents=True, exist_ok=True)
        self.ports[name] = free_port()
        self.argv[name] = [self.binary, "--port", str(self.ports[name]), "--bind", "127.0.0.1", "--dir", str(folder),
                          "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--maxmemory-policy",
                          "noeviction", *args]
        self.spawn(name, self.argv[name])

    def sentinel(self, name: str, down_after_ms: int) -> None:
        folder = self.folder / name
        folder.mkdir(parents=True, exist_ok=True)
        self.ports[name] = free_port()
        conf = folder / "sentinel.conf"      # Sentinel rewrites its file: one each, writable
        conf.write_text(f"port {self.ports[name]}\nbind 127.0.0.1\ndir {folder}\n"
                        f"sentinel monitor {SERVICE} 127.0.0.1 {self.ports['primary']} 2\n"
                        f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}\n"
                        f"sentinel failover-timeout {SERVICE} 5000\n")
        self.spawn(name, [self.binary, str(conf), "--sentinel"])

    def spawn(self, name: str, argv: list[str]) -> None:
        with open(self.folder / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def client(self, name: str) -> Any:
        import redis as redis_lib

        return redis_lib.Redis(port=self.ports[name], socket_timeout=2, socket_connect_timeout=1)

    def answers(self, name: str) -> bool:
        try:
            return bool(self.client(name).ping())
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def replica_in_sync(self) -> bool:
        if not self.answers("replica"):
            return False
        info = self.client("replica").info("replication")
        return info.get("master_link_status") == "up"

    def sentinel_sees_all(self, n: int) -> bool:
        if not self.answers(f"sentinel{n}"):
            return False
        master = self.client(f"sentinel{n}").sentinel_master(SERVICE)
        return int(master.get("num-other-sentinels", 0)) == 2 and int(master.get("num-slaves", 0)) == 1

    def primary_port(self, n: int = 0) -> int | None:
        """The primary's port as Sentinel `n` reports it."""
        try:
            host_port = self.client(f"sentinel{n}").sentinel_get_master_addr_by_name(SERVICE)
        except Exception:  # noqa: BLE001
            return None
        return int(host_port[1]) if host_port else None

    def primary(self) -> Any:
        """A client on the server Sentinel names as primary now."""
        import redis as redis_lib

        for n in range(3):
            port = self.primary_port(n)
            if port:
                return redis_lib.Redis(port=port, socket_timeout=2, socket_connect_timeout=1)
        raise AssertionError("no Sentinel names a primary")

    def kill_primary(self) -> None:
        """SIGKILL the primary: no shutdown, no last fsync, as a host that loses power."""
        proc = self.procs["primary"]
        proc.kill()
        proc.wait(10)

    def wait_promoted(self, timeout: float = 30) -> float:
        """Poll until every Sentinel names the replica as primary and it says it is one; seconds taken."""
        started = time.monotonic()
        replica = self.ports["replica"]

        def promoted() -> bool:
            if any(self.primary_port(n) != replica for n in range(3)):
                return False
            return self.client("replica").info("replication").get("role") == "master"

        self.wait_for(promoted, "Sentinel to promote the replica", timeout)
        return time.monotonic() - started

    def restart_old_primary(self, timeout: float = 30) -> None:
        """Bring the killed primary back, as ops would; Sentinel turns it into the new primary's
        replica. Returns once it is in sync (until then a WAIT for one replica cannot succeed)."""
        self.spawn("primary", self.argv["primary"])

        def in_sync() -> bool:
            # Under load Sentinel may fail over once more (to the server just restarted): what
            # matters is that whichever server is primary now has a replica in sync.
            try:
                info = self.primary().info("replication")
            except Exception:  # noqa: BLE001 - mid-failover
                return False
            return info.get("role") == "master" and any(
                isinstance(v, dict) and v.get("state") == "online" for k, v in info.items() if k.startswith("slave"))

        self.wait_for(in_sync, "the old primary to rejoin as a replica", timeout)

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; logs in {self.folder}")
            time.sleep(0.05)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
